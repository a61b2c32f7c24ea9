/* The claim specification: what every claim of a pool asks for (its
 * queues, lease owner, lease TTL and hints), built once from the config
 * when the pool starts, and the one call that claims with it. A worker's
 * own claim (batch = 1), its completion that claims the next job, and the
 * batch's claims for several workers all go through claim_run(). */
#include "pool_int.h"

#include <stdio.h>

void claim_spec_init(struct claim_spec *c, const pgq_pool *p, const char *owner)
{
    c->hints = p->hints;
    c->queues = (const char *const *)p->cfg->queues;
    c->nqueues = p->cfg->nqueues;
    c->ttl_ms = p->cfg->lease_ttl_ms;
    snprintf(c->owner, sizeof c->owner, "%s", owner);
}

int claim_run(const struct claim_spec *c, pgq_conn *conn, const pgq_ack *acks, size_t n,
              bool *lost, bool *snoozed, size_t limit, pgq_job **got, size_t *ngot, char *err,
              size_t errlen)
{
    size_t none = 0;
    return pgq_complete_claim_snoozed(conn, c->hints, acks, n, lost, snoozed, c->queues,
                                      c->nqueues, c->owner, c->ttl_ms, limit, got,
                                      ngot ? ngot : &none, err, errlen);
}
