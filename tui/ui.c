/* The dashboard's shared UI state, read and changed the same way by the
 * loop (top.c), the key table (keys.c) and the views (view.c): the rows of
 * the current screen, the page height, marks and the status message. Kept
 * apart from all three so that none of them depends on another in a circle.
 * UI thread only. */
#include "ui.h"

#include <curses.h>
#include <stdarg.h>
#include <stdio.h>

const struct snap_job *ui_rows(const struct ui *u, size_t *n)
{
    const struct snapshot *s = u->snap;
    *n = 0;
    if (!s)
        return NULL;
    switch (u->screen) {
    case SCR_RUNNING:
        if (!(s->q.parts & MODEL_RUNNING))
            return NULL;
        *n = s->nrunning;
        return s->running;
    case SCR_DEAD:
        if (!(s->q.parts & MODEL_DEAD))
            return NULL;
        *n = s->ndead;
        return s->dead;
    case SCR_JOBS:
        if (!(s->q.parts & MODEL_JOBS))
            return NULL;
        *n = s->njobs;
        return s->jobs;
    default:
        return NULL;
    }
}

int ui_page(void)
{
    return LINES - 5 > 1 ? LINES - 5 : 1;
}

bool ui_is_marked(const struct ui *u, int64_t id)
{
    for (size_t i = 0; i < u->nmarked; i++)
        if (u->marked[i] == id)
            return true;
    return false;
}

void ui_say(struct ui *u, bool bad, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->msg, sizeof u->msg, fmt, ap);
    va_end(ap);
    u->msg_bad = bad;
}
