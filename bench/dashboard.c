/* dashboard.c -- `pgq-bench dashboard`: what one open dashboard and one
 * `pgq stats` cost the server as the queue grows (issue 12, item 8: at
 * most 2% of a CPU for a dashboard at 10M jobs, `pgq stats` under 100 ms).
 *
 * One database serves every size, smallest first (a database it filled
 * before is topped up: sizes below what it holds are left out, the size it
 * holds is measured as it is). Each size is filled up
 * through the state machine's own functions, set-based: pgq.enqueue over
 * arrays from generate_series (100,000 jobs a call) for ready jobs in three
 * queues, and pgq.complete_claim (claims of 2,000, each call completing the
 * previous ones) for the done and dead jobs of a fourth: 90% ready, 10%
 * done, 0.1% dead. No job row is written here.
 *
 * Each size is measured twice: right after the fill with only ANALYZE
 * (the planner's statistics, as autovacuum gathers them; the new rows are
 * not yet all-visible, so index-only scans still visit the heap: the worse
 * case), then after VACUUM. Each time:
 *
 *   overview_cpu_ms, jobs_cpu_ms   the server CPU (user + system) of one
 *       dashboard refresh (model_refresh_once, as the model thread runs it)
 *       of the Overview screen and of the Jobs screen: the backend's own
 *       utime + stime from /proc/PID/stat over --refreshes refreshes,
 *       divided by their number (the session runs without parallel workers,
 *       as the dashboard's does, so that all the work is in that process);
 *   overview_cpu_pct               the same as a share of one CPU with the
 *       default refresh of 1 s;
 *   stats_ms                       wall time of pgq_stats (what `pgq stats`
 *       runs) on a warm connection, and stats_cpu_ms, its backend CPU;
 *   old_stats_ms                   once, the count of every row that
 *       pgq_stats ran before migration 011 (the figure to compare with).
 *
 * The bench machine and the server must be the same machine (/proc). One
 * JSON line per size and state. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "model.h"

#define FILL_CHUNK 100000L
#define CLAIM_CHUNK 2000L
#define OWNER "bench-dash:1:1/w0"

/* The per-queue count pgq_stats ran before migration 011 (counts every
 * row), kept here only to show what it cost. */
static const char old_stats_sql[] =
    "SELECT queue,"
    " count(*) FILTER (WHERE state = 'ready' AND run_at <= now()),"
    " count(*) FILTER (WHERE state = 'ready' AND run_at > now() AND attempts = 0),"
    " count(*) FILTER (WHERE state = 'ready' AND run_at > now() AND attempts > 0),"
    " count(*) FILTER (WHERE state = 'running'),"
    " count(*) FILTER (WHERE state = 'dead'),"
    " count(*) FILTER (WHERE state = 'cancelled'),"
    " count(*) FILTER (WHERE state = 'done'),"
    " count(*) FILTER (WHERE state = 'done' AND finished_at > now() - interval '1 hour'),"
    " coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE state = 'ready'"
    "   AND run_at <= now()))::float8, -1),"
    " coalesce(bool_or(p.paused), false)"
    " FROM (SELECT queue, state, run_at, attempts, finished_at FROM pgq.jobs"
    "       UNION ALL SELECT queue, NULL, NULL, NULL, NULL FROM pgq.queues WHERE paused) j"
    " LEFT JOIN pgq.queues p USING (queue)"
    " GROUP BY queue ORDER BY queue";

