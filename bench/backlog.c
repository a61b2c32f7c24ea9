/* backlog.c -- `pgq-bench backlog`: does claiming stay flat as the number
 * of queued jobs grows (issue 5: claim time with 10M ready jobs at most
 * 1.5x that with 10k)?
 *
 * One database serves every size, smallest first: the backlog is loaded
 * with plain SQL (INSERT ... SELECT generate_series, 1M rows a statement;
 * loading is not what is measured) up to the size, then VACUUM ANALYZE.
 * Each pass then measures, on that backlog:
 *
 *   claim_ms         --cycles sequential pgq_claim + pgq_complete on one
 *                    connection; claim_ms is the pgq_claim call alone, as a
 *                    worker sees it (with synchronous_commit on, a claim
 *                    waits for its WAL flush: ~1 ms of fsync on this kind of
 *                    disk, the same at every size);
 *   claim_nosync_ms  the same with synchronous_commit = off in that session:
 *                    the claim's own work (index probe, lock, update), which
 *                    is what grows if an index does not fit the query;
 *   claim_threads_ms --threads connections claiming concurrently (--cycles
 *                    in all), when --threads > 1: SKIP LOCKED contention at
 *                    the head of the queue.
 *
 * After loading a size, 200 untimed cycles warm the caches. Before each of
 * the three, the jobs consumed are topped up (so the ready
 * count is the size again), the table vacuumed and a CHECKPOINT taken, so
 * every measurement starts from the same state and none pays for writing
 * out what loading dirtied (after a load also sync(2): the kernel's own
 * writeback of the loaded files). Building a 10M backlog three times would
 * take most of the time budget of `make bench`, hence passes on one
 * backlog. One JSON line per size and pass. */
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define LOAD_CHUNK 1000000L
#define WARMUP 200          /* untimed cycles after loading a size */
static const char *const QUEUES[] = { "default" };

struct backlog {
    pgq_conn *c;
    int64_t next_k;      /* payload order of the next loaded job */
    int64_t ready;       /* ready jobs, by our own count */
    bool warned;         /* CHECKPOINT refused, said so once */
};

/* Add n ready jobs (due an hour ago) with plain SQL, in chunks. */
static int load(struct backlog *b, int64_t n, char *err, size_t errlen)
{
    while (n > 0) {
        int64_t m = n < LOAD_CHUNK ? n : LOAD_CHUNK;
        char lo[24], hi[24];
        snprintf(lo, sizeof lo, "%" PRId64, b->next_k);
        snprintf(hi, sizeof hi, "%" PRId64, b->next_k + m - 1);
        const char *params[] = { JOB_TYPE, lo, hi };
        PGresult *r = bench_query(b->c, "loading the backlog",
            "INSERT INTO pgq.jobs (queue, type, payload, run_at)"
            " SELECT 'default', $1, jsonb_build_object('i', g), now() - interval '1 hour'"
            "   FROM generate_series($2::bigint, $3::bigint) AS g",
            3, params, PGRES_COMMAND_OK, err, errlen);
        if (!r)
            return -1;
        PQclear(r);
        b->next_k += m;
        b->ready += m;
        n -= m;
    }
    return 0;
}

