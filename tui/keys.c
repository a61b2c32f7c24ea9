/* The dashboard's keys: one table maps keys to actions, and the help
 * screen (?) is that same table, so it cannot fall out of date.
 *
 * An action changes UI state only (screen, cursor, selection, filter,
 * modes) or queues a request to the model; it never touches the database,
 * and returns what the loop should do next: redraw, refetch (the model's
 * query changed or data is wanted now) or quit. Two modes take keys before
 * the table: a confirmation (y confirms, any other key cancels) and the
 * filter prompt (a small line editor). */
#include <ctype.h>
#include <curses.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui.h"

#define CTRL(c) ((c) & 0x1f)

/* ---- helpers ---------------------------------------------------------------- */

static bool is_list(enum tab s)
{
    return s == SCR_RUNNING || s == SCR_DEAD || s == SCR_JOBS;
}

/* The job under the cursor (or shown in the detail view); NULL if none. */
static const struct snap_job *current(const struct ui *u)
{
    size_t n;
    const struct snap_job *rows = ui_rows(u, &n);
    struct list_pos const *p = &u->pos[u->screen];
    if (!rows || n == 0 || p->cursor < 0 || (size_t)p->cursor >= n)
        return NULL;
    return &rows[p->cursor];
}

static void move_cursor(struct ui *u, int delta)
{
    if (u->mode == MODE_DETAIL) {
        u->detail_scroll += delta;
        if (u->detail_scroll < 0)
            u->detail_scroll = 0;
        return;
    }
    if (u->screen == SCR_OVERVIEW && (delta == 1 || delta == -1 || delta == 1000000000
                                      || delta == -1000000000)) {
        /* the Overview's cursor is on its queue rows (p pauses / resumes) */
        size_t nq = u->snap ? u->snap->nqueues : 0;
        long c = (long)u->qcursor + (delta == 1 || delta == -1 ? delta : delta / 1000000000 * (long)nq);
        if (c >= (long)nq)
            c = (long)nq - 1;
        if (c < 0)
            c = 0;
        u->qcursor = (int)c;
        if (nq)
            snprintf(u->qsel, sizeof u->qsel, "%s", u->snap->queues[c].queue);
        u->qmoved = true;
        return;
    }
    if (!is_list(u->screen)) {
        u->scroll[u->screen] += delta;
        if (u->scroll[u->screen] < 0)
            u->scroll[u->screen] = 0;
        return;
    }
    size_t n;
    const struct snap_job *rows = ui_rows(u, &n);
    struct list_pos *p = &u->pos[u->screen];
    if (!rows || n == 0)
        return;
    long c = (long)p->cursor + delta;
    if (c < 0)
        c = 0;
    if (c >= (long)n)
        c = (long)n - 1;
    p->cursor = (int)c;
    p->sel_id = rows[c].id;
}

static void mark_toggle(struct ui *u, int64_t id)
{
    for (size_t i = 0; i < u->nmarked; i++) {
        if (u->marked[i] == id) {
            u->marked[i] = u->marked[--u->nmarked];
            return;
        }
    }
    if (u->nmarked == u->capmarked) {
        size_t cap = u->capmarked ? u->capmarked * 2 : 64;
        int64_t *m = realloc(u->marked, cap * sizeof *m);
        if (!m) {
            ui_say(u, true, "out of memory");
            return;
        }
        u->marked = m;
        u->capmarked = cap;
    }
    u->marked[u->nmarked++] = id;
}

static void marks_clear(struct ui *u)
{
    u->nmarked = 0;
}

/* Refuse an action on a read-only dashboard. */
static bool refuse_read_only(struct ui *u)
{
    if (u->snap && u->snap->read_only) {
        ui_say(u, true, "read-only: database role \"%s\" may not change jobs", u->snap->user);
        return true;
    }
    if (!u->snap) {
        ui_say(u, true, "not connected yet");
        return true;
    }
    return false;
}

/* The ids an action applies to: the detail's job, else the marked ones,
 * else the current one. malloc'd; NULL and 0 when none. */