static int exec_ok(pgq_conn *c, const char *what, const char *sql, int n, const char *const *p,
                   ExecStatusType want, char *err, size_t errlen)
{
    PGresult *r = bench_query(c, what, sql, n, p, want, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* n ready jobs spread over queues q0, q1, q2 (or all in queue, when given,
 * with max_retries). */
static int enqueue_n(pgq_conn *c, int64_t n, const char *queue, int max_retries, char *err,
                     size_t errlen)
{
    while (n > 0) {
        int64_t m = n < FILL_CHUNK ? n : FILL_CHUNK;
        char ms[24], mr[16];
        snprintf(ms, sizeof ms, "%" PRId64, m);
        snprintf(mr, sizeof mr, "%d", max_retries);
        const char *params[] = { JOB_TYPE, ms, queue, mr };
        if (exec_ok(c, "filling (pgq.enqueue)",
                    "SELECT count(*) FROM pgq.enqueue("
                    " array_fill($1::text, ARRAY[$2::int]),"
                    " array_fill('{}'::text, ARRAY[$2::int]),"
                    " (SELECT array_agg(coalesce($3, 'q' || (g % 3))) FROM generate_series(1, $2::int) g),"
                    " NULL, NULL, NULL,"
                    " CASE WHEN $3 IS NULL THEN NULL ELSE array_fill($4::int, ARRAY[$2::int]) END,"
                    " NULL)", 4, params, PGRES_TUPLES_OK, err, errlen) < 0)
            return -1;
        n -= m;
    }
    return 0;
}

/* Claim and finish n jobs of queue "finished" with outcome ('done' or
 * 'failed'), CLAIM_CHUNK a call: each call ends the previous call's jobs. */
static int finish_n(pgq_conn *c, int64_t n, const char *outcome, char *err, size_t errlen)
{
    char *ids = strdup("{}"), *toks = strdup("{}");
    int rc = -1;
    if (!ids || !toks)
        goto out;
    for (;;) {
        char lim[24];
        int64_t want = n < CLAIM_CHUNK ? n : CLAIM_CHUNK;
        snprintf(lim, sizeof lim, "%" PRId64, want);
        const char *params[] = { ids, toks, lim, outcome };
        PGresult *r = bench_query(c, "filling (pgq.complete_claim)",
            "SELECT id, lease_token FROM pgq.complete_claim($1::bigint[], $2::uuid[],"
            " NULL, NULL, NULL, NULL, ARRAY['finished'], '" OWNER "', 3600000, $3::int,"
            " NULL, NULL, NULL, false, $4, CASE WHEN $4 = 'failed'"
            "  THEN array_fill('bench failure'::text, ARRAY[cardinality($1::bigint[])]) END)"
            " WHERE id IS NOT NULL", 4, params, PGRES_TUPLES_OK, err, errlen);
        if (!r)
            goto out;
        int got = PQntuples(r);
        size_t cap = (size_t)got * 40 + 3;
        char *ni = malloc(cap), *nt = malloc(cap);
        if (!ni || !nt) {
            free(ni);
            free(nt);
            PQclear(r);
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        size_t a = 0, b = 0;
        ni[a++] = '{';
        nt[b++] = '{';
        for (int i = 0; i < got; i++) {
            a += (size_t)snprintf(ni + a, cap - a, "%s%s", i ? "," : "", PQgetvalue(r, i, 0));
            b += (size_t)snprintf(nt + b, cap - b, "%s%s", i ? "," : "", PQgetvalue(r, i, 1));
        }
        snprintf(ni + a, cap - a, "}");
        snprintf(nt + b, cap - b, "}");
        PQclear(r);
        free(ids);
        free(toks);
        ids = ni;
        toks = nt;
        n -= got;
        if (got == 0)
            break;   /* the last call ended the last claimed ones */
    }
    rc = n <= 0 ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "filling: %" PRId64 " jobs of queue finished left unclaimed", n);
out:
    free(ids);
    free(toks);
    return rc;
}

/* The backend's CPU (user + system) so far, in milliseconds. */
static int backend_cpu_ms(pgq_conn *c, double *ms)
{
    int ppid;
    int64_t self, children;
    if (proc_stat(PQbackendPID(pgq_conn_pg(c)), &ppid, &self, &children) < 0)
        return -1;
    *ms = (double)self * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    return 0;
}

static double wall_ms(void)
{
    return (double)now_ns() / 1e6;
}

/* The machine's one-minute load average (-1: unknown): the wall times
 * mean little without it on a shared machine. */
static double load1(void)
{
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1;
}

/* CPU and wall time per refresh of the given screen, over n refreshes
 * after 3 untimed ones. */
static int refresh_cost(pgq_conn *c, unsigned parts, long n, double *cpu_ms, double *wall,
                        char *err, size_t errlen)
{
    struct model_query q = { .parts = parts };
    double c0 = 0, c1 = 0, w0 = 0;
    for (long i = 0; i < n + 3; i++) {
        if (i == 3) {
            if (backend_cpu_ms(c, &c0) < 0)
                goto no_proc;
            w0 = wall_ms();
        }
        struct snapshot *s = NULL;
        if (model_refresh_once(c, &q, &s, err, errlen) < 0)
            return -1;
        snapshot_release(s);
    }
    if (backend_cpu_ms(c, &c1) < 0)
        goto no_proc;
    *cpu_ms = (c1 - c0) / (double)n;
    *wall = (wall_ms() - w0) / (double)n;
    return 0;
no_proc:
    snprintf(err, errlen, "cannot read the backend's /proc/PID/stat: is the server on this "
             "machine?");
    return -1;
}

/* CPU per Overview refresh that reuses the counts of a full one (what the
 * model thread runs between counts): n after 3 untimed. */
static int reuse_cost(pgq_conn *c, long n, double *cpu_ms, char *err, size_t errlen)
{
    struct model_query q = { .parts = MODEL_OVERVIEW };
    struct snapshot *full = NULL;
    double c0 = 0, c1 = 0;
    if (model_refresh_once(c, &q, &full, err, errlen) < 0)
        return -1;
    int rc = -1;
    for (long i = 0; i < n + 3; i++) {
        if (i == 3 && backend_cpu_ms(c, &c0) < 0)
            goto no_proc;
        struct snapshot *s = NULL;
        if (model_refresh_reusing(c, &q, full, &s, err, errlen) < 0)
            goto out;
        snapshot_release(s);
    }
    if (backend_cpu_ms(c, &c1) < 0)
        goto no_proc;
    *cpu_ms = (c1 - c0) / (double)n;
    rc = 0;
    goto out;
no_proc:
    snprintf(err, errlen, "cannot read the backend's /proc/PID/stat");
out:
    snapshot_release(full);
    return rc;
}

/* What one open dashboard costs as it runs: the model thread itself
 * (model_start, the default refresh of 1 s, the Overview), its backend's
 * CPU over `seconds` after its first snapshot, as a share of one CPU; and
 * how often it counted (the wall time of its last count and the interval
 * that gives). The backend is found by its application name, so no other
 * dashboard may be open on this database. */
static int dashboard_cost(pgq_conn *c, long seconds, double *pct, double *count_ms,
                          double *every_s, char *err, size_t errlen)
{
    struct model *m = NULL;
    if (model_start(getenv("DATABASE_URL"), "pgq-bench", 1000, &m, err, errlen) < 0)
        return -1;
    int rc = -1;
    struct snapshot *s = NULL;
    for (int i = 0; i < 600 && !(s = model_acquire(m)); i++)
        nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
    if (!s) {
        snprintf(err, errlen, "the dashboard's model made no snapshot in 60 s");
        goto out;
    }
    snapshot_release(s);
    PGresult *r = bench_query(c, "the dashboard's backend",
                              "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgq top'"
                              " AND pid <> pg_backend_pid()", 0, NULL, PGRES_TUPLES_OK, err,
                              errlen);
    if (!r)
        goto out;
    if (PQntuples(r) != 1) {
        snprintf(err, errlen, "%d sessions named 'pgq top' (another dashboard is open?)",
                 PQntuples(r));
        PQclear(r);
        goto out;
    }
    int pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    int ppid;
    int64_t t0, t1, ch;
    double w0 = wall_ms();
    if (proc_stat(pid, &ppid, &t0, &ch) < 0)
        goto no_proc;
    nanosleep(&(struct timespec){ seconds, 0 }, NULL);
    if (proc_stat(pid, &ppid, &t1, &ch) < 0)
        goto no_proc;
    double cpu = (double)(t1 - t0) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
    *pct = cpu / (wall_ms() - w0) * 100.0;
    s = model_acquire(m);
    *count_ms = s ? s->counts_s * 1000.0 : -1;
    *every_s = s ? model_count_every_s(s->counts_s, 1.0) : -1;
    snapshot_release(s);
    rc = 0;
    goto out;
no_proc:
    snprintf(err, errlen, "cannot read the dashboard backend's /proc/%d/stat", pid);
out:
    model_stop(m);
    return rc;
}

static int measure(pgq_conn *c, long size, bool vacuumed, char *err, size_t errlen)
{
    double ov_cpu, ov_wall, jobs_cpu, jobs_wall, reuse_cpu, dash_pct, count_ms, every_s;
    long n = g_opts.cycles;
    if (refresh_cost(c, MODEL_OVERVIEW, n, &ov_cpu, &ov_wall, err, errlen) < 0 ||
        reuse_cost(c, n, &reuse_cpu, err, errlen) < 0 ||
        refresh_cost(c, MODEL_JOBS, n, &jobs_cpu, &jobs_wall, err, errlen) < 0 ||
        dashboard_cost(c, n, &dash_pct, &count_ms, &every_s, err, errlen) < 0)
        return -1;
    double *st = calloc((size_t)n, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    double c0, c1;
    if (backend_cpu_ms(c, &c0) < 0) {
        free(st);
        snprintf(err, errlen, "cannot read the backend's /proc/PID/stat");
        return -1;
    }
    for (long i = 0; i < n; i++) {
        pgq_queue_stats *s;
        size_t nq;
        double w0 = wall_ms();
        if (pgq_stats(c, &s, &nq, err, errlen) < 0) {
            free(st);
            return -1;
        }
        st[i] = wall_ms() - w0;
        free(s);
    }
    if (backend_cpu_ms(c, &c1) < 0) {
        free(st);
        snprintf(err, errlen, "cannot read the backend's /proc/PID/stat");
        return -1;
    }
    double old_ms = -1;
    if (!vacuumed) {
        double w0 = wall_ms();
        PGresult *r = bench_query(c, "the old stats", old_stats_sql, 0, NULL, PGRES_TUPLES_OK,
                                  err, errlen);
        if (!r) {
            free(st);
            return -1;
        }
        PQclear(r);
        old_ms = wall_ms() - w0;
    }
    json_head(stdout, true, false);
    printf(",\"jobs\":%ld,\"vacuumed\":%s,\"refreshes\":%ld,\"overview_cpu_ms\":%.2f,"
           "\"overview_wall_ms\":%.2f,\"overview_cpu_pct\":%.2f,\"overview_reuse_cpu_ms\":%.2f,"
           "\"dashboard_cpu_pct\":%.2f,\"dashboard_count_ms\":%.1f,\"dashboard_count_every_s\":%.1f,"
           "\"jobs_cpu_ms\":%.2f,\"jobs_wall_ms\":%.2f,\"stats_cpu_ms\":%.2f,\"load1\":%.2f",
           size, vacuumed ? "true" : "false", n, ov_cpu, ov_wall, ov_cpu / 1000.0 * 100.0,
           reuse_cpu, dash_pct, count_ms, every_s, jobs_cpu, jobs_wall, (c1 - c0) / (double)n,
           load1());
    print_dist(stdout, "stats_ms", st, (size_t)n);
    if (old_ms >= 0)
        printf(",\"old_stats_ms\":%.1f", old_ms);
    printf("}\n");
    fflush(stdout);
    free(st);
    return 0;
}

/* A database filled before (and vacuumed since) is measured as right
 * after its fill: its visibility map is truncated (pg_visibility, which
 * needs a superuser), so that index-only scans visit the heap again as
 * they do before the first vacuum. Nothing else changes. */
static int reset_visibility(pgq_conn *c, char *err, size_t errlen)
{
    fprintf(stderr, "pgq-bench dashboard: the size is there already: forgetting pgq.jobs'"
            " visibility map (pg_visibility)\n");
    return exec_ok(c, "forgetting the visibility map (needs the pg_visibility extension and a "
                   "superuser)", "CREATE EXTENSION IF NOT EXISTS pg_visibility", 0, NULL,
                   PGRES_COMMAND_OK, err, errlen) < 0 ||
           exec_ok(c, "forgetting the visibility map",
                   "SELECT pg_truncate_visibility_map('pgq.jobs'::regclass)", 0, NULL,
                   PGRES_TUPLES_OK, err, errlen) < 0 ? -1 : 0;
}

int run_dashboard(void)
{
    char err[1024];
    pgq_conn *c;
    if (bench_open(&c) < 0)
        return 1;
    /* A database this benchmark filled before is topped up (sizes it holds
     * already are measured as they are): filling 10M jobs takes minutes. */
    PGresult *r = bench_query(c, "counting the jobs there are (untimed)",
                              "SELECT count(*) FROM pgq.jobs", 0, NULL, PGRES_TUPLES_OK, err,
                              sizeof err);
    if (!r)
        goto fail;
    int64_t have = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    const char *params[] = { JOB_TYPE };
    if (exec_ok(c, "registering the type",
                "INSERT INTO pgq.job_types (type, queue) VALUES ($1, 'q0')"
                " ON CONFLICT (type) DO NOTHING", 1, params, PGRES_COMMAND_OK, err, sizeof err) < 0 ||
        exec_ok(c, "session", "SET max_parallel_workers_per_gather = 0", 0, NULL,
                PGRES_COMMAND_OK, err, sizeof err) < 0)
        goto fail;
    for (int i = 0; i < g_opts.nsizes; i++) {
        if (g_opts.sizes[i] < have)
            continue;
        int64_t add = g_opts.sizes[i] - have;
        int64_t done = add / 10, dead = add / 1000, ready = add - done - dead;
        fprintf(stderr, "pgq-bench dashboard: filling to %ld jobs\n", g_opts.sizes[i]);
        if (enqueue_n(c, ready, NULL, 5, err, sizeof err) < 0 ||
            enqueue_n(c, done, "finished", 5, err, sizeof err) < 0 ||
            finish_n(c, done, "done", err, sizeof err) < 0 ||
            enqueue_n(c, dead, "finished", 0, err, sizeof err) < 0 ||
            finish_n(c, dead, "failed", err, sizeof err) < 0)
            goto fail;
        if (add == 0 && reset_visibility(c, err, sizeof err) < 0)
            goto fail;
        have = g_opts.sizes[i];
        if (exec_ok(c, "analyze", "ANALYZE pgq.jobs", 0, NULL, PGRES_COMMAND_OK, err,
                    sizeof err) < 0 ||
            measure(c, g_opts.sizes[i], false, err, sizeof err) < 0 ||
            exec_ok(c, "vacuum", "VACUUM (ANALYZE) pgq.jobs", 0, NULL, PGRES_COMMAND_OK, err,
                    sizeof err) < 0 ||
            measure(c, g_opts.sizes[i], true, err, sizeof err) < 0)
            goto fail;
    }
    pgq_disconnect(c);
    return 0;
fail:
    fail_json(err);
    fprintf(stderr, "pgq-bench dashboard: %s\n", err);
    pgq_disconnect(c);
    return 1;
}
