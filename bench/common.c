/* common.c -- the parts every pgq-bench benchmark uses: monotonic clocks,
 * the one JSON line and its distributions, parameterized queries with a
 * message on failure, the cheap "anything unfinished?" probe and the wait
 * for it to say no, the no-op handler with its per-job counters, batches
 * of numbered jobs, and the temporary pool.ini from which the embedded (or,
 * for footprint, external) pool is built and started. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "pgq_config.h"

struct opts g_opts;
char g_settings[512] = "{}";

atomic_int *g_calls;
_Atomic int64_t *g_start_ns;
long g_njobs;
atomic_long g_distinct;
atomic_long g_bad_payload;
long g_target = LONG_MAX;

static pthread_mutex_t handled_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t handled_cv = PTHREAD_COND_INITIALIZER;

int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* ---- the JSON line ---------------------------------------------------------- */

void json_head(FILE *f, bool ok, bool counts)
{
    fprintf(f, "{\"system\":\"pgq\",\"version\":\"%s\",\"bench\":\"%s\",\"profile\":\"%s\"",
            PGQ_VERSION, g_opts.bench, g_opts.profile);
    if (counts) {
        fprintf(f, ",\"concurrency\":%ld", g_opts.concurrency);
        if (g_opts.jobs >= 0)
            fprintf(f, ",\"jobs\":%ld", g_opts.jobs);
    }
    fprintf(f, ",\"settings\":%s,\"ok\":%s", g_settings, ok ? "true" : "false");
}

void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void fail_json(const char *msg)
{
    /* The watchdog and the main thread may both get here. */
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&mu);
    /* Every bench but backlog (no pool) reports its concurrency on success:
     * its failure line says it too. */
    json_head(stdout, false, strcmp(g_opts.bench, "backlog") != 0);
    fputs(",\"error\":", stdout);
    json_str(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
    pthread_mutex_unlock(&mu);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    return v[rank > 0 ? rank - 1 : 0];
}

