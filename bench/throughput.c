/* throughput.c -- `pgq-bench throughput` and `pgq-bench latency`.
 *
 * throughput: enqueue N jobs with pgq_add_batch in batches of 5000 (timed:
 * enqueue_jobs_per_s), then time the drain from just before pgq_pool_start
 * until a separate connection sees no ready or running job. The watcher
 * must not compete with the pool for the server's CPUs, so it does not poll
 * during the drain: with an in-process handler it sleeps until the handler
 * has seen every job (the call that completes the set wakes it), and only
 * then probes the database, every 0.5 ms, until the last completions are
 * visible. The exec profile's handlers run in other processes: its watcher
 * counts the pool's DONE events instead (each reported once its end
 * committed). Until this change it probed the database every 10 ms from
 * the start, and a probe walked the claim index's entries of every job
 * claimed since the last vacuum: 3.3 ms of server CPU each, a sixth of the
 * machine taken from the pool it measured (pg_stat_statements, 10,000 exec
 * jobs).
 *
 * latency: start the pool, let it go idle, then add jobs one at a time with
 * pgq_add every interval; latency is from just before the add call to the
 * start of the handler (same process, CLOCK_MONOTONIC; the job's order k
 * travels in the payload {"i":k}). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

static bool is_exec(void)
{
    return strcmp(g_opts.profile, "exec") == 0;
}

/* Stop the pool and wait; 0 when it stopped cleanly. */
static int stop_pool(pgq_pool *pool)
{
    pgq_pool_stop(pool);
    int rc = pgq_pool_wait(pool);
    if (rc != 0)
        fprintf(stderr, "pgq-bench: the pool did not stop cleanly\n");
    return rc;
}

