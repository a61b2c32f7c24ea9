/* Handlers for the limits and snooze tests (tests/limits_test.c), loaded
 * by a real pgq-pool as `plugin PATH SYMBOL`; steered by their payload:
 *
 *   nap_job     {"sleep_ms": S}  sleeps S ms, done.
 *   snooze_job  {"snooze_ms": S, "times": N}  while the job has snoozed
 *               fewer than N times (read from pgq.jobs through the
 *               worker's connection), snoozes for S ms with pgq_ctx_snooze
 *               and returns 0; a refused snooze fails the attempt with the
 *               refusal as its error; after N snoozes, done. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgq_pool.h"

int nap_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);
int snooze_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);

/* An integer value of "key" in jsonb's text form ({"key": 12, ...}). */
static long payload_int(const char *payload, const char *key, long dflt)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(payload, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : dflt;
}

int nap_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg, (void)err, (void)errlen;
    long ms = payload_int(pgq_ctx_job(ctx)->payload, "sleep_ms", 0);
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
    return 0;
}

int snooze_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    const pgq_job *j = pgq_ctx_job(ctx);
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->id);
    const char *params[] = { id };
    PGresult *r = PQexecParams(pgq_conn_pg(pgq_ctx_conn(ctx)),
                               "SELECT snoozes FROM pgq.jobs WHERE id = $1", 1, NULL, params,
                               NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        snprintf(err, errlen, "reading snoozes: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    long done = strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (done >= payload_int(j->payload, "times", 0))
        return 0;
    pgq_snooze_result s = pgq_ctx_snooze(ctx, payload_int(j->payload, "snooze_ms", 0), err,
                                         errlen);
    return s == PGQ_SNOOZE_ASKED ? 0 : -1;
}
