/* The dashboard's model: everything the dashboard knows comes from here.
 *
 * The design is simple: one thread owns one connection. Every refresh
 * interval (or at once when the UI changes what it looks at, or queues an
 * action) it runs the queries for the parts on screen, each a parameterized
 * autocommit statement (no transaction or snapshot is held open between
 * refreshes), and builds a heap struct snapshot whose rows point into the
 * query results it keeps. The finished snapshot is published by swapping a
 * pointer under the mutex; readers take a reference, so the UI draws one
 * consistent snapshot while the model builds the next, and the old one is
 * freed by whoever drops the last reference.
 *
 * Database trouble never reaches the UI as a stall: a failed refresh leaves
 * the last good snapshot in place and records the error and its time in the
 * status, a lost connection is re-established with backoff (250 ms doubling
 * to 5 s), and statement_timeout bounds every query. Actions (requeue,
 * cancel) queue here and run on the model's connection through the library,
 * which records them in pgq.actions; their outcome comes back as the next
 * snapshot's msg. */
#include "model.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NRES 16   /* query results one snapshot may keep */

struct snap_priv {
    PGresult *res[NRES];
    int nres;
};

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* ---- snapshots ------------------------------------------------------------- */

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

/* ---- building one snapshot ----------------------------------------------- */

/* Run sql with text params; the result is kept by the snapshot (rows point
 * into it). NULL with err on failure. */
static PGresult *query(pgq_conn *c, struct snapshot *s, const char *what, const char *sql,
                       int n, const char *const *params, char *err, size_t errlen)
{
    PGconn *pg = pgq_conn_pg(c);
    struct snap_priv *p = s->priv_;
    if (p->nres >= NRES) {
        seterr(err, errlen, "%s: too many results", what);
        return NULL;
    }
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_err(err, errlen, what, pg, r);
        PQclear(r);
        return NULL;
    }
    p->res[p->nres++] = r;
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

static const char *nz(const char *s)
{
    return s && *s ? s : NULL;
}

static int fetch_header(pgq_conn *c, struct snapshot *s, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT current_user, has_table_privilege('pgq.jobs', 'UPDATE'),"
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
    params[0] = nz(s->q.filter.queue);
    params[1] = nz(s->q.filter.type);
    params[2] = nz(s->q.filter.text);
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
    params[4] = nz(s->q.filter.state);
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
    struct snapshot *s = calloc(1, sizeof *s);
    struct snap_priv *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!s || !p) {
        free(s);
        free(p);
        seterr(err, errlen, "out of memory");
        return -1;
    }
    atomic_init(&s->refs, 1);
    s->priv_ = p;
    s->q = *q;
    if (s->q.limit <= 0)
        s->q.limit = 500;
    if (s->q.stale_s <= 0)
        s->q.stale_s = 60;
    if (s->q.tput_bucket_s <= 0)
        s->q.tput_bucket_s = 10;
    s->taken = wall_now();

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

/* ---- the model thread ------------------------------------------------------ */

struct action_node {
    struct model_action a;
    struct action_node *next;
};

struct model {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* under mu */
    bool stop, dirty, orphaned, leaving;
    struct model_query q;
    struct snapshot *cur;
    struct model_status st;
    struct action_node *actions, **actions_tail;
    char msg[512];
    uint64_t msg_seq, gen;
    /* fixed at start */
    char *url, *who;
    int64_t interval_ms;
};

static void model_free(struct model *m)
{
    struct action_node *a = m->actions;
    while (a) {
        struct action_node *next = a->next;
        free(a->a.ids);
        free(a);
        a = next;
    }
    snapshot_release(m->cur);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->mu);
    free(m->url);
    free(m->who);
    free(m);
}

/* Sleep until ms have passed, or until stopped, or (with work) until
 * there is something to fetch or do. Called locked. */
