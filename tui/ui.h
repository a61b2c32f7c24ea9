/* Internal to the dashboard: the UI state shared by the loop (top.c), the
 * key table (keys.c) and the views (view.c), and its helpers (ui.c). UI
 * thread only. */
#ifndef PGQ_TUI_UI_H
#define PGQ_TUI_UI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "top.h"

enum tab { SCR_OVERVIEW, SCR_RUNNING, SCR_DEAD, SCR_JOBS, SCR_HEALTH, SCR__COUNT };

enum mode { MODE_NORMAL, MODE_HELP, MODE_DETAIL, MODE_CONFIRM, MODE_PROMPT };

/* What a key's action asks the loop to do next. */
enum next { NEXT_NONE, NEXT_REDRAW, NEXT_REFETCH, NEXT_QUIT };

/* Where a list is: the selected job by id (stable across refreshes), and
 * the row index and scroll offset last drawn. */
struct list_pos {
    int64_t sel_id;
    int cursor, top;
};

struct ui {
    struct model *model;
    struct snapshot *snap;       /* referenced; NULL before the first */
    struct model_status st;
    const struct top_opts *opts;

    enum tab screen;
    enum mode mode;
    struct list_pos pos[SCR__COUNT];
    int scroll[SCR__COUNT];      /* overview and health: first line shown */

    int qcursor;                 /* overview: the queue row under the cursor */
    char qsel[801];              /* ... by name (stable across refreshes) */
    bool qmoved;                 /* moved since drawn: bring its row into view */

    int64_t *marked;             /* multi-select, by job id */
    size_t nmarked, capmarked;

    struct model_filter filter;

    int64_t detail_id;           /* MODE_DETAIL: the job shown */
    int detail_scroll;

    char prompt[MODEL_FIELD * 3];  /* MODE_PROMPT: text typed so far */
    size_t promptlen;

    struct model_action pending; /* MODE_CONFIRM: asked, not yet answered */
    char question[256];

    char msg[512];               /* status message (action outcome, refusal) */
    bool msg_bad;
    uint64_t msg_seq;            /* snapshot msg_seq already shown */

    bool color, utf8;
};

/* ui.c: */

/* The job list of the current screen (NULL and 0 when it has none). */
const struct snap_job *ui_rows(const struct ui *u, size_t *n);

/* Rows a list shows at a time (from the terminal size). */
int ui_page(void);

bool ui_is_marked(const struct ui *u, int64_t id);

/* Set the status message. */
void ui_say(struct ui *u, bool bad, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* follow.c: move p (cursor, window, selected id) onto a new snapshot's
 * rows, page rows shown at a time; the rule is in follow.c. */
void list_follow(struct list_pos *p, const struct snap_job *rows, size_t n, int page);

/* filter.c: parse the filter prompt's text ("queue:Q type:T state:S" and
 * free text) into *f; -1 with a message naming the bad word. */
int filter_parse(const char *text, struct model_filter *f, char *err, size_t errlen);

/* keys.c: handle one key; the table for the help screen. */
enum next keys_handle(struct ui *u, int ch);

struct key_help {
    const char *keys, *help;
};
const struct key_help *keys_help(size_t *n);

/* view.c: draw everything from u->snap (never the database). */
void view_draw(struct ui *u);
void view_colors(void);

#endif