static int64_t *targets(struct ui *u, size_t *n)
{
    *n = 0;
    if (u->mode == MODE_DETAIL) {
        int64_t *ids = malloc(sizeof *ids);
        if (ids) {
            ids[0] = u->detail_id;
            *n = 1;
        }
        return ids;
    }
    if (!is_list(u->screen))
        return NULL;
    if (u->nmarked) {
        int64_t *ids = malloc(u->nmarked * sizeof *ids);
        if (ids) {
            memcpy(ids, u->marked, u->nmarked * sizeof *ids);
            *n = u->nmarked;
        }
        return ids;
    }
    const struct snap_job *j = current(u);
    int64_t *ids = j ? malloc(sizeof *ids) : NULL;
    if (ids) {
        ids[0] = j->id;
        *n = 1;
    }
    return ids;
}

static void ask(struct ui *u, struct model_action *a, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ask(struct ui *u, struct model_action *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->question, sizeof u->question, fmt, ap);
    va_end(ap);
    free(u->pending.ids);
    u->pending = *a;
    a->ids = NULL;
    u->mode = MODE_CONFIRM;
}

/* ---- actions ---------------------------------------------------------------- */

static enum next act_quit(struct ui *u)
{
    (void)u;
    return NEXT_QUIT;
}

static enum next act_back(struct ui *u)
{
    if (u->mode == MODE_DETAIL) {
        u->mode = MODE_NORMAL;
        u->detail_id = 0;
        return NEXT_REFETCH;
    }
    if (u->nmarked) {
        marks_clear(u);
        return NEXT_REDRAW;
    }
    return NEXT_NONE;
}

static enum next goto_screen(struct ui *u, enum tab s)
{
    if (u->mode == MODE_DETAIL) {
        u->mode = MODE_NORMAL;
        u->detail_id = 0;
    }
    if (s != u->screen)
        marks_clear(u);
    u->screen = s;
    return NEXT_REFETCH;
}

static enum next act_s1(struct ui *u) { return goto_screen(u, SCR_OVERVIEW); }
static enum next act_s2(struct ui *u) { return goto_screen(u, SCR_RUNNING); }
static enum next act_s3(struct ui *u) { return goto_screen(u, SCR_DEAD); }
static enum next act_s4(struct ui *u) { return goto_screen(u, SCR_JOBS); }
static enum next act_s5(struct ui *u) { return goto_screen(u, SCR_HEALTH); }

static enum next act_next_screen(struct ui *u)
{
    return goto_screen(u, (enum tab)((u->screen + 1) % SCR__COUNT));
}

static enum next act_prev_screen(struct ui *u)
{
    return goto_screen(u, (enum tab)((u->screen + SCR__COUNT - 1) % SCR__COUNT));
}

static enum next act_down(struct ui *u) { move_cursor(u, 1); return NEXT_REDRAW; }
static enum next act_up(struct ui *u) { move_cursor(u, -1); return NEXT_REDRAW; }
static enum next act_pgdn(struct ui *u) { move_cursor(u, ui_page()); return NEXT_REDRAW; }
static enum next act_pgup(struct ui *u) { move_cursor(u, -ui_page()); return NEXT_REDRAW; }
static enum next act_home(struct ui *u) { move_cursor(u, -1000000000); return NEXT_REDRAW; }
static enum next act_end(struct ui *u) { move_cursor(u, 1000000000); return NEXT_REDRAW; }

static enum next act_help(struct ui *u)
{
    u->mode = u->mode == MODE_HELP ? MODE_NORMAL : MODE_HELP;
    return NEXT_REDRAW;
}

static enum next act_detail(struct ui *u)
{
    const struct snap_job *j = u->mode == MODE_NORMAL ? current(u) : NULL;
    if (!j)
        return NEXT_NONE;
    u->detail_id = j->id;
    u->detail_scroll = 0;
    u->mode = MODE_DETAIL;
    return NEXT_REFETCH;
}

