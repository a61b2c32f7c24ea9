/* pgq-bench: measure pgq against a fresh, empty PostgreSQL database.
 *
 *   pgq-bench throughput --jobs N --concurrency C [--profile default]
 *                        [--max-drain-s S] [--timeout-s S]
 *   pgq-bench latency [--jobs 300] [--interval-ms 20] [--concurrency 8]
 *                     [--timeout-s S]
 *
 * Both read DATABASE_URL, migrate (not timed), register the job type
 * "bench-noop" (queue default, `handler = callback noop`) through a temporary
 * pool.ini, and run an embedded pool (poll 10ms, heartbeat 1s, lease 30s)
 * whose in-process no-op callback counts invocations per job.
 *
 * throughput: enqueue N jobs with pgq_add_batch in batches of 5000 (timed:
 * enqueue_jobs_per_s), then time from just before pgq_pool_start until a
 * separate connection sees no ready or running job (polled every ~5 ms).
 *
 * latency: start the pool, let it go idle, then add jobs one at a time with
 * pgq_add every interval; latency is from just before the add call to the
 * start of the handler (same process, CLOCK_MONOTONIC; the job's order k
 * travels in the payload {"i":k}).
 *
 * Output: exactly one JSON line on stdout (the pool's warnings go to
 * stderr). Exit 0 when ok, 1 on failure, 2 on bad arguments. A watchdog
 * ends the process after --timeout-s (default 120) with a JSON line saying
 * ok:false. */
#include <errno.h>
#include <libpq-fe.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgq.h"
#include "pgq_config.h"
#include "pgq_pool.h"

#define JOB_TYPE "bench-noop"
#define BATCH 5000

struct opts {
    const char *bench;      /* "throughput" or "latency" */
    const char *profile;
    long jobs;
    long concurrency;
    long max_drain_s;
    long timeout_s;
    long interval_ms;
};

/* Shared between the main thread and the pool's worker threads. */
static atomic_int *g_calls;        /* handler invocations per job order k */
static _Atomic int64_t *g_start_ns; /* latency: handler start per k */
static long g_njobs;
static atomic_long g_bad_payload;

static struct opts g_opts;
static char g_settings[512] = "{}";

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(double ms)
{
    struct timespec ts = { (time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

/* Print the common head of the JSON line (without the closing brace). */
static void json_head(FILE *f, bool ok)
{
    fprintf(f, "{\"system\":\"pgq\",\"version\":\"%s\",\"bench\":\"%s\",\"profile\":\"%s\","
            "\"concurrency\":%ld,\"jobs\":%ld,\"settings\":%s,\"ok\":%s",
            PGQ_VERSION, g_opts.bench, g_opts.profile, g_opts.concurrency, g_opts.jobs,
            g_settings, ok ? "true" : "false");
}

/* Minimal JSON string escaping for error messages. */
static void json_str(FILE *f, const char *s)
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

static void fail_json(const char *msg)
{
    json_head(stdout, false);
    fputs(",\"error\":", stdout);
    json_str(stdout, msg);
    fputs("}\n", stdout);
    fflush(stdout);
}

static void *watchdog(void *arg)
{
    (void)arg;
    sleep_ms((double)g_opts.timeout_s * 1000);
    char msg[96];
    snprintf(msg, sizeof msg, "timed out after %ld s (--timeout-s)", g_opts.timeout_s);
    fail_json(msg);
    fprintf(stderr, "pgq-bench: %s\n", msg);
    _exit(1);
}

/* ---- arguments ----------------------------------------------------------- */

__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pgq-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (usage: pgq-bench throughput|latency --jobs N --concurrency C "
          "[--profile default] [--max-drain-s S] [--interval-ms MS] [--timeout-s S])\n", stderr);
    exit(2);
}

static long parse_long(const char *opt, const char *val, long min, long max)
{
    if (!val)
        usage_error("%s needs a value", opt);
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max) {
        fprintf(stderr, "pgq-bench: %s: expected an integer in %ld..%ld, got \"%s\"\n",
                opt, min, max, val);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    if (argc < 2)
        usage_error("%s", "no benchmark given");
    o->bench = argv[1];
    bool lat = strcmp(o->bench, "latency") == 0;
    if (!lat && strcmp(o->bench, "throughput") != 0)
        usage_error("unknown benchmark \"%s\"", o->bench);
    o->profile = "default";
    o->jobs = lat ? 300 : -1;
    o->concurrency = lat ? 8 : -1;
    o->max_drain_s = 60;
    o->timeout_s = 120;
    o->interval_ms = 20;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--jobs") == 0)
            o->jobs = parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--concurrency") == 0)
            o->concurrency = parse_long(a, v, 1, 256);
        else if (strcmp(a, "--timeout-s") == 0)
            o->timeout_s = parse_long(a, v, 1, 86400);
        else if (strcmp(a, "--max-drain-s") == 0 && !lat)
            o->max_drain_s = parse_long(a, v, 1, 86400);
        else if (strcmp(a, "--interval-ms") == 0 && lat)
            o->interval_ms = parse_long(a, v, 0, 60000);
        else if (strcmp(a, "--profile") == 0) {
            if (!v)
                usage_error("%s needs a value", a);
            if (strcmp(v, "default") != 0)
                usage_error("--profile: only \"default\" is implemented, got \"%s\"", v);
            o->profile = v;
        } else
            usage_error("unknown option \"%s\"", a);
        i++;
    }
    if (o->jobs < 0)
        usage_error("%s is required", "--jobs");
    if (o->concurrency < 0)
        usage_error("%s is required", "--concurrency");
}

/* ---- database helpers ----------------------------------------------------- */

/* Read fsync, synchronous_commit and shared_buffers into g_settings. */
static int read_settings(pgq_conn *c, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(pgq_conn_pg(c),
        "SELECT current_setting('fsync'), current_setting('synchronous_commit'), "
        "current_setting('shared_buffers'), current_setting('server_version')",
        0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "reading server settings: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    snprintf(g_settings, sizeof g_settings,
             "{\"fsync\":\"%s\",\"synchronous_commit\":\"%s\",\"shared_buffers\":\"%s\","
             "\"server_version\":\"%s\"}",
             PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3));
    PQclear(r);
    return 0;
}