int run_throughput(void)
{
    char err[1024], msg[1100], pooljs[384];
    pgq_conn *c = NULL, *watch = NULL;
    pgq_pool *pool = NULL;
    long n = g_opts.jobs;
    int rc = 1;

    if (bench_open(&c) < 0)
        return 1;
    if (pgq_connect(getenv("DATABASE_URL"), &watch, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "connecting the watcher: %s", err);
        fail_json(msg);
        goto out;
    }
    struct pool_spec spec = bench_pool_spec();
    spec.limits = g_opts.limits;
    /* keep_done = 0: done jobs are deleted by their completion, so none
     * is left to count; every other check stands. */
    bool deleted = false;
    if (g_opts.keep_done_given) {
        spec.keep_done = g_opts.keep_done;
        deleted = g_opts.keep_done_ms == 0;
    }
    if (bench_pool_prepare(c, &spec, &pool, pooljs, sizeof pooljs) < 0)
        goto out;
    g_target = n;
    if (is_exec() && pgq_pool_on_event(pool, bench_count_done, NULL, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "counting the pool's events: %s", err);
        fail_json(msg);
        goto out;
    }

    struct writes w;
    if (writes_begin(c, watch, &w, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }
    int64_t t0 = now_ns();
    if (bench_enqueue_all(c, n, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }
    double enqueue_s = (double)(now_ns() - t0) / 1e9;

    int64_t d0 = now_ns(), d1 = d0;
    if (bench_pool_start(pool) < 0)
        goto out;
    int drained = bench_watch_drain(watch, d0 + (int64_t)g_opts.max_drain_s * 1000000000,
                                    &d1, err, sizeof err);
    int wrc = stop_pool(pool);
    if (drained < 0) {
        fail_json(err);
        goto out;
    }
    /* Its connections close with it: their backends publish their counters
     * as they exit, which writes_end waits for. */
    pgq_pool_free(pool);
    pool = NULL;
    if (writes_end(c, watch, &w, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }

    /* After the clock stopped: what the database says happened. */
    struct db_counts db;
    if (bench_db_counts(watch, &db, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }
    long dups = 0, missing = 0;
    if (!is_exec())
        bench_count_calls(n, &dups, &missing);
    double drain_ms = (double)(d1 - d0) / 1e6;
    bool ok = drained == 1 && dups == 0 && missing == 0 && wrc == 0 && db.done == (deleted ? 0 : n) &&
              db.multi == 0 && db.left == 0 && atomic_load(&g_bad_payload) == 0;
    json_head(stdout, ok, true);
    printf(",\"pool\":%s,\"drained\":%s,\"enqueue_jobs_per_s\":%.0f,\"enqueue_ms\":%.1f,"
           "\"drain_ms\":%.1f,\"jobs_per_s\":%.0f",
           pooljs, drained == 1 ? "true" : "false", (double)n / enqueue_s, enqueue_s * 1000,
           drain_ms, drained == 1 ? (double)n / (drain_ms / 1000) : 0.0);
    /* exec handlers run in other processes: nothing in this one can count
     * how often a job ran, so those two are null, not 0. */
    if (is_exec())
        fputs(",\"duplicates\":null,\"not_run\":null", stdout);
    else
        printf(",\"duplicates\":%ld,\"not_run\":%ld", dups, missing);
    printf(",\"done_in_db\":%lld,\"multi_attempt_in_db\":%lld,\"left_in_db\":%lld",
           (long long)db.done, (long long)db.multi, (long long)db.left);
    writes_json(stdout, &w, n);
    fputs("}\n", stdout);
    rc = ok ? 0 : 1;
out:
    pgq_pool_free(pool);
    pgq_disconnect(watch);
    pgq_disconnect(c);
    return rc;
}

/* ---- latency ---------------------------------------------------------------------- */

int run_latency(void)
{
    char err[1024], msg[1100], pooljs[384];
    pgq_conn *c = NULL;
    pgq_pool *pool = NULL;
    long n = g_opts.jobs;
    int rc = 1;
    int64_t *t_add = calloc((size_t)n, sizeof *t_add);
    double *lat = calloc((size_t)n, sizeof *lat), *addms = calloc((size_t)n, sizeof *addms);
    if (!t_add || !lat || !addms) {
        fail_json("out of memory");
        goto out;
    }
    if (bench_open(&c) < 0)
        goto out;
    struct pool_spec spec = bench_pool_spec();
    if (bench_pool_prepare(c, &spec, &pool, pooljs, sizeof pooljs) < 0)
        goto out;
    if (bench_pool_start(pool) < 0)
        goto out;
    sleep_ms(500);   /* let every worker reach idle */
    g_target = n;

    for (long k = 0; k < n; k++) {
        char payload[32], amsg[768];
        snprintf(payload, sizeof payload, "{\"i\":%ld}", k);
        pgq_add_result r;
        int64_t t0 = now_ns();
        t_add[k] = t0;
        int arc = pgq_add(c, JOB_TYPE, payload, NULL, &r, amsg, sizeof amsg);
        addms[k] = (double)(now_ns() - t0) / 1e6;
        if (arc < 0) {
            (void)stop_pool(pool);
            snprintf(msg, sizeof msg, "pgq_add of job %ld: %s", k, amsg);
            fail_json(msg);
            goto out;
        }
        if (g_opts.interval_ms > 0)
            sleep_ms((double)g_opts.interval_ms);
    }
    /* Up to 10 s for the last jobs to finish. */
    int64_t deadline = now_ns() + 10LL * 1000000000;
    (void)bench_wait_handled(deadline);
    int busy = bench_wait_empty(c, deadline, 1, NULL, err, sizeof err);
    int wrc = stop_pool(pool);
    struct db_counts db;
    if (busy < 0 || bench_db_counts(c, &db, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
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
    bool ok = db.left == 0 && db.done == n && (long)m == n && dups == 0 && wrc == 0;
    json_head(stdout, ok, true);
    printf(",\"pool\":%s,\"interval_ms\":%ld,\"duplicates\":%ld,\"left_in_db\":%lld",
           pooljs, g_opts.interval_ms, dups, (long long)db.left);
    print_dist(stdout, "latency_ms", lat, m);
    print_dist(stdout, "add_call_ms", addms, (size_t)n);
    fputs("}\n", stdout);
    rc = ok ? 0 : 1;
out:
    pgq_pool_free(pool);
    pgq_disconnect(c);
    free(t_add);
    free(lat);
    free(addms);
    return rc;
}