static int command(pgq_conn *c, const char *what, const char *sql, char *err, size_t errlen)
{
    PGresult *r = bench_query(c, what, sql, 0, NULL, PGRES_COMMAND_OK, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Back to `size` ready jobs, then VACUUM (ANALYZE when asked) and
 * CHECKPOINT; seconds of loading in *load_s, of the rest in *vacuum_s. */
static int top_up(struct backlog *b, int64_t size, bool analyze, double *load_s,
                  double *vacuum_s, char *err, size_t errlen)
{
    int64_t t0 = now_ns();
    if (b->ready < size && load(b, size - b->ready, err, errlen) < 0)
        return -1;
    int64_t t1 = now_ns();
    if (command(b->c, "vacuuming pgq.jobs",
                analyze ? "VACUUM ANALYZE pgq.jobs" : "VACUUM pgq.jobs", err, errlen) < 0)
        return -1;
    /* Write out what the load dirtied now, or the checkpointer does it
     * while we measure (2 GB for 10M jobs) and the largest size pays for
     * its own loading. Needs superuser or pg_checkpoint: without, say so
     * and go on. */
    char cerr[512];
    if (command(b->c, "checkpoint", "CHECKPOINT", cerr, sizeof cerr) < 0 && !b->warned) {
        fprintf(stderr, "pgq-bench backlog: %s (measuring without it)\n", cerr);
        b->warned = true;
    }
    /* The kernel may still be writing back the files the load wrote, and
     * the claims' WAL flushes would queue behind it. When the server is on
     * this machine, sync(2) waits for that; elsewhere it costs nothing. */
    if (analyze)
        sync();
    if (load_s)
        *load_s = (double)(t1 - t0) / 1e9;
    if (vacuum_s)
        *vacuum_s = (double)(now_ns() - t1) / 1e9;
    return 0;
}

/* n claim + complete cycles on c; the claim and complete times in ms go to
 * claim[i], complete[i]. */
static int cycles(pgq_conn *c, long n, double *claim, double *complete, char *err, size_t errlen)
{
    for (long i = 0; i < n; i++) {
        pgq_job *j;
        char msg[768];
        bool lost;
        int64_t t0 = now_ns();
        if (pgq_claim(c, QUEUES, 1, "pgq-bench", 30000, &j, msg, sizeof msg) < 0) {
            snprintf(err, errlen, "claim %ld: %s", i, msg);
            return -1;
        }
        int64_t t1 = now_ns();
        if (!j) {
            snprintf(err, errlen, "claim %ld: no ready job (the backlog ran dry)", i);
            return -1;
        }
        int rc = pgq_complete(c, j->id, j->lease_token, NULL, &lost, msg, sizeof msg);
        int64_t t2 = now_ns();
        pgq_job_free(j);
        if (rc < 0 || lost) {
            snprintf(err, errlen, "complete %ld: %s", i, rc < 0 ? msg : "lease lost");
            return -1;
        }
        claim[i] = (double)(t1 - t0) / 1e6;
        complete[i] = (double)(t2 - t1) / 1e6;
    }
    return 0;
}

/* ---- concurrent claimers ---------------------------------------------------- */

struct claimer {
    long n;
    double *claim, *complete;
    pthread_barrier_t *go;
    int rc;
    char err[1024];
};

static void *claimer_main(void *arg)
{
    struct claimer *t = arg;
    pgq_conn *c = NULL;
    t->rc = pgq_connect(getenv("DATABASE_URL"), &c, t->err, sizeof t->err);
    pthread_barrier_wait(t->go);
    if (t->rc == 0)
        t->rc = cycles(c, t->n, t->claim, t->complete, t->err, sizeof t->err);
    pgq_disconnect(c);
    return NULL;
}

/* --cycles cycles spread over nthreads connections; *wall_s is the time
 * from the start signal until the last thread finished. */
static int concurrent(long nthreads, long total, double *claim, double *complete, double *wall_s,
                      char *err, size_t errlen)
{
    struct claimer *t = calloc((size_t)nthreads, sizeof *t);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    pthread_barrier_t go;
    if (!t || !th || pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1) != 0) {
        snprintf(err, errlen, "out of memory");
        free(t);
        free(th);
        return -1;
    }
    for (long i = 0, off = 0; i < nthreads; i++) {
        long n = total / nthreads + (i < total % nthreads);
        t[i] = (struct claimer){ .n = n, .claim = claim + off, .complete = complete + off,
                                 .go = &go };
        off += n;
        if (pthread_create(&th[i], NULL, claimer_main, &t[i]) != 0) {
            snprintf(err, errlen, "cannot start claimer thread %ld", i);
            /* the barrier needs everyone: the started ones cannot be
             * released, so this is fatal */
            fail_json(err);
            exit(1);
        }
    }
    pthread_barrier_wait(&go);
    int64_t t0 = now_ns();
    for (long i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    *wall_s = (double)(now_ns() - t0) / 1e9;
    int rc = 0;
    for (long i = 0; i < nthreads; i++)
        if (t[i].rc != 0) {
            snprintf(err, errlen, "claimer %ld: %.900s", i, t[i].err);
            rc = -1;
            break;
        }
    pthread_barrier_destroy(&go);
    free(t);
    free(th);
    return rc;
}

/* ---- the benchmark ----------------------------------------------------------------- */

static int64_t table_bytes(pgq_conn *c)
{
    char err[256];
    PGresult *r = bench_query(c, "size", "SELECT pg_total_relation_size('pgq.jobs')", 0, NULL,
                              PGRES_TUPLES_OK, err, sizeof err);
    if (!r)
        return -1;
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

int run_backlog(void)
{
    char err[1024], msg[1200];
    struct backlog b = { 0 };
    long n = g_opts.cycles;
    int rc = 1;
    double *claim = calloc((size_t)n, sizeof *claim), *complete = calloc((size_t)n, sizeof *complete),
           *nosync = calloc((size_t)n, sizeof *nosync), *tclaim = calloc((size_t)n, sizeof *tclaim),
           *scratch = calloc((size_t)n, sizeof *scratch);
    if (!claim || !complete || !nosync || !tclaim || !scratch) {
        fail_json("out of memory");
        goto out;
    }
    if (bench_open(&b.c) < 0)
        goto out;
    pgq_type_def def = { .type = JOB_TYPE, .queue = "default", .max_retries = PGQ_DEFAULT,
                         .priority = PGQ_DEFAULT, .timeout_ms = 0, .backoff_base_ms = -1,
                         .backoff_max_ms = -1 };
    if (pgq_types_register(b.c, &def, 1, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "registering job type %s: %s", JOB_TYPE, err);
        fail_json(msg);
        goto out;
    }
    if (bench_expect_empty(b.c) < 0)
        goto out;

    for (int s = 0; s < g_opts.nsizes; s++) {
        int64_t size = g_opts.sizes[s];
        double load_s = 0, vacuum_s = 0;
        if (top_up(&b, size, true, &load_s, &vacuum_s, err, sizeof err) < 0)
            goto fail;
        fprintf(stderr, "pgq-bench backlog: %" PRId64 " ready jobs loaded in %.1f s, vacuumed "
                "and checkpointed in %.1f s\n", size, load_s, vacuum_s);
        /* Untimed: the first claims after a load read cold pages; every
         * size gets the same warm-up. */
        long warm = n < WARMUP ? n : WARMUP;
        if (cycles(b.c, warm, claim, complete, err, sizeof err) < 0)
            goto fail;
        b.ready -= warm;
        for (long pass = 1; pass <= g_opts.passes; pass++) {
            double wall_1 = 0, wall_t = 0;
            if (top_up(&b, size, false, NULL, NULL, err, sizeof err) < 0)
                goto fail;
            int64_t t0 = now_ns();
            if (cycles(b.c, n, claim, complete, err, sizeof err) < 0)
                goto fail;
            wall_1 = (double)(now_ns() - t0) / 1e9;
            b.ready -= n;

            /* completes of the other two are not reported: scratch */
            if (top_up(&b, size, false, NULL, NULL, err, sizeof err) < 0 ||
                command(b.c, "synchronous_commit off", "SET synchronous_commit = off",
                        err, sizeof err) < 0 ||
                cycles(b.c, n, nosync, scratch, err, sizeof err) < 0 ||
                command(b.c, "synchronous_commit back", "RESET synchronous_commit",
                        err, sizeof err) < 0)
                goto fail;
            b.ready -= n;

            size_t nt = 0;
            if (g_opts.threads > 1) {
                if (top_up(&b, size, false, NULL, NULL, err, sizeof err) < 0 ||
                    concurrent(g_opts.threads, n, tclaim, scratch, &wall_t, err, sizeof err) < 0)
                    goto fail;
                b.ready -= n;
                nt = (size_t)n;
            }
            int64_t bytes = table_bytes(b.c);

            json_head(stdout, true, false);
            printf(",\"ready_jobs\":%" PRId64 ",\"pass\":%ld,\"passes\":%ld,\"cycles\":%ld,"
                   "\"load_s\":%.1f,\"vacuum_checkpoint_s\":%.1f,\"jobs_bytes\":%" PRId64,
                   size, pass, g_opts.passes, n, load_s, vacuum_s, bytes);
            print_dist(stdout, "claim_ms", claim, (size_t)n);
            print_dist(stdout, "complete_ms", complete, (size_t)n);
            printf(",\"cycles_per_s\":%.0f", (double)n / wall_1);
            print_dist(stdout, "claim_nosync_ms", nosync, (size_t)n);
            printf(",\"threads\":%ld", g_opts.threads > 1 ? g_opts.threads : 1);
            if (nt) {
                print_dist(stdout, "claim_threads_ms", tclaim, nt);
                printf(",\"threads_cycles_per_s\":%.0f", (double)n / wall_t);
            }
            fputs("}\n", stdout);
            fflush(stdout);
        }
    }
    rc = 0;
    goto out;
fail:
    fail_json(err);
out:
    pgq_disconnect(b.c);
    free(claim);
    free(complete);
    free(nosync);
    free(tclaim);
    free(scratch);
    return rc;
}
