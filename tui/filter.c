/* The filter prompt's language (keys.c): "queue:Q type:T state:S" words and
 * free text, parsed into a struct model_filter. Kept apart from the key
 * table (and from ncurses) so that the tests parse with it directly. */
#include "ui.h"

#include <stdio.h>
#include <string.h>

/* "scheduled" is ready with a future run_at: not a state of its own, but
 * the Jobs list filters by it the same way. */
static const char *const states[] = { "waiting", "ready", "scheduled", "running", "done",
                                      "dead", "cancelled" };

int filter_parse(const char *text, struct model_filter *f, char *err, size_t errlen)
{
    char buf[MODEL_FIELD * 3], *save = NULL;
    memset(f, 0, sizeof *f);
    if (strlen(text) >= sizeof buf) {
        snprintf(err, errlen, "filter too long (at most %zu bytes)", sizeof buf - 1);
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", text);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (strncmp(w, "queue:", 6) == 0) {
            snprintf(f->queue, sizeof f->queue, "%s", w + 6);
        } else if (strncmp(w, "type:", 5) == 0) {
            snprintf(f->type, sizeof f->type, "%s", w + 5);
        } else if (strncmp(w, "state:", 6) == 0) {
            bool ok = false;
            for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
                ok |= strcmp(w + 6, states[i]) == 0;
            if (!ok) {
                snprintf(err, errlen, "unknown state \"%.40s\": waiting, ready, scheduled, running, "
                         "done, dead, cancelled", w + 6);
                return -1;
            }
            snprintf(f->state, sizeof f->state, "%s", w + 6);
        } else {
            size_t len = strlen(f->text);
            snprintf(f->text + len, sizeof f->text - len, "%s%s", len ? " " : "", w);
        }
    }
    return 0;
}
