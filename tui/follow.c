/* Where a list's cursor and window go when a new snapshot changes the rows
 * under them (the loop, top.c, calls this for every list).
 *
 * The lists put the newest jobs first. The rule:
 *  - a cursor on the first row stays on the first row: it follows the head
 *    of the list, so new jobs appear at the top under it and never push
 *    anything out of view (this is where a list opens);
 *  - a cursor moved down stays on its job (by id), so that an action (r, c)
 *    applies to the job the operator chose; when that job leaves the list,
 *    the cursor stays on the same row;
 *  - the window keeps showing the head (top row 0) as long as the chosen
 *    job stays on the page; scrolled down (top > 0), it moves with the
 *    chosen job, so the rows on screen hold still while new ones arrive
 *    above them. g goes back to the head.
 * No ncurses here: the tests call it directly. */
#include "ui.h"

void list_follow(struct list_pos *p, const struct snap_job *rows, size_t n, int page)
{
    if (page < 1)
        page = 1;
    if (!rows || n == 0) {
        *p = (struct list_pos){ 0, 0, 0 };
        return;
    }
    int i = 0;
    if (p->cursor > 0 && p->sel_id) {
        i = snapshot_find(rows, n, p->sel_id);
        if (i < 0)
            i = p->cursor < (int)n ? p->cursor : (int)n - 1;
    }
    if (p->top > 0)
        p->top += i - p->cursor;
    if (p->top > (int)n - page)
        p->top = (int)n - page;
    if (p->top < 0)
        p->top = 0;
    if (i < p->top)
        p->top = i;
    if (i >= p->top + page)
        p->top = i - page + 1;
    p->cursor = i;
    p->sel_id = rows[i].id;
}