static void wait_locked(struct model *m, int64_t ms, bool work)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    while (!m->stop && !(work && (m->dirty || m->actions)))
        if (pthread_cond_timedwait(&m->cond, &m->mu, &until) == ETIMEDOUT)
            break;
}

/* Run one action on c; the message says what happened, in one line. */
static void run_action(struct model *m, pgq_conn *c, const struct model_action *a)
{
    char err[512], msg[512];
    int64_t count = 0;
    int rc;
    switch (a->kind) {
    case MODEL_REQUEUE_IDS:
        rc = pgq_requeue(c, a->ids, a->nids, m->who, NULL, &count, err, sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "requeued %" PRId64 " of %zu job%s%s", count, a->nids,
                     a->nids == 1 ? "" : "s",
                     (size_t)count < a->nids ? " (the others were no longer dead or cancelled)" : "");
        break;
    case MODEL_REQUEUE_MATCHING:
        rc = pgq_requeue_matching(c, "dead", nz(a->queue), nz(a->type), m->who, &count, err,
                                  sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "requeued %" PRId64 " dead job%s", count,
                     count == 1 ? "" : "s");
        break;
    case MODEL_CANCEL_IDS:
        rc = pgq_cancel(c, a->ids, a->nids, m->who, NULL, &count, err, sizeof err);
        if (rc == 0)
            snprintf(msg, sizeof msg, "cancelled %" PRId64 " of %zu job%s%s", count, a->nids,
                     a->nids == 1 ? "" : "s",
                     (size_t)count < a->nids ? " (the others were no longer ready)" : "");
        break;
    default:
        rc = -1;
        snprintf(err, sizeof err, "unknown action");
    }
    if (rc < 0) {
        size_t n = strcspn(err, "\n");
        if (strstr(err, "permission denied"))
            snprintf(msg, sizeof msg, "refused: this database role may not change jobs (%.*s)",
                     (int)n, err);
        else
            snprintf(msg, sizeof msg, "action failed: %.*s", (int)n, err);
    }
    pthread_mutex_lock(&m->mu);
    snprintf(m->msg, sizeof m->msg, "%s", msg);
    m->msg_seq++;
    pthread_mutex_unlock(&m->mu);
}

/* Settings of the dashboard's own session: a query that takes this long
 * is not worth waiting for (the status line says so), and pgq.actions
 * records the application. Constant text, no parameters. */
static int session_setup(pgq_conn *c, char *err, size_t errlen)
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

static void *model_main(void *arg)
{
    struct model *m = arg;
    pgq_conn *c = NULL;
    bool ready = false;   /* connected and the session set up */
    int64_t backoff = 250;
    char err[512];

    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        pthread_mutex_unlock(&m->mu);
        if (ready && !pgq_connected(c))
            ready = false;
        if (!ready) {
            int rc = c ? pgq_reconnect(c, err, sizeof err)
                       : pgq_connect(m->url, &c, err, sizeof err);
            if (rc == 0)
                rc = session_setup(c, err, sizeof err);
            if (rc == 0) {
                ready = true;
                backoff = 250;
            } else if (c && pgq_connected(c)) {
                /* set up failed on a live connection: start afresh */
                pgq_disconnect(c);
                c = NULL;
            }
        }
        bool ok = ready;
        if (ok) {
            /* Actions first, so the snapshot right after shows their effect. */
            for (;;) {
                pthread_mutex_lock(&m->mu);
                struct action_node *a = m->stop ? NULL : m->actions;
                if (a) {
                    m->actions = a->next;
                    if (!m->actions)
                        m->actions_tail = &m->actions;
                }
                pthread_mutex_unlock(&m->mu);
                if (!a)
                    break;
                run_action(m, c, &a->a);
                free(a->a.ids);
                free(a);
            }
            pthread_mutex_lock(&m->mu);
            struct model_query q = m->q;
            m->dirty = false;
            pthread_mutex_unlock(&m->mu);
            struct snapshot *s = NULL;
            if (model_refresh_once(c, &q, &s, err, sizeof err) < 0)
                ok = false;
            pthread_mutex_lock(&m->mu);
            if (s) {
                s->gen = ++m->gen;
                snprintf(s->msg, sizeof s->msg, "%s", m->msg);
                s->msg_seq = m->msg_seq;
                snapshot_release(m->cur);
                m->cur = s;
                m->st.have_snapshot = true;
                m->st.last_ok = s->taken;
                m->st.error[0] = '\0';
                m->st.error_since = 0;
            }
            m->st.connected = pgq_connected(c);
            pthread_mutex_unlock(&m->mu);
        }
        pthread_mutex_lock(&m->mu);
        if (!ok) {
            snprintf(m->st.error, sizeof m->st.error, "%s", err);
            if (m->st.error_since == 0)
                m->st.error_since = wall_now();
            m->st.connected = c && pgq_connected(c);
            /* A broken connection is retried with backoff (queued actions
             * wait for it); a failed query (a timeout) at the next interval. */
            if (!m->st.connected) {
                wait_locked(m, backoff, false);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
        }
        wait_locked(m, m->interval_ms, true);
    }
    m->leaving = true;
    bool orphaned = m->orphaned;
    pthread_mutex_unlock(&m->mu);
    pgq_disconnect(c);
    if (orphaned)
        model_free(m);
    return NULL;
}

