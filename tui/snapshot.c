/* Snapshots (model.h, snapshot.h): immutable once published, shared by
 * reference count between the model thread and the UI, and freed with the
 * query results their rows point into by whoever drops the last one. */
#include "snapshot.h"

#include <stdlib.h>

#define NRES 16   /* query results one snapshot may keep */

struct snap_priv {
    PGresult *res[NRES];
    int nres;
};

struct snapshot *snapshot_new(void)
{
    struct snapshot *s = calloc(1, sizeof *s);
    struct snap_priv *p = calloc(1, sizeof *p);
    if (!s || !p) {
        free(s);
        free(p);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    s->priv_ = p;
    return s;
}

int snapshot_keep(struct snapshot *s, PGresult *r)
{
    struct snap_priv *p = s->priv_;
    if (p->nres >= NRES)
        return -1;
    p->res[p->nres++] = r;
    return 0;
}

struct snapshot *snapshot_ref(struct snapshot *s)
{
    if (s)
        atomic_fetch_add(&s->refs, 1);
    return s;
}

void snapshot_release(struct snapshot *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    struct snap_priv *p = s->priv_;
    if (p) {
        for (int i = 0; i < p->nres; i++)
            PQclear(p->res[i]);
        free(p);
    }
    free(s->queues);
    free(s->pools);
    free(s->runs);
    free(s->crons);
    free(s->limits);
    free(s->running);
    free(s->dead);
    free(s->jobs);
    free(s->tables);
    free(s->xacts);
    free(s->locks);
    pgq_job_detail_free(s->detail);
    free(s);
}

int snapshot_find(const struct snap_job *rows, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].id == id)
            return (int)i;
    return -1;
}
