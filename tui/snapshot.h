/* Internal to the model: making a snapshot (snapshot.c), for the fetchers
 * (fetch.c). The UI only takes references (model.h). */
#ifndef PGQ_TUI_SNAPSHOT_H
#define PGQ_TUI_SNAPSHOT_H

#include <libpq-fe.h>
#include <time.h>

#include "model.h"

/* A new, empty snapshot holding one reference; NULL when out of memory. */
struct snapshot *snapshot_new(void);

/* Keep r alive as long as s (rows point into it); s takes it. -1 when s
 * holds as many results as it can (r is then the caller's). */
int snapshot_keep(struct snapshot *s, PGresult *r);

/* Wall-clock seconds: the clock of snapshot times and status times, which
 * the views subtract from each other. Inline: both the fetchers and the
 * model thread read it. */
static inline double snapshot_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
