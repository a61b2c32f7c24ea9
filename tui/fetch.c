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

static int fetch_header(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
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
    if (pgq_stats(c, &s->queues, &s->nqueues, err, errlen) < 0)
        return -1;
    pgq_queue_stats *t = &s->total;
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
    }
    return 0;
}

static int fetch_overview(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    /* Done jobs per bucket, newest first, from finished_at (the partial
     * index jobs_finished_idx covers it), so the line is right from the
     * first frame and the same on every dashboard. */
    static const char tput_sql[] =
        "SELECT floor(extract(epoch FROM now() - finished_at) / $1::int)::int AS b, count(*)"
        " FROM pgq.jobs WHERE state = 'done'"
        "  AND finished_at > now() - ($1::int * $2::int) * interval '1 second'"
        " GROUP BY b";
    static const char pool_sql[] =
        "SELECT name, host, array_to_string(queues, ','), pid, workers, in_flight,"
        " extract(epoch FROM now() - last_heartbeat)::float8,"
        " extract(epoch FROM now() - started_at)::float8"
        " FROM pgq.workers ORDER BY host, pid, name";
    char bucket[16], nb[16];
    snprintf(bucket, sizeof bucket, "%d", s->q.tput_bucket_s);
    snprintf(nb, sizeof nb, "%d", MODEL_TPUT_BUCKETS);
    const char *params[] = { bucket, nb };
    PGresult *r = query(c, s, "throughput", tput_sql, 2, params, err, errlen);
    if (!r)
        return -1;
    for (int i = 0; i < PQntuples(r); i++) {
        int64_t b = ival(r, i, 0, -1);
        if (b >= 0 && b < MODEL_TPUT_BUCKETS)
            s->tput[b] += ival(r, i, 1, 0);
    }
    if (!(r = query(c, s, "pools", pool_sql, 0, NULL, err, errlen)))
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
        p->in_flight = (int)ival(r, i, 5, 0);
        p->beat_age_s = dval(r, i, 6, 0);
        p->up_s = dval(r, i, 7, 0);
        p->stale = p->beat_age_s > s->q.stale_s;
        s->nstale += p->stale;
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

/* Fill a list from rows of: id, queue, type, state, owner, error,
 * attempts, max_retries, age_s, lease_left_s, scheduled, total. */
static int job_rows(pgq_conn *c, struct snapshot *s, const char *what, const char *sql,
                    int nparams, const char *const *params, struct snap_job **out, size_t *n,
                    int64_t *total, char *err, size_t errlen)
{
    PGresult *r = query(c, s, what, sql, nparams, params, err, errlen);
    if (!r)
        return -1;
    *n = (size_t)PQntuples(r);
    if (!(*out = rows_alloc(*n, sizeof **out, err, errlen)))
        return -1;
    *total = 0;
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
        *total = ival(r, i, 11, 0);
    }
    return 0;
}

static int fetch_running(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT id, queue, type, state, lease_owner, last_error, attempts, max_retries,"
        " extract(epoch FROM now() - started_at)::float8,"
        " extract(epoch FROM lease_expires_at - now())::float8, false, count(*) OVER ()"
        " FROM pgq.jobs WHERE state = 'running'" QT_MATCH TEXT_MATCH
        " ORDER BY started_at, id LIMIT $4::int";
    const char *params[4];
    char limit[16];
    filter_params(s, params, limit, sizeof limit);
    return job_rows(c, s, "running jobs", sql, 4, params, &s->running, &s->nrunning,
                    &s->running_total, err, errlen);
}

static int fetch_dead(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT id, queue, type, state, lease_owner, last_error, attempts, max_retries,"
        " extract(epoch FROM now() - coalesce(finished_at, created_at))::float8, 0, false,"
        " count(*) OVER ()"
        " FROM pgq.jobs WHERE state = 'dead'" QT_MATCH TEXT_MATCH
        " ORDER BY finished_at DESC NULLS LAST, id DESC LIMIT $4::int";
    const char *params[4];
    char limit[16];
    filter_params(s, params, limit, sizeof limit);
    return job_rows(c, s, "dead letters", sql, 4, params, &s->dead, &s->ndead, &s->dead_total,
                    err, errlen);
}

static int fetch_jobs(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    /* state "scheduled" is ready with a future run_at (no state of its own). */
    static const char sql[] =
        "SELECT id, queue, type, state, lease_owner, last_error, attempts, max_retries,"
        " extract(epoch FROM now() - coalesce(finished_at, started_at, created_at))::float8,"
        " extract(epoch FROM run_at - now())::float8, state = 'ready' AND run_at > now(),"
        " count(*) OVER ()"
        " FROM pgq.jobs WHERE ($5::text IS NULL OR state = $5"
        "   OR ($5 = 'scheduled' AND state = 'ready' AND run_at > now()))" QT_MATCH TEXT_MATCH
        " ORDER BY id DESC LIMIT $4::int";
    const char *params[5];
    char limit[16];
    filter_params(s, params, limit, sizeof limit);
    params[4] = filter_param(s->q.filter.state);
    return job_rows(c, s, "jobs", sql, 5, params, &s->jobs, &s->njobs, &s->jobs_total,
                    err, errlen);
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

int model_refresh_once(pgq_conn *c, const struct model_query *q, struct snapshot **out,
                       char *err, size_t errlen)
{
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
    s->taken = snapshot_clock();

    if (fetch_header(c, s, err, errlen) < 0)
        goto fail;
    if ((q->parts & MODEL_OVERVIEW) && fetch_overview(c, s, err, errlen) < 0)
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
    *out = s;
    return 0;
fail:
    snapshot_release(s);
    return -1;
}

/* Settings of the dashboard's own session: a query that takes this long
 * is not worth waiting for (the status line says so), and pgq.actions
 * records the application. Constant text, no parameters. */
int fetch_session_setup(pgq_conn *c, char *err, size_t errlen)
{
    PGconn *pg = pgq_conn_pg(c);
    PGresult *r = PQexec(pg, "SET statement_timeout = '15s'; SET lock_timeout = '5s';"
                             " SET application_name = 'pgq top'");
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -1;
    if (rc < 0)
        pg_err(err, errlen, "session setup", pg, r);
    PQclear(r);
    return rc;
}
