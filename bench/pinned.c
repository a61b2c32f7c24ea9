/* pinned.c -- `pgq-bench pinned`: what a session holding a transaction open
 * (a pinned xmin: pg_dump, a forgotten psql, a long REPEATABLE READ report)
 * does to pgq. While that transaction's snapshot is the oldest, no row
 * version deleted after it began may be removed, neither from the table
 * nor from its indexes, so every claim that walks the claim index from its
 * start steps over all of them: the drain turns quadratic.
 *
 * The pin is its own connection: BEGIN; SELECT txid_current(); (an xid, so
 * it holds the horizon like a writer would), then nothing until COMMIT. It
 * must be in the bench database: PostgreSQL 15 computes the horizon of a
 * regular table from the backends of its own database.
 *
 * Two modes:
 *
 * - drain (--jobs N --pin yes|no): the pin (with yes) is taken before the N
 *   jobs are added, the bench pool (bench_pool_spec, default profile)
 *   drains them as throughput does, and the pin is released after.
 *   run.sh runs it once with and once without; the ratio is the figure.
 * - sustained (--rate R): soak's producer offers R jobs/s to soak's pool;
 *   --before-minutes unpinned (the baseline), --pin-minutes with the pin,
 *   --after-minutes after its release. Every --sample-s one line.
 *
 * Claim time is read from pg_stat_statements (the server must preload it;
 * the extension is created in the bench database here, and tracking, off
 * in bench/run.sh's server, turned on for it): the statements
 * calling pgq.complete_claim, top level only, their calls, total_exec_time
 * and shared buffers (hit + read). Buffers per claim count the index and
 * heap pages a claim touched, which is what grows with the dead entries it
 * walks: unlike time, it does not depend on the machine's other load. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* The pg_stat_statements query texts of pgq's claims. */
#define CLAIM_PATTERN "%pgq.complete_claim(%"

struct claims {
    double calls, ms, hit, read;
};

/* Create the extension and track every statement of this database's
 * later sessions (the pool connects after this): bench/run.sh's server
 * preloads the library with tracking off, so that the other benchmarks do
 * not pay for it. */
