/* The pools registry: one pgq.workers row per running pool, kept fresh by
 * its heartbeat thread, so that a dashboard anywhere sees the whole fleet
 * and can tell a silent (dead or stuck) pool by its heartbeat age. */
#include "db.h"

#include <stdio.h>
#include <stdlib.h>

int pgq_pool_register_row(pgq_conn *c, const char *name, const char *host, int pid, int workers,
                          const char *const *queues, size_t nqueues, char *err, size_t errlen)
{
    char pids[16], ws[16];
    char *qarr = db_text_array(queues, nqueues);
    if (!qarr)
        return seterr(err, errlen, "register pool: out of memory");
    snprintf(pids, sizeof pids, "%d", pid);
    snprintf(ws, sizeof ws, "%d", workers);
    const char *params[] = { name, host, pids, ws, qarr, PGQ_VERSION };
    PGresult *r = db_query(c,
        "INSERT INTO pgq.workers (name, host, pid, workers, queues, version)"
        " VALUES ($1, $2, $3, $4, $5::text[], $6)"
        " ON CONFLICT (name) DO UPDATE SET last_heartbeat = now()",
        6, params, PGRES_COMMAND_OK, "register pool", err, errlen);
    free(qarr);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

int pgq_pool_beat_row(pgq_conn *c, const char *name, int in_flight, char *err, size_t errlen)
{
    char n[16];
    snprintf(n, sizeof n, "%d", in_flight);
    const char *params[] = { name, n };
    PGresult *r = db_query(c,
        "WITH beat AS (UPDATE pgq.workers SET last_heartbeat = now(), in_flight = $2"
        "   WHERE name = $1 RETURNING id),"
        " gone AS (DELETE FROM pgq.workers"
        "   WHERE last_heartbeat < now() - interval '1 hour' AND name <> $1)"
        " SELECT count(*) FROM beat",
        2, params, PGRES_TUPLES_OK, "pool heartbeat", err, errlen);
    if (!r)
        return -1;
    int64_t found = db_int64(r, 0, 0, 0);
    PQclear(r);
    return found ? 0 : seterr(err, errlen, "pool heartbeat: this pool's row is gone");
}

int pgq_pool_deregister_row(pgq_conn *c, const char *name, char *err, size_t errlen)
{
    const char *params[] = { name };
    PGresult *r = db_query(c, "DELETE FROM pgq.workers WHERE name = $1", 1, params,
                           PGRES_COMMAND_OK, "deregister pool", err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}
