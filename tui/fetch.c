/* Building one snapshot (model_refresh_once, model.h): the queries for the
 * parts on screen, each a parameterized autocommit statement (no
 * transaction or snapshot is held open between refreshes), and the rows of
 * the snapshot pointing into the results it keeps. Runs on the model
 * thread's connection, or a test's. */
#include "fetch.h"
#include "snapshot.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A one-line error: libpq messages end in newlines and may carry DETAIL
 * lines; the status line wants the first line only. */
static void pg_err(char *err, size_t errlen, const char *what, PGconn *pg, const PGresult *r)
{
    const char *m = r ? PQresultErrorMessage(r) : PQerrorMessage(pg);
    if (!m || !*m)
        m = PQerrorMessage(pg);
    if (strncmp(m, "ERROR:  ", 8) == 0)
        m += 8;
    size_t n = strcspn(m, "\n");
    snprintf(err, errlen, "%s: %.*s", what, (int)n, m);
}

/* Run sql with text params; the result is kept by the snapshot (rows point
 * into it). NULL with err on failure. */
static PGresult *query(pgq_conn *c, struct snapshot *s, const char *what, const char *sql,
                       int n, const char *const *params, char *err, size_t errlen)
{
    PGconn *pg = pgq_conn_pg(c);
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(err, errlen, what, pg, r);
        PQclear(r);
        return NULL;
    }
    if (snapshot_keep(s, r) < 0) {
        seterr(err, errlen, "%s: too many results", what);
        PQclear(r);
        return NULL;
    }
    return r;
}