int model_start(const char *url, const char *who, int64_t interval_ms, struct model **out,
                char *err, size_t errlen)
{
    struct model *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m) {
        seterr(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cond, NULL);
    m->actions_tail = &m->actions;
    m->url = strdup(url ? url : "");
    m->who = strdup(who ? who : "pgq top");
    m->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    m->q.parts = MODEL_OVERVIEW;
    if (!m->url || !m->who) {
        model_free(m);
        seterr(err, errlen, "out of memory");
        return -1;
    }
    int rc = pthread_create(&m->thread, NULL, model_main, m);
    if (rc != 0) {
        seterr(err, errlen, "cannot start the model thread: %s", strerror(rc));
        model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void model_stop(struct model *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->mu);

    /* A thread inside a slow query (bounded by statement_timeout) or stuck
     * connecting to an unreachable host cannot be interrupted; do not let
     * it hold up quitting: it frees the model itself when it gets out. */
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    if (pthread_timedjoin_np(m->thread, NULL, &until) == 0) {
        model_free(m);
        return;
    }
    pthread_mutex_lock(&m->mu);
    if (m->leaving) {
        /* it got out just now and will not free the model: join it */
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->thread, NULL);
        model_free(m);
        return;
    }
    m->orphaned = true;
    pthread_mutex_unlock(&m->mu);
    pthread_detach(m->thread);
}

struct snapshot *model_acquire(struct model *m)
{
    pthread_mutex_lock(&m->mu);
    struct snapshot *s = snapshot_ref(m->cur);
    pthread_mutex_unlock(&m->mu);
    return s;
}

void model_status(struct model *m, struct model_status *st)
{
    pthread_mutex_lock(&m->mu);
    *st = m->st;
    pthread_mutex_unlock(&m->mu);
}

void model_set_query(struct model *m, const struct model_query *q, bool force)
{
    pthread_mutex_lock(&m->mu);
    if (force || memcmp(&m->q, q, sizeof *q) != 0) {
        m->q = *q;
        m->dirty = true;
        pthread_cond_signal(&m->cond);
    }
    pthread_mutex_unlock(&m->mu);
}

int model_request(struct model *m, struct model_action *a)
{
    struct action_node *n = calloc(1, sizeof *n);
    if (!n) {
        free(a->ids);
        a->ids = NULL;
        return -1;
    }
    n->a = *a;
    a->ids = NULL;
    pthread_mutex_lock(&m->mu);
    *m->actions_tail = n;
    m->actions_tail = &n->next;
    pthread_cond_signal(&m->cond);
    pthread_mutex_unlock(&m->mu);
    return 0;
}