static enum next act_select(struct ui *u)
{
    const struct snap_job *j = u->mode == MODE_NORMAL ? current(u) : NULL;
    if (!j)
        return NEXT_NONE;
    mark_toggle(u, j->id);
    move_cursor(u, 1);
    return NEXT_REDRAW;
}

static enum next act_select_all(struct ui *u)
{
    size_t n;
    const struct snap_job *rows = u->mode == MODE_NORMAL ? ui_rows(u, &n) : NULL;
    if (!rows)
        return NEXT_NONE;
    marks_clear(u);
    for (size_t i = 0; i < n; i++)
        mark_toggle(u, rows[i].id);
    ui_say(u, false, "%zu selected", n);
    return NEXT_REDRAW;
}

static enum next act_requeue(struct ui *u)
{
    if (refuse_read_only(u))
        return NEXT_REDRAW;
    struct model_action a = { .kind = MODEL_REQUEUE_IDS };
    a.ids = targets(u, &a.nids);
    if (!a.ids) {
        ui_say(u, true, "no job to requeue here");
        return NEXT_REDRAW;
    }
    if (a.nids == 1)
        ask(u, &a, "Requeue job %" PRId64 "? (y/N)", a.ids[0]);
    else
        ask(u, &a, "Requeue %zu selected jobs? (y/N)", a.nids);
    return NEXT_REDRAW;
}

static enum next act_requeue_all(struct ui *u)
{
    if (refuse_read_only(u))
        return NEXT_REDRAW;
    const struct snapshot *s = u->snap;
    if (u->screen != SCR_DEAD || u->mode != MODE_NORMAL) {
        ui_say(u, true, "R requeues the dead letters shown: go to screen 3 first");
        return NEXT_REDRAW;
    }
    if (!(s->q.parts & MODEL_DEAD)) {
        ui_say(u, true, "the dead letters are still loading");
        return NEXT_REDRAW;
    }
    if (s->dead_total == 0) {
        ui_say(u, true, "no dead jobs match the filter");
        return NEXT_REDRAW;
    }
    struct model_action a = { .kind = MODEL_REQUEUE_MATCHING };
    if (s->q.filter.text[0]) {
        /* The library matches by queue and type; a text filter is applied
         * here, by id, over the rows the snapshot holds, all of them. */
        if ((size_t)s->dead_total > s->ndead) {
            ui_say(u, true, "%" PRId64 " dead jobs match, more than the %zu loaded: "
                   "narrow the filter or drop its text", s->dead_total, s->ndead);
            return NEXT_REDRAW;
        }
        a.kind = MODEL_REQUEUE_IDS;
        a.ids = malloc(s->ndead * sizeof *a.ids);
        if (!a.ids)
            return NEXT_NONE;
        for (size_t i = 0; i < s->ndead; i++)
            a.ids[i] = s->dead[i].id;
        a.nids = s->ndead;
    } else {
        snprintf(a.queue, sizeof a.queue, "%s", s->q.filter.queue);
        snprintf(a.type, sizeof a.type, "%s", s->q.filter.type);
    }
    ask(u, &a, "Requeue all %" PRId64 "%s dead job%s%s? (y/N)", s->dead_total,
        s->dead_total_capped ? "+" : "", s->dead_total == 1 ? "" : "s",
        s->q.filter.queue[0] || s->q.filter.type[0] || s->q.filter.text[0]
            ? " matching the filter" : "");
    return NEXT_REDRAW;
}

static enum next act_cancel(struct ui *u)
{
    if (refuse_read_only(u))
        return NEXT_REDRAW;
    struct model_action a = { .kind = MODEL_CANCEL_IDS };
    a.ids = targets(u, &a.nids);
    if (!a.ids) {
        ui_say(u, true, "no job to cancel here");
        return NEXT_REDRAW;
    }
    if (a.nids == 1)
        ask(u, &a, "Cancel job %" PRId64 " (a running one is stopped)? (y/N)", a.ids[0]);
    else
        ask(u, &a, "Cancel %zu selected jobs (running ones are stopped)? (y/N)", a.nids);
    return NEXT_REDRAW;
}