static const char *val(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

static int64_t ival(const PGresult *r, int row, int col, int64_t fallback)
{
    return PQgetisnull(r, row, col) ? fallback : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double dval(const PGresult *r, int row, int col, double fallback)
{
    return PQgetisnull(r, row, col) ? fallback : strtod(PQgetvalue(r, row, col), NULL);
}

static bool bval(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

/* calloc for n rows (at least one, so an empty list is not NULL). */
static void *rows_alloc(size_t n, size_t size, char *err, size_t errlen)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        seterr(err, errlen, "out of memory");
    return p;
}

/* The less exact of two kinds (a sum is only as exact as its parts). */
static pgq_count_kind worse(pgq_count_kind a, pgq_count_kind b)
{
    if (a == PGQ_COUNT_ESTIMATE || b == PGQ_COUNT_ESTIMATE)
        return PGQ_COUNT_ESTIMATE;
    return a == PGQ_COUNT_AT_LEAST || b == PGQ_COUNT_AT_LEAST ? PGQ_COUNT_AT_LEAST
                                                                : PGQ_COUNT_EXACT;
}

/* The totals line: the sum over the queues. */
static void sum_queues(struct snapshot *s)
{
    pgq_queue_stats *t = &s->total;
    memset(t, 0, sizeof *t);
    t->oldest_ready_s = -1;
    t->done_5m_window_s = t->failed_5m_window_s = 300;
    for (size_t i = 0; i < s->nqueues; i++) {
        const pgq_queue_stats *q = &s->queues[i];
        t->ready += q->ready;
        t->scheduled += q->scheduled;
        t->retrying += q->retrying;
        t->running += q->running;
        t->dead += q->dead;
        t->cancelled += q->cancelled;
        t->done += q->done;
        t->done_last_hour += q->done_last_hour;
        t->waiting += q->waiting;
        t->done_5m += q->done_5m;
        t->failed_5m += q->failed_5m;
        t->ready_is = worse(t->ready_is, q->ready_is);
        t->future_is = worse(t->future_is, q->future_is);
        t->dead_is = worse(t->dead_is, q->dead_is);
        t->cancelled_is = worse(t->cancelled_is, q->cancelled_is);
        t->done_is = worse(t->done_is, q->done_is);
        t->done_last_hour_is = worse(t->done_last_hour_is, q->done_last_hour_is);
        /* every queue's window is the same range's */
        if (q->done_5m_window_s < t->done_5m_window_s)
            t->done_5m_window_s = q->done_5m_window_s;
        if (q->failed_5m_window_s < t->failed_5m_window_s)
            t->failed_5m_window_s = q->failed_5m_window_s;
        if (q->oldest_ready_s > t->oldest_ready_s)
            t->oldest_ready_s = q->oldest_ready_s;
        t->paused |= q->paused;
        t->waiting_is = worse(t->waiting_is, q->waiting_is);
    }
}

/* The running jobs per queue and pool (lease owners are "pool name/wN"),
 * read once per refresh and shared by the queue rows (between counts), the
 * pools' in-flight jobs and the orphans: each scan of the running index
 * walks the entries of every job that ran since the last vacuum (a million
 * right after a bulk load took 4 ms a scan at 10M jobs). */
static int fetch_runs(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT queue, regexp_replace(lease_owner, '/[^/]*$', ''), count(*)"
        " FROM pgq.jobs WHERE state = 'running' GROUP BY 1, 2";
    if (s->runs_read)
        return 0;
    PGresult *r = query(c, s, "running jobs", sql, 0, NULL, err, errlen);
    if (!r)
        return -1;
    s->nruns = (size_t)PQntuples(r);
    if (!(s->runs = rows_alloc(s->nruns, sizeof *s->runs, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->nruns; i++)
        s->runs[i] = (struct snap_run){ val(r, i, 0), val(r, i, 1), ival(r, i, 2, 0) };
    s->runs_read = true;
    return 0;
}

/* The figures that stay exact and cheap however large the table, read at
 * every refresh when the counts are prev's: per queue (those counted, $2,
 * and any paused), paused and the live pools that claim from it (the
 * running jobs come from fetch_runs); and the age of the oldest due job
 * of the queues ($3) that had due jobs at the last count: the first due
 * entry of each of their priorities in the claim index (a skip scan within
 * the queue, one probe per priority). Only those queues: probing one
 * without ready jobs would walk the claim index's entries of its claimed
 * jobs, which stay there until vacuum (a million after a bulk load), at
 * every refresh; they are found at the next count. */
static const char live_sql[] =
    "WITH RECURSIVE qp AS ("
    "  SELECT f.queue, f.priority FROM unnest($3::text[]) AS k(queue)"
    "   CROSS JOIN LATERAL (SELECT j.queue, j.priority FROM pgq.jobs j"
    "                        WHERE j.state = 'ready' AND j.queue = k.queue"
    "                        ORDER BY j.priority LIMIT 1) f"
    "  UNION ALL"
    "  SELECT n.queue, n.priority FROM qp"
    "   CROSS JOIN LATERAL (SELECT j.queue, j.priority FROM pgq.jobs j"
    "                        WHERE j.state = 'ready' AND j.queue = qp.queue"
    "                          AND j.priority > qp.priority"
    "                        ORDER BY j.priority LIMIT 1) n),"
    " due AS (SELECT qp.queue, min(f.run_at) AS first FROM qp"
    "   CROSS JOIN LATERAL (SELECT j.run_at FROM pgq.jobs j WHERE j.state = 'ready'"
    "                        AND j.queue = qp.queue AND j.priority = qp.priority"
    "                        AND j.run_at <= now() ORDER BY j.run_at LIMIT 1) f"
    "   GROUP BY qp.queue),"
    " live AS (SELECT unnest(w.queues) AS queue FROM pgq.workers w"
    "           WHERE w.last_heartbeat > now() - $1::float8 * interval '1 second'),"
    " names AS (SELECT unnest($2::text[]) AS queue"
    "           UNION SELECT q.queue FROM pgq.queues q WHERE q.paused)"
    " SELECT n.queue, 0, coalesce(extract(epoch FROM now() - d.first)::float8, -1),"
    "  coalesce(p.paused, false), (SELECT count(*) FROM live l WHERE l.queue = n.queue)"
    " FROM names n LEFT JOIN due d ON d.queue = n.queue"
    " LEFT JOIN pgq.queues p ON p.queue = n.queue";

/* A text[] literal of the queues of prev (only those that had due jobs,
 * with only_due); malloc'd, NULL when out of memory. Every element
 * quoted, \ and " escaped. */
static char *queue_array(const struct snapshot *prev, bool only_due)
{
    size_t cap = 3;
    for (size_t k = 0; k < prev->nqueues; k++)
        cap += 2 * strlen(prev->queues[k].queue) + 3;
    char *a = malloc(cap), *p = a;
    if (!a)
        return NULL;
    *p++ = '{';
    for (size_t k = 0; k < prev->nqueues; k++) {
        if (only_due && prev->queues[k].ready <= 0)
            continue;
        if (p[-1] != '{')
            *p++ = ',';
        *p++ = '"';
        for (const char *c = prev->queues[k].queue; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return a;
}

/* The counts of prev (copied) with the figures of live_sql read anew. 1
 * when they cannot be reused (a queue prev did not list has running jobs
 * or is paused now: it must be counted), 0 done, -1 error. */
static int reuse_counts(pgq_conn *c, struct snapshot *s, const struct snapshot *prev,
                        char *err, size_t errlen)
{
    char stale[32];
    snprintf(stale, sizeof stale, "%.3f", s->q.stale_s);
    char *all = queue_array(prev, false), *due = queue_array(prev, true);
    if (!all || !due) {
        free(all);
        free(due);
        seterr(err, errlen, "out of memory");
        return -1;
    }
    const char *params[] = { stale, all, due };
    PGresult *r = query(c, s, "queue activity", live_sql, 3, params, err, errlen);
    free(all);
    free(due);
    if (!r)
        return -1;
    if (fetch_runs(c, s, err, errlen) < 0)
        return -1;
    for (int i = 0; i < PQntuples(r) + (int)s->nruns; i++) {
        const char *name = i < PQntuples(r) ? val(r, i, 0) : s->runs[i - PQntuples(r)].queue;
        bool known = false;
        for (size_t k = 0; k < prev->nqueues && !known; k++)
            known = strcmp(prev->queues[k].queue, name) == 0;
        if (!known)
            return 1;
    }
    if (!(s->queues = rows_alloc(prev->nqueues, sizeof *s->queues, err, errlen)))
        return -1;
    s->nqueues = prev->nqueues;
    if (prev->nqueues)
        memcpy(s->queues, prev->queues, prev->nqueues * sizeof *s->queues);
    for (size_t k = 0; k < s->nqueues; k++) {
        pgq_queue_stats *q = &s->queues[k];
        q->running = 0;
        q->oldest_ready_s = -1;
        q->paused = false;
        q->pools = 0;
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(q->queue, val(r, i, 0)) == 0) {
                q->oldest_ready_s = dval(r, i, 2, -1);
                q->paused = bval(r, i, 3);
                q->pools = (int)ival(r, i, 4, 0);
            }
        for (size_t i = 0; i < s->nruns; i++)
            if (strcmp(q->queue, s->runs[i].queue) == 0)
                q->running += s->runs[i].n;
    }
    s->counts_taken = prev->counts_taken;
    s->counts_s = prev->counts_s;
    s->counts_reused = true;
    return 0;
}

/* The counts may be prev's (NULL: count): see model_refresh_reusing. */
static int fetch_header(pgq_conn *c, struct snapshot *s, const struct snapshot *prev,
                        char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT current_user, has_function_privilege('pgq.requeue(bigint[], text)', 'EXECUTE'),"
        " pg_database_size(current_database())";
    PGresult *r = query(c, s, "who am I", sql, 0, NULL, err, errlen);
    if (!r)
        return -1;
    snprintf(s->user, sizeof s->user, "%s", val(r, 0, 0));
    s->read_only = !bval(r, 0, 1);
    s->db_bytes = ival(r, 0, 2, 0);
    int rc = 1;
    if (prev && (rc = reuse_counts(c, s, prev, err, errlen)) < 0)
        return -1;
    if (rc > 0) {
        /* Capped index ranges, not a count of every row (migration 011):
         * the cost of a refresh does not grow with the table. */
        double t0 = snapshot_clock();
        if (pgq_stats_capped(c, s->q.stats_cap, s->q.stale_s, &s->queues, &s->nqueues, err,
                             errlen) < 0)
            return -1;
        s->counts_taken = s->taken;
        s->counts_s = snapshot_clock() - t0;
    }
    sum_queues(s);
    return 0;
}

/* The throughput line is recent work like the counts: prev's when the
 * counts are (reused with them, as old as they are). */
static int fetch_overview(pgq_conn *c, struct snapshot *s, const struct snapshot *prev,
                          char *err, size_t errlen)
{
    /* Done jobs per bucket, newest first, from finished_at: the newest
     * stats_cap of the window (a backward range of jobs_finished_idx), so
     * that a busy hour costs no more than a quiet one; the line is complete
     * as far back as those reach. */
    static const char tput_sql[] =
        "WITH d AS (SELECT finished_at FROM pgq.jobs WHERE state = 'done'"
        "   AND finished_at > now() - ($1::int * $2::int) * interval '1 second'"
        "   ORDER BY finished_at DESC LIMIT $3::int + 1)"
        " SELECT floor(extract(epoch FROM now() - finished_at) / $1::int)::int AS b, count(*),"
        "  (SELECT CASE WHEN count(*) > $3::int"
        "          THEN extract(epoch FROM now() - min(finished_at))::float8 END FROM d)"
        " FROM d GROUP BY b";
    /* A pool's in-flight jobs are the running jobs it leases (fetch_runs),
     * read in the refresh's snapshot like the header's running count, so
     * that the two always agree; the pool's own report (in_flight, at each
     * heartbeat) lags. */
    static const char pool_sql[] =
        "SELECT name, host, array_to_string(queues, ','), pid, workers,"
        " extract(epoch FROM now() - last_heartbeat)::float8,"
        " extract(epoch FROM now() - started_at)::float8"
        " FROM pgq.workers ORDER BY host, pid, name";
    char bucket[16], nb[16], cap[16];
    snprintf(bucket, sizeof bucket, "%d", s->q.tput_bucket_s);
    snprintf(nb, sizeof nb, "%d", MODEL_TPUT_BUCKETS);
    snprintf(cap, sizeof cap, "%d", s->q.stats_cap);
    const char *params[] = { bucket, nb, cap };
    PGresult *r;
    if (s->counts_reused && prev && (prev->q.parts & MODEL_OVERVIEW) &&
        prev->q.tput_bucket_s == s->q.tput_bucket_s) {
        memcpy(s->tput, prev->tput, sizeof s->tput);
        s->tput_covered_s = prev->tput_covered_s;
    } else {
        double t0 = snapshot_clock();
        if (!(r = query(c, s, "throughput", tput_sql, 3, params, err, errlen)))
            return -1;
        s->tput_covered_s = (double)s->q.tput_bucket_s * MODEL_TPUT_BUCKETS;
        for (int i = 0; i < PQntuples(r); i++) {
            int64_t b = ival(r, i, 0, -1);
            if (b >= 0 && b < MODEL_TPUT_BUCKETS)
                s->tput[b] += ival(r, i, 1, 0);
            if (!PQgetisnull(r, i, 2))
                s->tput_covered_s = dval(r, i, 2, 0);
        }
        if (!s->counts_reused)
            s->counts_s += snapshot_clock() - t0;   /* part of what a count costs */
    }
    static const char limit_sql[] =
        "SELECT type, concurrency, running, rate_count, rate_ms, window_starts, blocked"
        " FROM pgq.type_use ORDER BY type";
    if (!(r = query(c, s, "limits", limit_sql, 0, NULL, err, errlen)))
        return -1;
    s->nlimits = (size_t)PQntuples(r);
    if (!(s->limits = rows_alloc(s->nlimits, sizeof *s->limits, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->nlimits; i++)
        s->limits[i] = (struct snap_limit){ val(r, i, 0), (int)ival(r, i, 1, 0),
                                            (int)ival(r, i, 3, 0), ival(r, i, 2, 0),
                                            ival(r, i, 4, 0), ival(r, i, 5, 0), bval(r, i, 6) };
    if (fetch_runs(c, s, err, errlen) < 0 ||
        !(r = query(c, s, "pools", pool_sql, 0, NULL, err, errlen)))
        return -1;
    s->npools = (size_t)PQntuples(r);
    if (!(s->pools = rows_alloc(s->npools, sizeof *s->pools, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->npools; i++) {
        struct snap_pool *p = &s->pools[i];
        p->name = val(r, i, 0);
        p->host = val(r, i, 1);
        p->queues = val(r, i, 2);
        p->pid = (int)ival(r, i, 3, 0);
        p->workers = (int)ival(r, i, 4, 0);
        p->beat_age_s = dval(r, i, 5, 0);
        p->up_s = dval(r, i, 6, 0);
        p->stale = p->beat_age_s > s->q.stale_s;
        s->nstale += p->stale;
    }
    /* each pool's share of the running jobs; those of no registered pool
     * are orphans */
    s->running_orphans = 0;
    for (size_t k = 0; k < s->nruns; k++) {
        bool owned = false;
        for (size_t i = 0; i < s->npools; i++)
            if (strcmp(s->pools[i].name, s->runs[k].pool) == 0) {
                s->pools[i].in_flight += (int)s->runs[k].n;
                owned = true;
            }
        if (!owned)
            s->running_orphans += s->runs[k].n;
    }
    /* The periodic jobs: a row per schedule, few. */
    static const char cron_sql[] =
        "SELECT c.name, c.schedule, c.timezone, c.type, c.last_job, j.state,"
        " extract(epoch FROM c.next_tick - now())::float8"
        " FROM pgq.cron c LEFT JOIN pgq.jobs j ON j.id = c.last_job ORDER BY c.name";
    if (!(r = query(c, s, "cron", cron_sql, 0, NULL, err, errlen)))
        return -1;
    s->ncrons = (size_t)PQntuples(r);
    if (!(s->crons = rows_alloc(s->ncrons, sizeof *s->crons, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->ncrons; i++) {
        struct snap_cron *k = &s->crons[i];
        k->name = val(r, i, 0);
        k->schedule = val(r, i, 1);
        k->timezone = val(r, i, 2);
        k->type = val(r, i, 3);
        k->last_job = ival(r, i, 4, -1);
        k->last_state = PQgetisnull(r, i, 5) ? NULL : val(r, i, 5);
        k->has_next = !PQgetisnull(r, i, 6);
        k->next_in_s = dval(r, i, 6, 0);
    }
    return 0;
}

/* The filter as query parameters $1 queue, $2 type, $3 text, $4 limit. */
static void filter_params(const struct snapshot *s, const char **params, char *limit, size_t len)
{
    snprintf(limit, len, "%d", s->q.limit);
    params[0] = filter_param(s->q.filter.queue);
    params[1] = filter_param(s->q.filter.type);
    params[2] = filter_param(s->q.filter.text);
    params[3] = limit;
}

/* Text filter: a case-insensitive substring of the type, queue, last error,
 * payload or the id; strpos, so % and _ typed by the operator are literal. */
#define TEXT_MATCH \
    " AND ($3::text IS NULL OR strpos(lower(type || ' ' || queue || ' ' || coalesce(last_error, '')" \
    "      || ' ' || payload::text), lower($3)) > 0 OR id::text = $3)"
#define QT_MATCH \
    " AND ($1::text IS NULL OR queue = $1) AND ($2::text IS NULL OR type = $2)"

/* A list's total: its rows (FROM and WHERE of the list) counted up to $4,
 * the cap, instead of all of them (count(*) OVER () counted every matching
 * row at every refresh). */
#define CAPPED_COUNT(from_where) \
    "SELECT count(*) FROM (SELECT 1" from_where " LIMIT $4::int + 1) x"

/* Fill a list from rows of: id, queue, type, state, owner, error,
 * attempts, max_retries, age_s, lease_left_s, scheduled; and its total
 * from count_sql with the same parameters but the cap for $4. */
static int job_rows(pgq_conn *c, struct snapshot *s, const char *what, const char *sql,
                    const char *count_sql, int nparams, const char **params,
                    struct snap_job **out, size_t *n, int64_t *total, bool *capped,
                    char *err, size_t errlen)
{
    PGresult *r = query(c, s, what, sql, nparams, params, err, errlen);
    if (!r)
        return -1;
    *n = (size_t)PQntuples(r);
    if (!(*out = rows_alloc(*n, sizeof **out, err, errlen)))
        return -1;
    for (int i = 0; i < (int)*n; i++) {
        struct snap_job *j = &(*out)[i];
        j->id = ival(r, i, 0, 0);
        j->queue = val(r, i, 1);
        j->type = val(r, i, 2);
        j->state = val(r, i, 3);
        j->owner = val(r, i, 4);
        j->error = val(r, i, 5);
        j->attempts = (int)ival(r, i, 6, 0);
        j->max_retries = (int)ival(r, i, 7, 0);
        j->age_s = dval(r, i, 8, 0);
        j->lease_left_s = dval(r, i, 9, 0);
        j->scheduled = bval(r, i, 10);
    }
    char cap[16];
    snprintf(cap, sizeof cap, "%d", s->q.stats_cap);
    const char *limit = params[3];
    params[3] = cap;
    r = query(c, s, what, count_sql, nparams, params, err, errlen);
    params[3] = limit;
    if (!r)
        return -1;
    *total = ival(r, 0, 0, 0);
    *capped = *total > s->q.stats_cap;
    if (*capped)
        *total = s->q.stats_cap;
    if (*total < (int64_t)*n)
        *total = (int64_t)*n;   /* never fewer than the rows listed */
    return 0;
}

#define RUNNING_FROM " FROM pgq.jobs WHERE state = 'running'" QT_MATCH TEXT_MATCH
#define DEAD_FROM " FROM pgq.jobs WHERE state = 'dead'" QT_MATCH TEXT_MATCH
/* state "scheduled" is ready with a future run_at (no state of its own). */
#define JOBS_FROM \
    " FROM pgq.jobs WHERE ($5::text IS NULL OR state = $5" \
    "   OR ($5 = 'scheduled' AND state = 'ready' AND run_at > now()))" QT_MATCH TEXT_MATCH

static int fetch_running(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT id, queue, type, state, lease_owner, last_error, attempts, max_retries,"
        " extract(epoch FROM now() - started_at)::float8,"
        " extract(epoch FROM lease_expires_at - now())::float8, false"
        RUNNING_FROM " ORDER BY started_at, id LIMIT $4::int";
    static const char count_sql[] = CAPPED_COUNT(RUNNING_FROM);
    const char *params[4];
    char limit[16];
    filter_params(s, params, limit, sizeof limit);
    return job_rows(c, s, "running jobs", sql, count_sql, 4, params, &s->running, &s->nrunning,
                    &s->running_total, &s->running_total_capped, err, errlen);
}

static int fetch_dead(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    /* Newest first along the finished index (a dead job always has its
     * finished_at), not a sort of every dead job. */
    static const char sql[] =
        "SELECT id, queue, type, state, lease_owner, last_error, attempts, max_retries,"
        " extract(epoch FROM now() - coalesce(finished_at, created_at))::float8, 0, false"
        DEAD_FROM " ORDER BY finished_at DESC, id DESC LIMIT $4::int";
    static const char count_sql[] = CAPPED_COUNT(DEAD_FROM);
    const char *params[4];
    char limit[16];
    filter_params(s, params, limit, sizeof limit);
    return job_rows(c, s, "dead letters", sql, count_sql, 4, params, &s->dead, &s->ndead,
                    &s->dead_total, &s->dead_total_capped, err, errlen);
}

static int fetch_jobs(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT id, queue, type, state, lease_owner,"
        /* The error only where it is the job's present: a done job's
         * last_error is an earlier attempt's (the detail shows it as such). */
        " CASE WHEN state IN ('dead', 'cancelled') OR (state = 'ready' AND attempts > 0)"
        "  THEN last_error END, attempts, max_retries,"
        " extract(epoch FROM now() - coalesce(finished_at, started_at, created_at))::float8,"
        " extract(epoch FROM run_at - now())::float8, state = 'ready' AND run_at > now()"
        JOBS_FROM " ORDER BY id DESC LIMIT $4::int";
    static const char count_sql[] = CAPPED_COUNT(JOBS_FROM);
    const char *params[5];
    char limit[16];
    filter_params(s, params, limit, sizeof limit);
    params[4] = filter_param(s->q.filter.state);
    return job_rows(c, s, "jobs", sql, count_sql, 5, params, &s->jobs, &s->njobs,
                    &s->jobs_total, &s->jobs_total_capped, err, errlen);
}

static int fetch_health(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char tables_sql[] =
        "SELECT s.relname::text, pg_total_relation_size(s.relid), s.n_live_tup, s.n_dead_tup,"
        " extract(epoch FROM now() - s.last_vacuum)::float8,"
        " extract(epoch FROM now() - s.last_autovacuum)::float8"
        " FROM pg_stat_user_tables s WHERE s.schemaname = $1"
        " ORDER BY pg_total_relation_size(s.relid) DESC, s.relname";
    /* Who holds back vacuum: the oldest snapshots (backend_xmin) of other
     * sessions. */
    static const char xact_sql[] =
        "SELECT pid, extract(epoch FROM now() - xact_start)::float8, age(backend_xmin),"
        " state, usename::text, application_name,"
        " left(regexp_replace(query, '\\s+', ' ', 'g'), 300)"
        " FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()"
        " ORDER BY age(backend_xmin) DESC, xact_start LIMIT 5";
    /* Waiting lock requests of sessions that touch pgq tables: a wait on a
     * row shows as a transactionid lock, so the test is "the waiter holds
     * or wants a lock on a pgq relation", not the relation of the wait. */
    static const char lock_sql[] =
        "WITH rels AS (SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        "               WHERE n.nspname = $1)"
        " SELECT l.pid, extract(epoch FROM now() - a.query_start)::float8,"
        "  coalesce((SELECT n.nspname || '.' || c.relname FROM pg_class c"
        "            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = l.relation),"
        "           l.locktype), l.mode,"
        "  array_to_string(pg_blocking_pids(l.pid), ','),"
        "  left(regexp_replace(a.query, '\\s+', ' ', 'g'), 300)"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE NOT l.granted"
        "  AND l.pid IN (SELECT pid FROM pg_locks WHERE relation IN (SELECT oid FROM rels))"
        " ORDER BY a.query_start LIMIT 20";
    const char *params[] = { "pgq" };
    PGresult *r = query(c, s, "table statistics", tables_sql, 1, params, err, errlen);
    if (!r)
        return -1;
    s->ntables = (size_t)PQntuples(r);
    if (!(s->tables = rows_alloc(s->ntables, sizeof *s->tables, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->ntables; i++) {
        struct snap_table *t = &s->tables[i];
        t->name = val(r, i, 0);
        t->bytes = ival(r, i, 1, 0);
        t->live = ival(r, i, 2, 0);
        t->dead = ival(r, i, 3, 0);
        t->vacuum_age_s = dval(r, i, 4, -1);
        t->autovacuum_age_s = dval(r, i, 5, -1);
    }
    if (!(r = query(c, s, "oldest transactions", xact_sql, 0, NULL, err, errlen)))
        return -1;
    s->nxacts = (size_t)PQntuples(r);
    if (!(s->xacts = rows_alloc(s->nxacts, sizeof *s->xacts, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->nxacts; i++) {
        struct snap_xact *x = &s->xacts[i];
        x->pid = (int)ival(r, i, 0, 0);
        x->age_s = dval(r, i, 1, 0);
        x->xmin_age = ival(r, i, 2, 0);
        x->state = val(r, i, 3);
        x->user = val(r, i, 4);
        x->app = val(r, i, 5);
        x->query = val(r, i, 6);
    }
    if (!(r = query(c, s, "lock waits", lock_sql, 1, params, err, errlen)))
        return -1;
    s->nlocks = (size_t)PQntuples(r);
    if (!(s->locks = rows_alloc(s->nlocks, sizeof *s->locks, err, errlen)))
        return -1;
    for (int i = 0; i < (int)s->nlocks; i++) {
        struct snap_lock *l = &s->locks[i];
        l->pid = (int)ival(r, i, 0, 0);
        l->wait_s = dval(r, i, 1, 0);
        l->rel = val(r, i, 2);
        l->mode = val(r, i, 3);
        l->blockers = val(r, i, 4);
        l->query = val(r, i, 5);
    }
    return 0;
}

/* A statement without parameters or rows (transaction control). */
static int exec_simple(pgq_conn *c, const char *sql, char *err, size_t errlen)
{
    PGconn *pg = pgq_conn_pg(c);
    PGresult *r = PQexec(pg, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        pg_err(err, errlen, sql, pg, r);
    PQclear(r);
    return rc;
}

int model_refresh_once(pgq_conn *c, const struct model_query *q, struct snapshot **out,
                       char *err, size_t errlen)
{
    return model_refresh_reusing(c, q, NULL, out, err, errlen);
}

int model_refresh_reusing(pgq_conn *c, const struct model_query *q, const struct snapshot *prev,
                          struct snapshot **out, char *err, size_t errlen)
{
    bool in_xact = false;
    struct snapshot *s = snapshot_new();
    *out = NULL;
    if (!s) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    s->q = *q;
    if (s->q.limit <= 0)
        s->q.limit = 500;
    if (s->q.stale_s <= 0)
        s->q.stale_s = 60;
    if (s->q.tput_bucket_s <= 0)
        s->q.tput_bucket_s = 10;
    if (s->q.stats_cap <= 0)
        s->q.stats_cap = MODEL_STATS_CAP;
    s->taken = snapshot_clock();
    /* counts of another cap or stale limit are not these */
    if (prev && (prev->q.stats_cap != s->q.stats_cap || prev->q.stale_s != s->q.stale_s))
        prev = NULL;

    /* One read-only snapshot of the database for the whole refresh, so the
     * figures agree with each other (the header's running and the pools'
     * in-flight jobs); committed before returning, never held between
     * refreshes. */
    if (exec_simple(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, errlen) < 0)
        goto fail;
    in_xact = true;
    if (fetch_header(c, s, prev, err, errlen) < 0)
        goto fail;
    if ((q->parts & MODEL_OVERVIEW) && fetch_overview(c, s, prev, err, errlen) < 0)
        goto fail;
    if ((q->parts & MODEL_RUNNING) && fetch_running(c, s, err, errlen) < 0)
        goto fail;
    if ((q->parts & MODEL_DEAD) && fetch_dead(c, s, err, errlen) < 0)
        goto fail;
    if ((q->parts & MODEL_JOBS) && fetch_jobs(c, s, err, errlen) < 0)
        goto fail;
    if ((q->parts & MODEL_HEALTH) && fetch_health(c, s, err, errlen) < 0)
        goto fail;
    if (q->detail_id > 0 && pgq_job_describe(c, q->detail_id, &s->detail, err, errlen) < 0)
        goto fail;
    in_xact = false;
    if (exec_simple(c, "COMMIT", err, errlen) < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (in_xact) {
        /* The error is the statement's: keep it and end the transaction. A
         * ROLLBACK that fails has lost the connection (which the model
         * then makes anew), so nothing stays open either way. */
        char ignored[256];
        (void)exec_simple(c, "ROLLBACK", ignored, sizeof ignored);
    }
    snapshot_release(s);
    return -1;
}

/* Settings of the dashboard's own session: a query that takes this long
 * is not worth waiting for (the status line says so), and pgq.actions
 * records the application. Constant text, no parameters. */
int fetch_session_setup(pgq_conn *c, char *err, size_t errlen)
{
    PGconn *pg = pgq_conn_pg(c);
    /* No parallel workers: the dashboard's queries are small capped ranges,
     * and workers would only spread their cost over other processes. */
    PGresult *r = PQexec(pg, "SET statement_timeout = '15s'; SET lock_timeout = '5s';"
                             " SET max_parallel_workers_per_gather = 0;"
                             " SET application_name = 'pgq top'");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        pg_err(err, errlen, "session setup", pg, r);
    PQclear(r);
    return rc;
}
