/* The database side of periodic jobs (pgq.h, "periodic jobs"): a pool
 * registers its [cron NAME] sections and, at each tick, asks
 * pgq.cron_fire to add the tick's job; the function's conditional upsert
 * lets one caller of the whole fleet through per tick (see
 * migrations/state_machine.sql). Ticks travel as milliseconds since the
 * epoch and become timestamps in SQL, exactly. The schedules themselves
 * are parsed and their ticks computed in config/cron.c. */
#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS_TS(n) "('epoch'::timestamptz + $" #n "::bigint * interval '1 millisecond')"
#define TS_MS(x) "(extract(epoch FROM " x ") * 1000)::bigint"

int pgq_cron_register(pgq_conn *c, const pgq_cron_def *d, int64_t prev_ms, int64_t next_ms,
                      const char *who, int64_t *last_ms, char *err, size_t errlen)
{
    char prev[24], next[24];
    snprintf(prev, sizeof prev, "%" PRId64, prev_ms);
    snprintf(next, sizeof next, "%" PRId64, next_ms);
    const char *params[] = { d->name, d->schedule, d->timezone, d->type, d->queue,
                             prev_ms < 0 ? NULL : prev, next_ms < 0 ? NULL : next, who };
    PGresult *r = db_query(c, "SELECT " TS_MS("t") " FROM pgq.cron_register($1, $2, $3, $4, $5, "
                           MS_TS(6) ", " MS_TS(7) ", $8) t",
                           8, params, PGRES_TUPLES_OK, "register cron schedule", err, errlen);
    if (!r)
        return -1;
    *last_ms = db_int64(r, 0, 0, -1);
    PQclear(r);
    return 0;
}

int pgq_cron_fire(pgq_conn *c, const pgq_cron_def *d, int64_t tick_ms, int64_t next_ms,
                  const char *who, pgq_cron_outcome *out, int64_t *job_id, char *err,
                  size_t errlen)
{
    char tick[24], next[24], prio[16];
    snprintf(tick, sizeof tick, "%" PRId64, tick_ms);
    snprintf(next, sizeof next, "%" PRId64, next_ms);
    snprintf(prio, sizeof prio, "%d", d->priority);
    const char *params[] = { d->name, d->schedule, d->timezone, d->type, d->payload, d->queue,
                             d->priority == PGQ_DEFAULT ? NULL : prio, tick,
                             next_ms < 0 ? NULL : next, who };
    char what[160];
    snprintf(what, sizeof what, "cron %s: add the job of its tick", d->name);
    PGresult *r = db_query(c, "SELECT outcome, job_id FROM pgq.cron_fire($1, $2, $3, $4, "
                           "$5::jsonb, $6, $7::int, " MS_TS(8) ", " MS_TS(9) ", $10)",
                           10, params, PGRES_TUPLES_OK, what, err, errlen);
    if (!r)
        return -1;
    const char *o = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "";
    *job_id = db_int64(r, 0, 1, -1);
    if (strcmp(o, "added") == 0)
        *out = PGQ_CRON_ADDED;
    else if (strcmp(o, "taken") == 0)
        *out = PGQ_CRON_TAKEN;
    else if (strcmp(o, "early") == 0)
        *out = PGQ_CRON_EARLY;
    else {
        PQclear(r);
        return seterr(err, errlen, "%s: unexpected answer \"%s\"", what, o);
    }
    PQclear(r);
    return 0;
}

static char *dup_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int pgq_cron_list(pgq_conn *c, pgq_cron_row **out, size_t *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    PGresult *r = db_query(c,
        "SELECT c.name, c.schedule, c.timezone, c.type, c.queue, " TS_MS("c.last_tick") ", "
        TS_MS("c.next_tick") ", c.last_job, j.state, c.fired_by"
        "  FROM pgq.cron c LEFT JOIN pgq.jobs j ON j.id = c.last_job ORDER BY c.name",
        0, NULL, PGRES_TUPLES_OK, "list cron schedules", err, errlen);
    if (!r)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    pgq_cron_row *v = calloc(rows ? rows : 1, sizeof *v);
    if (!v) {
        PQclear(r);
        return seterr(err, errlen, "list cron schedules: out of memory");
    }
    for (size_t i = 0; i < rows; i++) {
        int k = (int)i;
        v[i].name = dup_or_null(r, k, 0);
        v[i].schedule = dup_or_null(r, k, 1);
        v[i].timezone = dup_or_null(r, k, 2);
        v[i].type = dup_or_null(r, k, 3);
        v[i].queue = dup_or_null(r, k, 4);
        v[i].last_tick_ms = db_int64(r, k, 5, -1);
        v[i].next_tick_ms = db_int64(r, k, 6, -1);
        v[i].last_job = db_int64(r, k, 7, -1);
        v[i].last_job_state = dup_or_null(r, k, 8);
        v[i].fired_by = dup_or_null(r, k, 9);
        if (!v[i].name || !v[i].schedule || !v[i].timezone || !v[i].type) {
            PQclear(r);
            pgq_cron_rows_free(v, i + 1);
            return seterr(err, errlen, "list cron schedules: out of memory");
        }
    }
    PQclear(r);
    *out = v;
    *n = rows;
    return 0;
}

void pgq_cron_rows_free(pgq_cron_row *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].name);
        free(rows[i].schedule);
        free(rows[i].timezone);
        free(rows[i].type);
        free(rows[i].queue);
        free(rows[i].last_job_state);
        free(rows[i].fired_by);
    }
    free(rows);
}