static enum next act_pause(struct ui *u)
{
    if (u->screen != SCR_OVERVIEW || u->mode != MODE_NORMAL) {
        ui_say(u, true, "p pauses or resumes the queue under the cursor: screen 1");
        return NEXT_REDRAW;
    }
    if (refuse_read_only(u))
        return NEXT_REDRAW;
    const struct snapshot *s = u->snap;
    if (!(s->q.parts & MODEL_OVERVIEW) || s->nqueues == 0) {
        ui_say(u, true, "no queue to pause here");
        return NEXT_REDRAW;
    }
    int i = u->qcursor < (int)s->nqueues ? u->qcursor : (int)s->nqueues - 1;
    const pgq_queue_stats *q = &s->queues[i];
    struct model_action a = { .kind = q->paused ? MODEL_RESUME : MODEL_PAUSE };
    if ((size_t)snprintf(a.queue, sizeof a.queue, "%s", q->queue) >= sizeof a.queue) {
        ui_say(u, true, "queue name too long for the dashboard: use pgq %s",
               q->paused ? "resume" : "pause");
        return NEXT_REDRAW;
    }
    char name[64];   /* the question fits one line: a long name is shortened there */
    snprintf(name, sizeof name, "%.40s%s", q->queue, strlen(q->queue) > 40 ? "..." : "");
    if (q->paused)
        ask(u, &a, "Resume queue \"%s\"? Pools claim from it again. (y/N)", name);
    else
        ask(u, &a, "Pause queue \"%s\"? No pool claims from it; running jobs finish. (y/N)",
            name);
    return NEXT_REDRAW;
}

static enum next act_filter(struct ui *u)
{
    if (!is_list(u->screen) || u->mode != MODE_NORMAL) {
        ui_say(u, true, "/ filters the lists: screens 2, 3 and 4");
        return NEXT_REDRAW;
    }
    /* Start empty: typing replaces the filter (the status line shows the
     * one in force); Enter on nothing clears it, Esc keeps it. */
    u->prompt[0] = '\0';
    u->promptlen = 0;
    u->msg[0] = '\0';
    u->mode = MODE_PROMPT;
    return NEXT_REDRAW;
}

static enum next act_refresh(struct ui *u)
{
    clearok(curscr, TRUE);   /* Ctrl-L also repaints a garbled screen */
    (void)u;
    return NEXT_REFETCH;
}

/* ---- the table -------------------------------------------------------------- */

struct binding {
    int keys[4];                 /* 0-terminated */
    const char *label, *help;
    enum next (*fn)(struct ui *u);
};

static const struct binding table[] = {
    { { '1' }, "1-5", "screens: 1 Overview  2 Running  3 Dead letters  4 Jobs  5 Health",
      act_s1 },
    { { '2' }, NULL, NULL, act_s2 },
    { { '3' }, NULL, NULL, act_s3 },
    { { '4' }, NULL, NULL, act_s4 },
    { { '5' }, NULL, NULL, act_s5 },
    { { '\t' }, "Tab", "next screen (Shift-Tab: previous)", act_next_screen },
    { { KEY_BTAB }, NULL, NULL, act_prev_screen },
    { { 'j', KEY_DOWN }, "j Down", "move down", act_down },
    { { 'k', KEY_UP }, "k Up", "move up", act_up },
    { { KEY_NPAGE }, "PgDn PgUp", "page down, page up", act_pgdn },
    { { KEY_PPAGE }, NULL, NULL, act_pgup },
    { { 'g', KEY_HOME }, "g G", "first row, last row (also Home, End)", act_home },
    { { 'G', KEY_END }, NULL, NULL, act_end },
    { { '\n', '\r', KEY_ENTER }, "Enter", "job detail: payload, attempts, effects", act_detail },
    { { 27, KEY_BACKSPACE, KEY_LEFT, 127 }, "Esc", "back (closes the detail, clears the selection)",
      act_back },
    { { ' ' }, "Space", "select / unselect the job and move down", act_select },
    { { 'a' }, "a", "select all jobs shown", act_select_all },
    { { 'r' }, "r", "requeue the selected (or current) dead or cancelled jobs", act_requeue },
    { { 'R' }, "R", "requeue every dead job matching the filter (screen 3)", act_requeue_all },
    { { 'c' }, "c", "cancel the selected (or current) ready, scheduled or running jobs",
      act_cancel },
    { { 'p' }, "p", "pause / resume the queue under the cursor (screen 1; asks first)",
      act_pause },
    { { '/' }, "/", "filter: queue:Q type:T state:S and free text (Enter applies, empty clears)",
      act_filter },
    { { CTRL('l') }, "^L", "refresh now and repaint", act_refresh },
    { { '?', 'h' }, "? h", "this help", act_help },
    { { 'q', 'Q' }, "q", "quit", act_quit },
};