static int claims_enable(pgq_conn *c, char *err, size_t errlen)
{
    static const char hint[] = " (the server needs -c shared_preload_libraries="
                               "pg_stat_statements; bench/run.sh starts it so)";
    char msg[900];
    PGresult *r = bench_query(c, "CREATE EXTENSION pg_stat_statements",
                              "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", 0, NULL,
                              PGRES_COMMAND_OK, msg, sizeof msg);
    if (!r)
        goto fail;
    PQclear(r);
    r = bench_query(c, "ALTER DATABASE ... SET pg_stat_statements.track = 'all'",
        "DO $$BEGIN EXECUTE format('ALTER DATABASE %I SET pg_stat_statements.track = ''all''',"
        " current_database()); END$$", 0, NULL, PGRES_COMMAND_OK, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    r = bench_query(c, "reading pg_stat_statements", "SELECT count(*) FROM pg_stat_statements",
                    0, NULL, PGRES_TUPLES_OK, msg, sizeof msg);
    if (!r)
        goto fail;
    PQclear(r);
    return 0;
fail:
    snprintf(err, errlen, "%s%s", msg, hint);
    return -1;
}

static int claims_read(pgq_conn *c, struct claims *out, char *err, size_t errlen)
{
    const char *params[1] = { CLAIM_PATTERN };
    PGresult *r = bench_query(c, "reading the claims from pg_stat_statements",
        "SELECT coalesce(sum(calls), 0), coalesce(sum(total_exec_time), 0),"
        "       coalesce(sum(shared_blks_hit), 0), coalesce(sum(shared_blks_read), 0)"
        "  FROM pg_stat_statements"
        " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
        "   AND toplevel AND query LIKE $1", 1, params, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    out->calls = strtod(PQgetvalue(r, 0, 0), NULL);
    out->ms = strtod(PQgetvalue(r, 0, 1), NULL);
    out->hit = strtod(PQgetvalue(r, 0, 2), NULL);
    out->read = strtod(PQgetvalue(r, 0, 3), NULL);
    PQclear(r);
    return 0;
}

/* ,"claims":..,"claim_ms":..,"claim_buffers":.. for the calls from a to b. */
static void claims_json(FILE *f, const struct claims *a, const struct claims *b, double *ms,
                        double *bufs)
{
    double n = b->calls - a->calls;
    *ms = n > 0 ? (b->ms - a->ms) / n : NAN;
    *bufs = n > 0 ? (b->hit - a->hit + b->read - a->read) / n : NAN;
    fprintf(f, ",\"claims\":%.0f", n);
    if (n > 0)
        fprintf(f, ",\"claim_ms\":%.4f,\"claim_buffers\":%.1f,\"claim_buffers_read\":%.2f", *ms,
                *bufs, (b->read - a->read) / n);
    else
        fputs(",\"claim_ms\":null,\"claim_buffers\":null,\"claim_buffers_read\":null", f);
}

/* ---- the pin ------------------------------------------------------------------------ */

static int pin_take(pgq_conn *pin, char *xid, size_t xidlen, char *err, size_t errlen)
{
    PGresult *r = bench_query(pin, "pin: BEGIN", "BEGIN", 0, NULL, PGRES_COMMAND_OK, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    r = bench_query(pin, "pin: SELECT txid_current()", "SELECT txid_current()", 0, NULL,
                    PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    snprintf(xid, xidlen, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static int pin_release(pgq_conn *pin, char *err, size_t errlen)
{
    PGresult *r = bench_query(pin, "pin: COMMIT", "COMMIT", 0, NULL, PGRES_COMMAND_OK, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* ---- pgq.jobs ------------------------------------------------------------------------- */

struct jobs_table {
    int64_t bytes, index_bytes, dead, autovacuums;
};

static int jobs_read(pgq_conn *c, struct jobs_table *t, char *err, size_t errlen)
{
    PGresult *r = bench_query(c, "sampling pgq.jobs",
        "SELECT pg_total_relation_size('pgq.jobs'), pg_indexes_size('pgq.jobs'),"
        "       coalesce(n_dead_tup, -1), coalesce(autovacuum_count, -1)"
        "  FROM (SELECT 1) one LEFT JOIN pg_stat_user_tables ON relid = 'pgq.jobs'::regclass",
        0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    t->bytes = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    t->index_bytes = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    t->dead = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    t->autovacuums = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
    PQclear(r);
    return 0;
}

static void jobs_json(FILE *f, const struct jobs_table *t)
{
    fprintf(f, ",\"jobs_bytes\":%" PRId64 ",\"jobs_index_bytes\":%" PRId64 ","
            "\"jobs_dead_tup\":%" PRId64 ",\"jobs_autovacuums\":%" PRId64,
            t->bytes, t->index_bytes, t->dead, t->autovacuums);
}

static int connect_named(const char *who, pgq_conn **out)
{
    char err[1024], msg[1100];
    if (pgq_connect(getenv("DATABASE_URL"), out, err, sizeof err) < 0) {
        snprintf(msg, sizeof msg, "connecting %s: %s", who, err);
        fail_json(msg);
        return -1;
    }
    return 0;
}

/* ---- drain ------------------------------------------------------------------------------ */

static int run_drain(void)
{
    char err[1024], pooljs[384], xid[32] = "";
    pgq_conn *c = NULL, *watch = NULL, *pin = NULL;
    pgq_pool *pool = NULL;
    bool pinned = strcmp(g_opts.pin, "yes") == 0, pin_held = false;
    long n = g_opts.jobs;
    int rc = 1;

    if (bench_open(&c) < 0)
        return 1;
    if (connect_named("the watcher", &watch) < 0 || connect_named("the pin session", &pin) < 0)
        goto out;
    if (claims_enable(c, err, sizeof err) < 0)
        goto fail;
    struct pool_spec spec = bench_pool_spec();
    if (bench_pool_prepare(c, &spec, &pool, pooljs, sizeof pooljs) < 0)
        goto out;
    g_target = n;
    if (pinned) {
        if (pin_take(pin, xid, sizeof xid, err, sizeof err) < 0)
            goto fail;
        pin_held = true;
    }
    if (bench_enqueue_all(c, n, err, sizeof err) < 0)
        goto fail;
    struct claims c0, c1;
    struct jobs_table j0, j1;
    if (jobs_read(c, &j0, err, sizeof err) < 0 || claims_read(c, &c0, err, sizeof err) < 0)
        goto fail;

    int64_t d0 = now_ns(), d1 = d0;
    if (bench_pool_start(pool) < 0)
        goto out;
    int drained = bench_watch_drain(watch, d0 + (int64_t)g_opts.max_drain_s * 1000000000,
                                    &d1, err, sizeof err);
    if (drained < 0) {
        pgq_pool_stop(pool);
        (void)!pgq_pool_wait(pool);
        goto fail;
    }
    /* Still pinned: the table as the drain left it. */
    if (claims_read(c, &c1, err, sizeof err) < 0 || jobs_read(c, &j1, err, sizeof err) < 0) {
        pgq_pool_stop(pool);
        (void)!pgq_pool_wait(pool);
        goto fail;
    }
    pgq_pool_stop(pool);
    int wrc = pgq_pool_wait(pool);
    if (pin_held) {
        pin_held = false;
        if (pin_release(pin, err, sizeof err) < 0)
            goto fail;
    }
    struct db_counts db;
    if (bench_db_counts(watch, &db, err, sizeof err) < 0)
        goto fail;
    long dups = 0, missing = 0;
    bench_count_calls(n, &dups, &missing);
    double drain_ms = (double)(d1 - d0) / 1e6, ms, bufs;
    bool ok = drained == 1 && dups == 0 && missing == 0 && wrc == 0 && db.done == n &&
              db.left == 0 && atomic_load(&g_bad_payload) == 0;
    json_head(stdout, ok, true);
    printf(",\"pool\":%s,\"pinned\":%s,\"pin_xid\":%s,\"drained\":%s,\"drain_ms\":%.1f,"
           "\"jobs_per_s\":%.0f", pooljs, pinned ? "true" : "false", pinned ? xid : "null",
           drained == 1 ? "true" : "false", drain_ms,
           drained == 1 ? (double)n / (drain_ms / 1000) : 0.0);
    claims_json(stdout, &c0, &c1, &ms, &bufs);
    printf(",\"jobs_bytes_before\":%" PRId64, j0.bytes);
    jobs_json(stdout, &j1);
    printf(",\"duplicates\":%ld,\"not_run\":%ld,\"done_in_db\":%lld,\"left_in_db\":%lld}\n",
           dups, missing, (long long)db.done, (long long)db.left);
    rc = ok ? 0 : 1;
    goto out;
fail:
    fail_json(err);
out:
    if (pin_held)
        (void)!pin_release(pin, err, sizeof err);
    pgq_pool_free(pool);
    pgq_disconnect(pin);
    pgq_disconnect(watch);
    pgq_disconnect(c);
    return rc;
}

/* ---- sustained ------------------------------------------------------------------------ */

enum phase { BEFORE, PINNED, AFTER };
static const char *const phase_name[] = { "before", "pin", "after" };

struct sample {
    enum phase phase;
    double jobs_per_s, claim_ms, claim_buffers;
    long backlog;
    struct jobs_table t;
};

static long samples_of(double minutes)
{
    return (long)llround(minutes * 60.0 / (double)g_opts.sample_s);
}

/* Mean of a field over the samples of one phase; NAN when none. */
static double phase_mean(const struct sample *s, long n, enum phase ph, size_t off)
{
    double sum = 0;
    long k = 0;
    for (long i = 0; i < n; i++) {
        double v = *(const double *)((const char *)&s[i] + off);
        if (s[i].phase == ph && !isnan(v)) {
            sum += v;
            k++;
        }
    }
    return k ? sum / (double)k : NAN;
}

static void num_or_null(FILE *f, const char *key, double v, int decimals)
{
    fprintf(f, ",\"%s\":", key);
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.*f", decimals, v);
}

static void verdict(FILE *f, const char *key, int v)
{
    fprintf(f, ",\"%s\":%s", key, v < 0 ? "null" : v ? "true" : "false");
}

static void print_summary(const struct sample *s, long n, long nb, long np, bool ok,
                          long added, long dups, long missing, long left, const char *xid,
                          const char *pooljs)
{
    double base_tp = phase_mean(s, n, BEFORE, offsetof(struct sample, jobs_per_s));
    double base_ms = phase_mean(s, n, BEFORE, offsetof(struct sample, claim_ms));
    double base_buf = phase_mean(s, n, BEFORE, offsetof(struct sample, claim_buffers));
    double pin_min_tp = INFINITY, pin_max_ms = 0, pin_max_buf = 0;
    int64_t base_dead = 0, base_backlog = 0;
    for (long i = 0; i < nb; i++) {
        base_dead = s[i].t.dead > base_dead ? s[i].t.dead : base_dead;
        base_backlog = s[i].backlog > base_backlog ? s[i].backlog : base_backlog;
    }
    for (long i = nb; i < nb + np; i++) {
        pin_min_tp = fmin(pin_min_tp, s[i].jobs_per_s);
        if (!isnan(s[i].claim_ms))
            pin_max_ms = fmax(pin_max_ms, s[i].claim_ms);
        if (!isnan(s[i].claim_buffers))
            pin_max_buf = fmax(pin_max_buf, s[i].claim_buffers);
    }
    /* "Back to zero": no more than twice the baseline's largest backlog
     * (jobs in flight between add and handler), at least 100; dead tuples
     * "near baseline": at most 1.5x the baseline's largest count + 1000. */
    int64_t backlog_ok = 2 * base_backlog > 100 ? 2 * base_backlog : 100;
    int64_t dead_ok = base_dead + base_dead / 2 + 1000;
    /* Back = from that sample to the end of the run: a dip right after an
     * autovacuum that the next minutes undo does not count. */
    double backlog_min = NAN, dead_min = NAN;
    bool backlog_stays = true, dead_stays = true;
    for (long i = n - 1; i >= nb + np; i--) {
        double since = (double)(i - nb - np + 1) * (double)g_opts.sample_s / 60.0;
        backlog_stays = backlog_stays && s[i].backlog <= backlog_ok;
        dead_stays = dead_stays && s[i].t.dead >= 0 && s[i].t.dead <= dead_ok;
        if (backlog_stays)
            backlog_min = since;
        if (dead_stays)
            dead_min = since;
    }
    bool judged = nb > 0;
    json_head(stdout, ok, true);
    printf(",\"pool\":%s,\"summary\":true,\"rate\":%ld,\"pin_xid\":%s,\"sample_s\":%ld,"
           "\"before_samples\":%ld,\"pin_samples\":%ld,\"after_samples\":%ld,\"added\":%ld,"
           "\"duplicates\":%ld,\"not_run\":%ld,\"left_at_end\":%ld",
           pooljs, g_opts.rate, xid, g_opts.sample_s, nb, np, n - nb - np, added, dups, missing,
           left);
    num_or_null(stdout, "unpinned_jobs_per_s", base_tp, 1);
    num_or_null(stdout, "unpinned_claim_ms", base_ms, 4);
    num_or_null(stdout, "unpinned_claim_buffers", base_buf, 1);
    num_or_null(stdout, "pinned_min_jobs_per_s", isinf(pin_min_tp) ? NAN : pin_min_tp, 1);
    num_or_null(stdout, "pinned_max_claim_ms", pin_max_ms, 4);
    num_or_null(stdout, "pinned_max_claim_buffers", pin_max_buf, 1);
    num_or_null(stdout, "pinned_min_throughput_ratio", judged ? pin_min_tp / base_tp : NAN,
                3);
    num_or_null(stdout, "pinned_max_claim_ratio", judged && base_ms > 0 ? pin_max_ms / base_ms
                                                                       : NAN, 2);
    printf(",\"backlog_ok_below\":%" PRId64 ",\"dead_ok_below\":%" PRId64, backlog_ok, dead_ok);
    num_or_null(stdout, "backlog_back_after_min", backlog_min, 2);
    num_or_null(stdout, "dead_back_after_min", dead_min, 2);
    verdict(stdout, "throughput_within_20pct", judged ? pin_min_tp >= 0.8 * base_tp : -1);
    verdict(stdout, "claim_within_2x", judged && !isnan(base_ms) ? pin_max_ms <= 2 * base_ms : -1);
    verdict(stdout, "backlog_back_within_5min", !isnan(backlog_min) && backlog_min <= 5);
    verdict(stdout, "dead_back_within_5min", judged ? !isnan(dead_min) && dead_min <= 5 : -1);
    fputs("}\n", stdout);
}

static int run_sustained(void)
{
    char err[1024], pooljs[384], xid[32] = "null";
    pgq_conn *c = NULL, *pin = NULL;
    pgq_pool *pool = NULL;
    struct producer prod = { .rate = g_opts.rate };
    pthread_t prod_th;
    bool prod_started = false, pool_started = false, pin_held = false;
    long nb = samples_of(g_opts.before_min), np = samples_of(g_opts.pin_min);
    long na = samples_of(g_opts.after_min);
    np = np < 1 ? 1 : np;
    na = na < 1 ? 1 : na;
    long n = nb + np + na;
    int rc = 1;
    struct sample *smp = calloc((size_t)n, sizeof *smp);

    if (!smp) {
        fail_json("out of memory");
        return 1;
    }
    if (bench_open(&c) < 0)
        goto out;
    if (connect_named("the producer", &prod.c) < 0 || connect_named("the pin session", &pin) < 0)
        goto out;
    if (claims_enable(c, err, sizeof err) < 0)
        goto fail;
    struct pool_spec spec = bench_soak_spec();
    if (bench_pool_prepare(c, &spec, &pool, pooljs, sizeof pooljs) < 0)
        goto out;
    if (bench_pool_start(pool) < 0)
        goto out;
    pool_started = true;
    struct claims cprev;
    if (claims_read(c, &cprev, err, sizeof err) < 0)
        goto fail;
    int64_t t0 = now_ns();
    prod.t0 = t0;
    if (pthread_create(&prod_th, NULL, bench_producer_main, &prod) != 0) {
        snprintf(err, sizeof err, "cannot start the producer thread");
        goto fail;
    }
    prod_started = true;

    long prev_done = 0;
    int64_t prev_t = t0;
    for (long i = 0; i < n; i++) {
        if (i == nb) {
            if (pin_take(pin, xid, sizeof xid, err, sizeof err) < 0)
                goto fail;
            pin_held = true;
        } else if (i == nb + np) {
            pin_held = false;
            if (pin_release(pin, err, sizeof err) < 0)
                goto fail;
        }
        int64_t at = t0 + (i + 1) * g_opts.sample_s * 1000000000LL;
        while (now_ns() < at && atomic_load(&prod.rc) == 0)
            sleep_ms(fmin((double)(at - now_ns()) / 1e6, 500));
        if (atomic_load(&prod.rc) != 0) {
            snprintf(err, sizeof err, "%s", prod.err);
            goto fail;
        }
        int64_t t = now_ns();
        long added = atomic_load(&prod.added), done = atomic_load(&g_distinct);
        struct sample *s = &smp[i];
        struct claims cnow;
        if (claims_read(c, &cnow, err, sizeof err) < 0 || jobs_read(c, &s->t, err, sizeof err) < 0)
            goto fail;
        s->phase = i < nb ? BEFORE : i < nb + np ? PINNED : AFTER;
        s->jobs_per_s = (double)(done - prev_done) / ((double)(t - prev_t) / 1e9);
        s->backlog = added - done;
        json_head(stdout, true, true);
        printf(",\"pool\":%s,\"rate\":%ld,\"sample\":%ld,\"t_s\":%.1f,\"phase\":\"%s\","
               "\"added\":%ld,\"done\":%ld,\"jobs_per_s\":%.1f,\"backlog\":%ld", pooljs,
               g_opts.rate, i + 1, (double)(t - t0) / 1e9, phase_name[s->phase], added, done,
               s->jobs_per_s, s->backlog);
        claims_json(stdout, &cprev, &cnow, &s->claim_ms, &s->claim_buffers);
        jobs_json(stdout, &s->t);
        fputs("}\n", stdout);
        fflush(stdout);
        cprev = cnow;
        prev_done = done;
        prev_t = t;
    }

    /* Stop adding; give the pool up to 60 s for what is left. */
    atomic_store(&prod.stop, true);
    pthread_join(prod_th, NULL);
    prod_started = false;
    long added = atomic_load(&prod.added);
    g_target = added;
    (void)bench_wait_handled(now_ns() + 60LL * 1000000000);
    pgq_pool_stop(pool);
    int wrc = pgq_pool_wait(pool);
    pool_started = false;
    long dups, missing;
    bench_count_calls(added, &dups, &missing);
    /* Jobs left unhandled after the grace period are what the pin cost, not
     * a fault: ok judges only what ran (once each) and the clean stop. */
    bool ok = wrc == 0 && dups == 0 && atomic_load(&g_bad_payload) == 0;
    print_summary(smp, n, nb, np, ok, added, dups, missing, added - atomic_load(&g_distinct), xid,
                  pooljs);
    rc = ok ? 0 : 1;
    goto out;
fail:
    fail_json(err);
out:
    if (prod_started) {
        atomic_store(&prod.stop, true);
        pthread_join(prod_th, NULL);
    }
    if (pin_held)
        (void)!pin_release(pin, err, sizeof err);
    if (pool_started) {
        pgq_pool_stop(pool);
        (void)!pgq_pool_wait(pool);
    }
    pgq_pool_free(pool);
    pgq_disconnect(prod.c);
    pgq_disconnect(pin);
    pgq_disconnect(c);
    free(smp);
    return rc;
}

int run_pinned(void)
{
    return g_opts.jobs >= 0 ? run_drain() : run_sustained();
}