/* Jobs of the bench type not yet finished (ready, scheduled or running). */
static int64_t unfinished(pgq_conn *c, char *err, size_t errlen)
{
    const char *params[1] = { JOB_TYPE };
    PGresult *r = PQexecParams(pgq_conn_pg(c),
        "SELECT count(*) FROM pgq.jobs WHERE state IN ('ready', 'running') AND type = $1",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "counting unfinished jobs: %s", PQresultErrorMessage(r));
        PQclear(r);
        return -1;
    }
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* ---- the handler ---------------------------------------------------------- */

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

static int noop(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
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
    if (atomic_fetch_add(&g_calls[k], 1) == 0 && g_start_ns)
        atomic_store(&g_start_ns[k], t);
    return 0;
}

/* ---- pool setup ------------------------------------------------------------ */

/* Write a pool.ini for the bench, load it, register its job type in the
 * database and create the pool with the noop callback. */
static int make_pool(pgq_conn *c, long workers, pgq_pool **out, char *err, size_t errlen)
{
    char path[] = "/tmp/pgq-bench-XXXXXX.ini";
    int fd = mkstemps(path, 4);
    if (fd < 0) {
        snprintf(err, errlen, "creating temporary pool.ini: %s", strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        snprintf(err, errlen, "opening %s: %s", path, strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    fprintf(f, "[pool]\nworkers = %ld\nqueues = default\npoll = 10ms\nheartbeat = 1s\n"
               "lease_ttl = 30s\nshutdown_timeout = 5s\n\n"
               "[job " JOB_TYPE "]\nqueue = default\nhandler = callback noop\n", workers);
    if (fclose(f) != 0) {
        snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    pgq_cfg *cfg;
    char msg[768];
    int rc = pgq_cfg_load(path, &cfg, msg, sizeof msg);
    unlink(path);
    if (rc < 0) {
        snprintf(err, errlen, "loading the bench pool.ini: %s", msg);
        return -1;
    }
    if (pgq_cfg_apply_types(c, cfg, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "registering job type %s: %s", JOB_TYPE, msg);
        pgq_cfg_free(cfg);
        return -1;
    }
    if (pgq_pool_new(cfg, getenv("DATABASE_URL"), out, msg, sizeof msg) < 0 ||
        pgq_pool_on(*out, "noop", noop, NULL, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "creating the pool: %s", msg);
        return -1;
    }
    return 0;
}

/* ---- throughput ------------------------------------------------------------- */

static int run_throughput(pgq_conn *c, pgq_conn *watch, pgq_pool *pool)
{
    char err[1024];
    long n = g_opts.jobs;
    size_t cap = n < BATCH ? (size_t)n : BATCH;
    pgq_add_item *items = calloc(cap, sizeof *items);
    pgq_add_result *res = calloc(cap, sizeof *res);
    char (*payloads)[32] = calloc(cap, sizeof *payloads);
    if (!items || !res || !payloads) {
        fail_json("out of memory");
        return 1;
    }

    int64_t t0 = now_ns();
    for (long done = 0; done < n;) {
        size_t m = (size_t)(n - done) < cap ? (size_t)(n - done) : cap;
        for (size_t i = 0; i < m; i++) {
            snprintf(payloads[i], sizeof payloads[i], "{\"i\":%ld}", done + (long)i);
            items[i] = (pgq_add_item){ JOB_TYPE, payloads[i], PGQ_ADD_OPTS_INIT };
        }
        char msg[768];
        if (pgq_add_batch(c, items, m, res, msg, sizeof msg) < 0) {
            snprintf(err, sizeof err, "enqueue batch at job %ld: %s", done, msg);
            fail_json(err);
            return 1;
        }
        done += (long)m;
    }
    double enqueue_s = (double)(now_ns() - t0) / 1e9;
    free(items);
    free(res);
    free(payloads);

    int64_t d0 = now_ns();
    if (pgq_pool_start(pool, err, sizeof err) < 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "starting the pool: %s", err);
        fail_json(msg);
        return 1;
    }
    int64_t left = -1, deadline = d0 + (int64_t)g_opts.max_drain_s * 1000000000;
    bool drained = false;
    int64_t d1 = d0;
    for (;;) {
        left = unfinished(watch, err, sizeof err);
        d1 = now_ns();
        if (left < 0) {
            pgq_pool_stop(pool);
            if (pgq_pool_wait(pool) != 0) fprintf(stderr, "pgq-bench: the pool did not stop cleanly\n");
            fail_json(err);
            return 1;
        }
        if (left == 0) {
            drained = true;
            break;
        }
        if (d1 > deadline)
            break;
        sleep_ms(5);
    }
    pgq_pool_stop(pool);
    int wrc = pgq_pool_wait(pool);

    long dups = 0, missing = 0;
    for (long k = 0; k < n; k++) {
        int v = atomic_load(&g_calls[k]);
        if (v > 1)
            dups++;
        else if (v == 0)
            missing++;
    }
    if (drained)
        left = 0;
    else if ((left = unfinished(watch, err, sizeof err)) < 0)
        left = -1;
    double drain_ms = (double)(d1 - d0) / 1e6;
    bool ok = drained && dups == 0 && missing == 0 && wrc == 0 && atomic_load(&g_bad_payload) == 0;
    json_head(stdout, ok);
    printf(",\"drained\":%s,\"enqueue_jobs_per_s\":%.0f,\"enqueue_ms\":%.1f,\"drain_ms\":%.1f,"
           "\"jobs_per_s\":%.0f,\"duplicates\":%ld,\"not_run\":%ld,\"left_in_db\":%lld}\n",
           drained ? "true" : "false", (double)n / enqueue_s, enqueue_s * 1000, drain_ms,
           drained ? (double)n / (drain_ms / 1000) : 0.0, dups, missing, (long long)left);
    return ok ? 0 : 1;
}

/* ---- latency ------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* {"n":..,"min":..,"p50":..,...} of v (sorted in place); nearest-rank percentiles. */
static void print_dist(const char *name, double *v, size_t n)
{
    printf(",\"%s\":", name);
    if (n == 0) {
        fputs("{\"n\":0}", stdout);
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
#define PCT(p) v[(size_t)ceil((p) / 100.0 * (double)n) > 0 ? (size_t)ceil((p) / 100.0 * (double)n) - 1 : 0]
    printf("{\"n\":%zu,\"min\":%.3f,\"p50\":%.3f,\"p95\":%.3f,\"p99\":%.3f,\"max\":%.3f,\"mean\":%.3f}",
           n, v[0], PCT(50), PCT(95), PCT(99), v[n - 1], sum / (double)n);
#undef PCT
}

static int run_latency(pgq_conn *c, pgq_conn *watch, pgq_pool *pool)
{
    char err[1024];
    long n = g_opts.jobs;
    int64_t *t_add = calloc((size_t)n, sizeof *t_add);
    double *lat = calloc((size_t)n, sizeof *lat), *addms = calloc((size_t)n, sizeof *addms);
    if (!t_add || !lat || !addms) {
        fail_json("out of memory");
        return 1;
    }
    if (pgq_pool_start(pool, err, sizeof err) < 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "starting the pool: %s", err);
        fail_json(msg);
        return 1;
    }
    sleep_ms(500);   /* let every worker reach idle */

    for (long k = 0; k < n; k++) {
        char payload[32], msg[768];
        snprintf(payload, sizeof payload, "{\"i\":%ld}", k);
        pgq_add_result r;
        int64_t t0 = now_ns();
        t_add[k] = t0;
        int rc = pgq_add(c, JOB_TYPE, payload, NULL, &r, msg, sizeof msg);
        addms[k] = (double)(now_ns() - t0) / 1e6;
        if (rc < 0) {
            pgq_pool_stop(pool);
            if (pgq_pool_wait(pool) != 0) fprintf(stderr, "pgq-bench: the pool did not stop cleanly\n");
            snprintf(err, sizeof err, "pgq_add of job %ld: %s", k, msg);
            fail_json(err);
            return 1;
        }
        if (g_opts.interval_ms > 0)
            sleep_ms((double)g_opts.interval_ms);
    }
    /* Wait (up to 10 s) for the last jobs to finish. */
    int64_t left = -1, deadline = now_ns() + 10LL * 1000000000;
    while ((left = unfinished(watch, err, sizeof err)) > 0 && now_ns() < deadline)
        sleep_ms(5);
    pgq_pool_stop(pool);
    int wrc = pgq_pool_wait(pool);
    if (left < 0) {
        fail_json(err);
        return 1;
    }

    size_t m = 0;
    long dups = 0;
    for (long k = 0; k < n; k++) {
        if (atomic_load(&g_calls[k]) > 1)
            dups++;
        int64_t t1 = atomic_load(&g_start_ns[k]);
        if (t1 > 0)
            lat[m++] = (double)(t1 - t_add[k]) / 1e6;
    }
    bool ok = left == 0 && (long)m == n && dups == 0 && wrc == 0;
    json_head(stdout, ok);
    printf(",\"interval_ms\":%ld,\"duplicates\":%ld,\"left_in_db\":%lld",
           g_opts.interval_ms, dups, (long long)left);
    print_dist("latency_ms", lat, m);
    print_dist("add_call_ms", addms, (size_t)n);
    fputs("}\n", stdout);
    return ok ? 0 : 1;
}

/* ---- main ----------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    char err[1024], msg[1100];
    parse_args(argc, argv, &g_opts);

    /* Threads inherit the signal mask: the pool's threads must not take
     * SIGINT/SIGTERM (default action ends the process, which is fine). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0) {
        fprintf(stderr, "pgq-bench: cannot start the watchdog thread\n");
        return 1;
    }
    pthread_detach(wd);

    const char *url = getenv("DATABASE_URL");
    if (!url || !*url) {
        fail_json("DATABASE_URL is not set");
        return 1;
    }
    g_njobs = g_opts.jobs;
    g_calls = calloc((size_t)g_opts.jobs, sizeof *g_calls);
    if (!g_calls) {
        fail_json("out of memory");
        return 1;
    }
    if (strcmp(g_opts.bench, "latency") == 0 &&
        !(g_start_ns = calloc((size_t)g_opts.jobs, sizeof *g_start_ns))) {
        fail_json("out of memory");
        return 1;
    }

    pgq_conn *c, *watch;
    pgq_pool *pool;
    if (pgq_connect(url, &c, err, sizeof err) < 0 || pgq_connect(url, &watch, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "connecting to DATABASE_URL: %s", err);
        fail_json(msg);
        return 1;
    }
    if (read_settings(c, err, sizeof err) < 0) {
        fail_json(err);
        return 1;
    }
    if (pgq_migrate(c, NULL, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "migrating: %s", err);
        fail_json(msg);
        return 1;
    }
    int64_t before = unfinished(c, err, sizeof err);
    if (before != 0) {
        fail_json(before < 0 ? err : "the database is not empty (unfinished bench jobs found); use a fresh one");
        return 1;
    }
    pgq_pool_set_log_level(PGQ_LOG_WARN);
    if (make_pool(c, g_opts.concurrency, &pool, err, sizeof err) < 0) {
        fail_json(err);
        return 1;
    }

    int rc = strcmp(g_opts.bench, "latency") == 0 ? run_latency(c, watch, pool)
                                                  : run_throughput(c, watch, pool);
    fflush(stdout);
    pgq_pool_free(pool);
    pgq_disconnect(watch);
    pgq_disconnect(c);
    free(g_calls);
    free(g_start_ns);
    return rc;
}