const struct key_help *keys_help(size_t *n)
{
    static struct key_help help[sizeof table / sizeof table[0]];
    size_t k = 0;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].label)
            help[k++] = (struct key_help){ table[i].label, table[i].help };
    *n = k;
    return help;
}

/* ---- modes ------------------------------------------------------------------ */

static enum next confirm_key(struct ui *u, int ch)
{
    enum mode back = u->detail_id ? MODE_DETAIL : MODE_NORMAL;
    u->mode = back;
    if (ch != 'y' && ch != 'Y') {
        free(u->pending.ids);
        u->pending.ids = NULL;
        ui_say(u, false, "nothing done");
        return NEXT_REDRAW;
    }
    if (model_request(u->model, &u->pending) < 0) {
        ui_say(u, true, "out of memory");
        return NEXT_REDRAW;
    }
    marks_clear(u);
    ui_say(u, false, "working...");
    return NEXT_REFETCH;
}

static enum next prompt_key(struct ui *u, int ch)
{
    if (ch == 27 || ch == CTRL('g') || ch == CTRL('c')) {
        u->mode = MODE_NORMAL;
        return NEXT_REDRAW;
    }
    if (ch == '\n' || ch == '\r' || ch == KEY_ENTER) {
        struct model_filter f;
        char why[160];
        if (filter_parse(u->prompt, &f, why, sizeof why) < 0) {
            ui_say(u, true, "%s", why);
            return NEXT_REDRAW;
        }
        u->mode = MODE_NORMAL;
        u->filter = f;
        marks_clear(u);
        for (int s = 0; s < SCR__COUNT; s++)
            u->pos[s] = (struct list_pos){ 0, 0, 0 };
        ui_say(u, false, "%s", u->prompt[0] ? "filter applied" : "filter cleared");
        return NEXT_REFETCH;
    }
    if (ch == KEY_BACKSPACE || ch == 127 || ch == 8) {
        if (u->promptlen)
            u->prompt[--u->promptlen] = '\0';
        return NEXT_REDRAW;
    }
    if (ch == CTRL('u')) {
        u->promptlen = 0;
        u->prompt[0] = '\0';
        return NEXT_REDRAW;
    }
    /* Printable bytes, UTF-8 included (getch hands them one at a time). */
    if (ch >= 32 && ch < 256 && ch != 127 && u->promptlen + 1 < sizeof u->prompt) {
        u->prompt[u->promptlen++] = (char)ch;
        u->prompt[u->promptlen] = '\0';
    }
    return NEXT_REDRAW;
}

enum next keys_handle(struct ui *u, int ch)
{
    if (u->mode == MODE_CONFIRM)
        return confirm_key(u, ch);
    if (u->mode == MODE_PROMPT)
        return prompt_key(u, ch);
    if (u->mode == MODE_HELP) {
        u->mode = MODE_NORMAL;   /* any key closes the help */
        return ch == 'q' ? NEXT_QUIT : NEXT_REDRAW;
    }
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        for (int k = 0; k < 4 && table[i].keys[k]; k++)
            if (table[i].keys[k] == ch)
                return table[i].fn(u);
    return NEXT_NONE;
}