void print_dist(FILE *f, const char *name, double *v, size_t n)
{
    fprintf(f, ",\"%s\":", name);
    if (n == 0) {
        fputs("{\"n\":0}", f);
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    fprintf(f, "{\"n\":%zu,\"min\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f,"
            "\"mean\":%.3f}", n, v[0], pct(v, n, 50), pct(v, n, 95), pct(v, n, 99), v[n - 1],
            sum / (double)n);
}

/* ---- database ------------------------------------------------------------------ */

PGresult *bench_query(pgq_conn *c, const char *what, const char *sql, int nparams,
                      const char *const *params, ExecStatusType want, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(pgq_conn_pg(c), sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        const char *m = PQresultErrorMessage(r);
        if (!*m)
            m = PQerrorMessage(pgq_conn_pg(c));
        snprintf(err, errlen, "%s: %.*s", what, (int)strcspn(m, "\n"), m);
        PQclear(r);
        return NULL;
    }
    return r;
}

int bench_open(pgq_conn **out)
{
    char err[1024], msg[1100];
    const char *url = getenv("DATABASE_URL");
    *out = NULL;
    if (!url || !*url) {
        fail_json("DATABASE_URL is not set");
        return -1;
    }
    pgq_conn *c;
    if (pgq_connect(url, &c, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "connecting to DATABASE_URL: %s", err);
        fail_json(msg);
        return -1;
    }
    PGresult *r = bench_query(c, "reading server settings",
        "SELECT current_setting('fsync'), current_setting('synchronous_commit'), "
        "current_setting('shared_buffers'), current_setting('server_version')",
        0, NULL, PGRES_TUPLES_OK, err, sizeof err);
    if (!r) {
        fail_json(err);
        pgq_disconnect(c);
        return -1;
    }
    snprintf(g_settings, sizeof g_settings,
             "{\"fsync\":\"%s\",\"synchronous_commit\":\"%s\",\"shared_buffers\":\"%s\","
             "\"server_version\":\"%s\"}",
             PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
    PQclear(r);
    if (pgq_migrate(c, NULL, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "migrating: %s", err);
        fail_json(msg);
        pgq_disconnect(c);
        return -1;
    }
    *out = c;
    return 0;
}

int bench_unfinished(pgq_conn *c, char *err, size_t errlen)
{
    /* Scalar subqueries with the indexes' own order, not EXISTS: with
     * EXISTS the planner may choose a sequential scan that walks every done
     * row before the first ready one. The running jobs in the order of
     * jobs_running_idx (id); no index has had lease_expires_at as its key
     * since migration 005. A probe still walks the claim index's entries
     * of every job claimed since the last vacuum (3.3 ms of server CPU in
     * an exec drain), which is why watchers probe only once the handlers
     * have seen every job (bench_watch_drain). */
    static const char sql[] =
        "SELECT (SELECT id FROM pgq.jobs WHERE state = 'ready' AND type = $1"
        "         ORDER BY queue, priority, run_at, id LIMIT 1) IS NOT NULL"
        "    OR (SELECT id FROM pgq.jobs WHERE state = 'running' AND type = $1"
        "         ORDER BY id LIMIT 1) IS NOT NULL";
    const char *params[1] = { JOB_TYPE };
    PGresult *r = bench_query(c, "looking for unfinished jobs", sql, 1, params,
                              PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    int yes = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return yes;
}

int bench_expect_empty(pgq_conn *c)
{
    char err[1024];
    int busy = bench_unfinished(c, err, sizeof err);
    if (busy != 0)
        fail_json(busy < 0 ? err : "the database is not empty (unfinished bench jobs found); "
                                   "use a fresh one");
    return busy != 0 ? -1 : 0;
}

int bench_wait_empty(pgq_conn *c, int64_t deadline, double every_ms, int64_t *end, char *err,
                     size_t errlen)
{
    for (;;) {
        int busy = bench_unfinished(c, err, errlen);
        int64_t t = now_ns();
        if (end)
            *end = t;
        if (busy <= 0 || t >= deadline)
            return busy;
        sleep_ms(every_ms);
    }
}

int bench_db_counts(pgq_conn *c, struct db_counts *out, char *err, size_t errlen)
{
    const char *params[1] = { JOB_TYPE };
    PGresult *r = bench_query(c, "counting the bench jobs",
        "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE attempts > 1),"
        "       count(*) FILTER (WHERE state IN ('ready', 'running'))"
        "  FROM pgq.jobs WHERE type = $1", 1, params, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    out->done = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    out->multi = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    out->left = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    PQclear(r);
    return 0;
}

/* ---- the handler -------------------------------------------------------------- */

/* Job order k from a payload such as {"i": 17}; -1 when absent. */
static long payload_index(const char *payload)
{
    const char *p = strstr(payload, "\"i\"");
    if (!p || !(p = strchr(p, ':')))
        return -1;
    char *end;
    long k = strtol(p + 1, &end, 10);
    return end == p + 1 || k < 0 || k >= g_njobs ? -1 : k;
}

int bench_noop(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    int64_t t = now_ns();
    (void)arg;
    (void)err;
    (void)errlen;
    long k = payload_index(pgq_ctx_job(ctx)->payload);
    if (k < 0) {
        atomic_fetch_add(&g_bad_payload, 1);
        return 0;
    }
    if (atomic_fetch_add(&g_calls[k], 1) != 0)
        return 0;
    if (g_start_ns)
        atomic_store(&g_start_ns[k], t);
    bench_handled_one();
    return 0;
}

void bench_handled_one(void)
{
    /* Only the call that completes the set takes the lock: the drain is
     * not slowed by its own stopwatch. */
    if (atomic_fetch_add(&g_distinct, 1) + 1 == g_target) {
        pthread_mutex_lock(&handled_mu);
        pthread_cond_broadcast(&handled_cv);
        pthread_mutex_unlock(&handled_mu);
    }
}

void bench_count_done(const pgq_event *ev, void *arg)
{
    (void)arg;
    if (ev->kind == PGQ_EVENT_DONE)
        bench_handled_one();
}

bool bench_wait_handled(int64_t deadline_ns)
{
    pthread_mutex_lock(&handled_mu);
    while (atomic_load(&g_distinct) < g_target && now_ns() < deadline_ns) {
        /* CLOCK_REALTIME for the condvar; wake at least every 200 ms so a
         * clock step cannot stretch the wait. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t left = deadline_ns - now_ns();
        int64_t step = left < 200000000 ? left : 200000000;
        ts.tv_nsec += (long)(step % 1000000000);
        ts.tv_sec += (time_t)(step / 1000000000) + ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&handled_cv, &handled_mu, &ts);
    }
    bool yes = atomic_load(&g_distinct) >= g_target;
    pthread_mutex_unlock(&handled_mu);
    return yes;
}

void bench_count_calls(long n, long *dups, long *missing)
{
    *dups = *missing = 0;
    for (long k = 0; k < n; k++) {
        int v = atomic_load(&g_calls[k]);
        *dups += v > 1;
        *missing += v == 0;
    }
}

/* ---- adding jobs ------------------------------------------------------------- */

int bench_batch_init(struct bench_batch *b, size_t cap)
{
    b->items = calloc(cap, sizeof *b->items);
    b->res = calloc(cap, sizeof *b->res);
    b->payloads = calloc(cap, sizeof *b->payloads);
    if (b->items && b->res && b->payloads)
        return 0;
    bench_batch_free(b);
    return -1;
}

int bench_batch_add(pgq_conn *c, struct bench_batch *b, long first, size_t n, char *err,
                    size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(b->payloads[i], sizeof b->payloads[i], "{\"i\":%ld}", first + (long)i);
        b->items[i] = (pgq_add_item){ JOB_TYPE, b->payloads[i], PGQ_ADD_OPTS_INIT };
    }
    return pgq_add_batch(c, b->items, n, b->res, err, errlen);
}

void bench_batch_free(struct bench_batch *b)
{
    free(b->items);
    free(b->res);
    free(b->payloads);
    *b = (struct bench_batch){ 0 };
}

#define ENQUEUE_BATCH 5000

int bench_enqueue_all(pgq_conn *c, long n, char *err, size_t errlen)
{
    size_t cap = n < ENQUEUE_BATCH ? (size_t)n : ENQUEUE_BATCH;
    struct bench_batch b;
    int rc = -1;
    if (bench_batch_init(&b, cap) < 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (long done = 0; done < n;) {
        size_t m = (size_t)(n - done) < cap ? (size_t)(n - done) : cap;
        char msg[768];
        if (bench_batch_add(c, &b, done, m, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "enqueue batch at job %ld: %s", done, msg);
            goto out;
        }
        done += (long)m;
    }
    rc = 0;
out:
    bench_batch_free(&b);
    return rc;
}

int bench_watch_drain(pgq_conn *watch, int64_t deadline, int64_t *end, char *err, size_t errlen)
{
    if (!bench_wait_handled(deadline))
        return 0;
    int busy = bench_wait_empty(watch, deadline, 0.5, end, err, errlen);
    return busy < 0 ? -1 : !busy;
}

/* ---- the pool ---------------------------------------------------------------------- */

struct pool_spec bench_pool_spec(void)
{
    struct pool_spec s = {
        .workers = g_opts.concurrency, .poll = "10ms", .heartbeat = "1s", .lease_ttl = "30s",
        .shutdown_timeout = "5s", .keep_done = NULL, .batch = 0, .handler = "callback noop",
    };
    if (strcmp(g_opts.profile, "batched") == 0)
        s.batch = g_opts.batch;
    else if (strcmp(g_opts.profile, "strict") == 0)
        s.batch = 1;   /* written out: one job per claim and per commit, whatever the default */
    else if (strcmp(g_opts.profile, "exec") == 0) {
        static char handler[600];   /* one spec per process */
        snprintf(handler, sizeof handler, "exec %s", g_opts.exec_cmd);
        s.handler = handler;
    }
    return s;
}

void pool_spec_json(const struct pool_spec *s, char *buf, size_t len)
{
    int n = snprintf(buf, len, "{\"workers\":%ld,\"poll\":\"%s\",\"heartbeat\":\"%s\","
                     "\"lease_ttl\":\"%s\",\"handler\":\"%s\"", s->workers, s->poll,
                     s->heartbeat, s->lease_ttl, s->handler);
    if (n > 0 && (size_t)n < len && s->batch > 0)
        n += snprintf(buf + n, len - (size_t)n, ",\"batch\":%ld", s->batch);
    if (n > 0 && (size_t)n < len && s->keep_done)
        n += snprintf(buf + n, len - (size_t)n, ",\"keep_done\":\"%s\"", s->keep_done);
    if (n > 0 && (size_t)n < len && s->limits)
        n += snprintf(buf + n, len - (size_t)n, ",\"limits\":\"%s\"", s->limits);
    if (n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "}");
}

int pool_ini_write(const struct pool_spec *s, char *path, size_t pathlen, char *err, size_t errlen)
{
    snprintf(path, pathlen, "%s/pgq-bench-XXXXXX.ini",
             getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        snprintf(err, errlen, "creating temporary pool.ini %s: %s", path, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    fprintf(f, "[pool]\nworkers = %ld\nqueues = default\npoll = %s\nheartbeat = %s\n"
               "lease_ttl = %s\nshutdown_timeout = %s\n",
            s->workers, s->poll, s->heartbeat, s->lease_ttl, s->shutdown_timeout);
    if (s->keep_done)
        fprintf(f, "keep_done = %s\n", s->keep_done);
    if (s->batch > 0)
        fprintf(f, "batch = %ld\n", s->batch);
    fprintf(f, "\n[job " JOB_TYPE "]\nqueue = default\nhandler = %s\n", s->handler);
    bool self = s->limits && strcmp(s->limits, "self") == 0;
    if (self)
        fprintf(f, "concurrency = 100000\nrate = 1000000/1s\n");
    if (s->limits && strcmp(s->limits, "other") == 0)
        fprintf(f, "\n[job " JOB_TYPE "-limited]\nqueue = default\nhandler = %s\n"
                   "concurrency = 1\nrate = 10/1s\n", s->handler);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}

/* Write the ini, load it, register its job type, create the pool and
 * register the noop callback when the handler is one. */
static int make_pool(pgq_conn *c, const struct pool_spec *s, pgq_pool **out, char *err,
                     size_t errlen)
{
    char path[PATH_MAX], msg[768];
    pgq_cfg *cfg;
    *out = NULL;
    if (pool_ini_write(s, path, sizeof path, err, errlen) < 0)
        return -1;
    int rc = pgq_cfg_load(path, &cfg, msg, sizeof msg);
    unlink(path);
    if (rc < 0) {
        /* e.g. a pgq without the batch key: the config names the line */
        snprintf(err, errlen, "loading the bench pool.ini: %s", msg);
        return -1;
    }
    if (pgq_cfg_apply_types(c, cfg, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "registering job type %s: %s", JOB_TYPE, msg);
        pgq_cfg_free(cfg);
        return -1;
    }
    pgq_pool *p;
    if (pgq_pool_new(cfg, getenv("DATABASE_URL"), &p, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "creating the pool: %s", msg);
        pgq_cfg_free(cfg);   /* not taken on failure */
        return -1;
    }
    if (strncmp(s->handler, "callback ", 9) == 0 &&
        pgq_pool_on(p, "noop", bench_noop, NULL, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "registering the noop callback: %s", msg);
        pgq_pool_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int bench_pool_prepare(pgq_conn *c, const struct pool_spec *s, pgq_pool **out, char *pooljs,
                       size_t pooljslen)
{
    char err[1024];
    *out = NULL;
    if (bench_expect_empty(c) < 0)
        return -1;
    pool_spec_json(s, pooljs, pooljslen);
    if (make_pool(c, s, out, err, sizeof err) < 0) {
        fail_json(err);
        return -1;
    }
    return 0;
}

int bench_pool_start(pgq_pool *p)
{
    char err[1024], msg[1100];
    if (pgq_pool_start(p, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "starting the pool: %s", err);
        fail_json(msg);
        pgq_pool_stop(p);   /* a start may fail half-way: join what runs */
        (void)!pgq_pool_wait(p);
        return -1;
    }
    return 0;
}
