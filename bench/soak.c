/* soak.c -- `pgq-bench soak --minutes M --rate R`: sustained load at a
 * fixed rate, to see that nothing creeps: throughput, table and index
 * sizes, dead tuples, and the done rows that retention must keep bounded.
 *
 * A producer thread (its own connection) adds jobs on a fixed schedule:
 * every 10 ms it adds, with one pgq_add_batch, however many jobs the rate
 * says are due by now (so a slow batch is caught up by the next, not lost).
 * An embedded pool (the noop callback; poll, heartbeat and lease at their
 * pool.ini defaults, keep_done from --keep-done, so that pruning, which the
 * pool does once a minute, shows) drains them. Every minute the main thread
 * prints one JSON line: jobs added and handled in that minute, throughput,
 * the backlog, done rows, sizes of pgq.jobs and pgq.job_attempts (table
 * with indexes, and indexes alone) and their dead tuples. At the end the
 * producer stops, the backlog drains (up to 60 s), and a summary line
 * judges the run: throughput of every minute within +-10% of the mean,
 * sizes level after a warm-up, done rows within what the retention allows. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "duration.h"

#define TICK_MS 10
#define MAX_BATCH 2000

void *bench_producer_main(void *arg)
{
    struct producer *p = arg;
    struct bench_batch b;
    if (bench_batch_init(&b, MAX_BATCH) < 0) {
        snprintf(p->err, sizeof p->err, "producer: out of memory");
        atomic_store(&p->rc, -1);
        goto out;
    }
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&p->stop)) {
        long added = atomic_load(&p->added);
        long due = (long)((double)p->rate * (double)(now_ns() - p->t0) / 1e9) - added;
        if (due > MAX_BATCH)
            due = MAX_BATCH;
        if (added + due > g_njobs)
            due = g_njobs - added;
        if (due > 0) {
            char msg[768];
            if (bench_batch_add(p->c, &b, added, (size_t)due, msg, sizeof msg) < 0) {
                snprintf(p->err, sizeof p->err, "producer: adding jobs %ld..: %s", added, msg);
                atomic_store(&p->rc, -1);
                break;
            }
            atomic_store(&p->added, added + due);
        }
        next.tv_nsec += TICK_MS * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0) {}
    }
out:
    bench_batch_free(&b);
    return NULL;
}

struct sample {
    int64_t jobs_bytes, jobs_index_bytes, attempts_bytes, attempts_index_bytes;
    int64_t jobs_dead, attempts_dead, jobs_autovacuums, done_rows, backlog;
};

static int sample_db(pgq_conn *c, struct sample *s, char *err, size_t errlen)
{
    PGresult *r = bench_query(c, "sampling table sizes",
        "SELECT pg_total_relation_size('pgq.jobs'), pg_indexes_size('pgq.jobs'),"
        "       pg_total_relation_size('pgq.job_attempts'), pg_indexes_size('pgq.job_attempts'),"
        "       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables"
        "                  WHERE relid = 'pgq.jobs'::regclass), -1),"
        "       coalesce((SELECT n_dead_tup FROM pg_stat_user_tables"
        "                  WHERE relid = 'pgq.job_attempts'::regclass), -1),"
        "       coalesce((SELECT autovacuum_count FROM pg_stat_user_tables"
        "                  WHERE relid = 'pgq.jobs'::regclass), -1),"
        "       (SELECT count(*) FROM pgq.jobs WHERE state = 'done'),"
        "       (SELECT count(*) FROM pgq.jobs WHERE state IN ('ready', 'running'))",
        0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    int64_t *v[] = { &s->jobs_bytes, &s->jobs_index_bytes, &s->attempts_bytes,
                     &s->attempts_index_bytes, &s->jobs_dead, &s->attempts_dead,
                     &s->jobs_autovacuums, &s->done_rows, &s->backlog };
    for (int i = 0; i < 9; i++)
        *v[i] = strtoll(PQgetvalue(r, 0, i), NULL, 10);
    PQclear(r);
    return 0;
}

struct pool_spec bench_soak_spec(void)
{
    struct pool_spec s = bench_pool_spec();
    s.poll = "1s";
    s.heartbeat = "10s";
    s.keep_done = g_opts.keep_done;
    return s;
}

int run_soak(void)
{
    char err[1024], msg[1200], pooljs[384];
    pgq_conn *c = NULL;
    pgq_pool *pool = NULL;
    struct producer prod = { .rate = g_opts.rate };
    pthread_t prod_th;
    bool prod_started = false, pool_started = false;
    long M = g_opts.minutes;
    int rc = 1;
    double *tp = calloc((size_t)M, sizeof *tp);
    struct sample *smp = calloc((size_t)M, sizeof *smp);
    int64_t keep_done_ms = 0;

    if (!tp || !smp) {
        fail_json("out of memory");
        goto out;
    }
    if (pgq_duration_parse(g_opts.keep_done, &keep_done_ms, err, sizeof err) < 0) {
        fail_json(err);   /* checked with the arguments already */
        goto out;
    }
    if (bench_open(&c) < 0)
        goto out;
    struct pool_spec spec = bench_soak_spec();
    if (bench_pool_prepare(c, &spec, &pool, pooljs, sizeof pooljs) < 0)
        goto out;
    if (pgq_connect(getenv("DATABASE_URL"), &prod.c, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "connecting the producer: %s", err);
        fail_json(msg);
        goto out;
    }
    if (bench_pool_start(pool) < 0)
        goto out;
    pool_started = true;
    int64_t t0 = now_ns();
    prod.t0 = t0;
    if (pthread_create(&prod_th, NULL, bench_producer_main, &prod) != 0) {
        fail_json("cannot start the producer thread");
        goto out;
    }
    prod_started = true;

    long prev_added = 0, prev_done = 0;
    int64_t prev_t = t0;
    for (long m = 1; m <= M; m++) {
        int64_t at = t0 + m * 60LL * 1000000000;
        while (now_ns() < at && atomic_load(&prod.rc) == 0)
            sleep_ms((double)(at - now_ns()) / 1e6 < 500 ? (double)(at - now_ns()) / 1e6 : 500);
        if (atomic_load(&prod.rc) != 0) {
            fail_json(prod.err);
            goto out;
        }
        int64_t t = now_ns();
        long added = atomic_load(&prod.added), done = atomic_load(&g_distinct);
        double secs = (double)(t - prev_t) / 1e9;
        if (sample_db(c, &smp[m - 1], err, sizeof err) < 0) {
            fail_json(err);
            goto out;
        }
        struct sample *s = &smp[m - 1];
        tp[m - 1] = (double)(done - prev_done) / secs;
        json_head(stdout, true, true);
        printf(",\"pool\":%s,\"rate\":%ld,\"minute\":%ld,\"added\":%ld,\"done\":%ld,"
               "\"jobs_per_s\":%.1f,\"backlog\":%" PRId64 ",\"done_rows\":%" PRId64 ","
               "\"jobs_bytes\":%" PRId64 ",\"jobs_index_bytes\":%" PRId64 ","
               "\"attempts_bytes\":%" PRId64 ",\"attempts_index_bytes\":%" PRId64 ","
               "\"jobs_dead_tup\":%" PRId64 ",\"attempts_dead_tup\":%" PRId64 ","
               "\"jobs_autovacuums\":%" PRId64 "}\n",
               pooljs, g_opts.rate, m, added - prev_added, done - prev_done, tp[m - 1],
               s->backlog, s->done_rows, s->jobs_bytes, s->jobs_index_bytes, s->attempts_bytes,
               s->attempts_index_bytes, s->jobs_dead, s->attempts_dead, s->jobs_autovacuums);
        fflush(stdout);
        prev_added = added;
        prev_done = done;
        prev_t = t;
    }
    double elapsed_s = (double)(now_ns() - t0) / 1e9;

    /* Stop adding; let the pool finish what was added. */
    atomic_store(&prod.stop, true);
    pthread_join(prod_th, NULL);
    prod_started = false;
    if (atomic_load(&prod.rc) != 0) {
        fail_json(prod.err);
        goto out;
    }
    long added = atomic_load(&prod.added);
    g_target = added;
    int64_t deadline = now_ns() + 60LL * 1000000000;
    (void)bench_wait_handled(deadline);
    int busy = bench_wait_empty(c, deadline, 5, NULL, err, sizeof err);
    pgq_pool_stop(pool);
    int wrc = pgq_pool_wait(pool);
    pool_started = false;
    struct db_counts db;
    if (busy < 0 || bench_db_counts(c, &db, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }
    long dups, missing;
    bench_count_calls(added, &dups, &missing);

    /* The verdicts. Warm-up: retention, one prune period and one more
     * minute for the tables to reach their working size. */
    double sum = 0, lo = INFINITY, hi = 0;
    for (long m = 0; m < M; m++) {
        sum += tp[m];
        lo = tp[m] < lo ? tp[m] : lo;
        hi = tp[m] > hi ? tp[m] : hi;
    }
    double mean = sum / (double)M;
    bool within = lo >= 0.9 * mean && hi <= 1.1 * mean;
    long warm = (long)ceil((double)keep_done_ms / 60000.0) + 2;
    int64_t bound = (int64_t)((double)g_opts.rate * ((double)keep_done_ms / 1000.0 + 90));
    bool ok = wrc == 0 && dups == 0 && missing == 0 && db.left == 0 &&
              atomic_load(&g_bad_payload) == 0;
    json_head(stdout, ok, true);
    printf(",\"pool\":%s,\"summary\":true,\"rate\":%ld,\"minutes\":%ld,\"added\":%ld,"
           "\"added_per_s\":%.1f,\"duplicates\":%ld,\"not_run\":%ld,\"left_in_db\":%" PRId64 ","
           "\"jobs_per_s\":{\"min\":%.1f,\"mean\":%.1f,\"max\":%.1f},"
           "\"throughput_within_10pct\":%s,\"warmup_minutes\":%ld,\"done_rows_bound\":%" PRId64,
           pooljs, g_opts.rate, M, added, (double)added / elapsed_s, dups, missing, db.left,
           lo, mean, hi, within ? "true" : "false", warm, bound);
    if (M > warm) {
        const struct sample *a = &smp[warm - 1], *z = &smp[M - 1];
        int64_t from = a->jobs_bytes + a->attempts_bytes, to = z->jobs_bytes + z->attempts_bytes;
        double growth = from > 0 ? 100.0 * (double)(to - from) / (double)from : 0;
        int64_t done_max = 0;
        for (long m = warm - 1; m < M; m++)
            done_max = smp[m].done_rows > done_max ? smp[m].done_rows : done_max;
        printf(",\"size_growth_after_warmup_pct\":%.1f,\"sizes_level\":%s,"
               "\"done_rows_max_after_warmup\":%" PRId64 ",\"done_rows_bounded\":%s}\n",
               growth, growth <= 10.0 ? "true" : "false", done_max,
               done_max <= bound ? "true" : "false");
    } else {
        /* Too short to tell a level from a climb. */
        fputs(",\"size_growth_after_warmup_pct\":null,\"sizes_level\":null,"
              "\"done_rows_max_after_warmup\":null,\"done_rows_bounded\":null}\n", stdout);
    }
    rc = ok ? 0 : 1;
out:
    if (prod_started) {
        atomic_store(&prod.stop, true);
        pthread_join(prod_th, NULL);
    }
    if (pool_started) {
        pgq_pool_stop(pool);
        (void)!pgq_pool_wait(pool);
    }
    pgq_pool_free(pool);
    pgq_disconnect(prod.c);
    pgq_disconnect(c);
    free(tp);
    free(smp);
    return rc;
}
