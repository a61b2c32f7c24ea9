/* Handlers for the pool's crash and fault tests (tests/pool_test.c), loaded
 * by a real pgq-pool as `plugin PATH SYMBOL`. They resolve pgq_ctx_* and
 * pgq_run_once from the pgq-pool executable (linked -rdynamic) and libpq
 * from the process, and steer themselves by their payload:
 *
 *   ledger_job   {"fail": F, "sleep_ms": S, "effect": E}  sleep S ms, then
 *                (unless E is 0: then done, without touching the database)
 *                the run_once effect "effect": a row (job_id, key) in
 *                test_ledger, written through the worker's own connection.
 *                F percent of attempts
 *                fail, chosen by a hash of (job id, attempt): a third before
 *                the effect, a third inside it (cleanly, before writing), a
 *                third after it (so the retry must skip it). An effect in
 *                doubt is not retried and the job counts as done.
 *   frozen_job   {"dir": D}  writes D/started-ID-ATTEMPT, waits for the file
 *                D/go, then tries the same effect with pgq_run_once on the
 *                job's own lease token (the database's fence, not the pool's
 *                lease_lost flag) and writes its result's name to
 *                D/once-ID-ATTEMPT. Done only if the effect ran or was done.
 *   polite_job   {"sleep_ms": S, "dir": D}  sleeps up to S ms, but stops
 *                (failed, "cancelled") as soon as pgq_ctx_cancelled says so;
 *                with D, writes "lease_lost=0|1" (pgq_ctx_lease_lost) to
 *                D/cancel-ID-ATTEMPT when it stops.
 *   stubborn_job {"sleep_ms": S, "dir": D}  sleeps S ms, whatever happens.
 *   polite_job and stubborn_job write D/started-ID-ATTEMPT first when given
 *   D.
 *   result_job   {"repeat": N, "fail": F}  first offers pgq_ctx_set_result a
 *                text that is not UTF-8, then sets the result "job ID: R
 *                refused=C" followed by N copies of "é" (2 bytes each), C
 *                the first call's return code; F = 1: then fails (the
 *                result must not be stored).
 *
 * test_ledger has no unique constraint on purpose: a repeated effect shows
 * up as a repeated row. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgq_pool.h"

int ledger_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);
int frozen_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);
int polite_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);
int stubborn_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);
int result_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen);

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* An integer value of "key" in jsonb's text form ({"key": 12, ...}). */
static long payload_int(const char *payload, const char *key, long dflt)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(payload, pat);
    return p ? strtol(p + strlen(pat), NULL, 10) : dflt;
}

/* A string value of "key" without escapes (paths the tests made). */
static void payload_str(const char *payload, const char *key, char *out, size_t outlen)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\": \"", key);
    const char *p = strstr(payload, pat);
    out[0] = '\0';
    if (p) {
        p += strlen(pat);
        snprintf(out, outlen, "%.*s", (int)strcspn(p, "\""), p);
    }
}

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

struct effect {
    pgq_ctx *ctx;
    bool fail;
};

/* The side effect: one ledger row, through the worker's connection. */
static int write_ledger(void *arg, char *err, size_t errlen)
{
    struct effect *e = arg;
    if (e->fail) {
        snprintf(err, errlen, "injected failure inside the effect");
        return -1;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)pgq_ctx_job(e->ctx)->id);
    const char *params[] = { id, "effect" };
    PGresult *r = PQexecParams(pgq_conn_pg(pgq_ctx_conn(e->ctx)),
                               "INSERT INTO test_ledger (job_id, key) VALUES ($1, $2)", 2, NULL,
                               params, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        snprintf(err, errlen, "ledger: %.*s", (int)strcspn(PQresultErrorMessage(r), "\n"),
                 PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int ledger_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    const pgq_job *j = pgq_ctx_job(ctx);
    long fail = payload_int(j->payload, "fail", 0), nap = payload_int(j->payload, "sleep_ms", 0);
    long roll = (long)(mix((uint64_t)j->id * 1000003u + (uint64_t)j->attempt) % 100);
    if (nap > 0)
        sleep_ms(nap);
    if (payload_int(j->payload, "effect", 1) == 0)
        return 0;
    if (roll < fail / 3) {
        snprintf(err, errlen, "injected failure before the effect (attempt %d)", j->attempt);
        return -1;
    }
    struct effect e = { ctx, roll < 2 * fail / 3 };
    pgq_once_result r = pgq_ctx_run_once(ctx, "effect", write_ledger, &e, err, errlen);
    if (r != PGQ_ONCE_RAN && r != PGQ_ONCE_SKIPPED && r != PGQ_ONCE_IN_DOUBT)
        return -1;
    if (roll < fail) {
        snprintf(err, errlen, "injected failure after the effect (attempt %d)", j->attempt);
        return -1;
    }
    return 0;
}

static void put_file(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputs(text, f);
    if (fclose(f) == 0)
        rename(tmp, path);
}

int frozen_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    const pgq_job *j = pgq_ctx_job(ctx);
    char dir[2048], path[4096];
    payload_str(j->payload, "dir", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/started-%lld-%d", dir, (long long)j->id, j->attempt);
    put_file(path, "started\n");
    snprintf(path, sizeof path, "%s/go", dir);
    for (int i = 0; access(path, F_OK) != 0; i++) {
        if (i > 6000) {
            snprintf(err, errlen, "no %s within 120 s", path);
            return -1;
        }
        sleep_ms(20);
    }
    struct effect e = { ctx, false };
    pgq_once_result r = pgq_run_once(pgq_ctx_conn(ctx), j->id, j->lease_token, "effect",
                                     write_ledger, &e, err, errlen);
    snprintf(path, sizeof path, "%s/once-%lld-%d", dir, (long long)j->id, j->attempt);
    put_file(path, pgq_once_result_name(r));
    return r == PGQ_ONCE_RAN || r == PGQ_ONCE_SKIPPED ? 0 : -1;
}

/* With "dir" in the payload: write D/started-ID-ATTEMPT, so that a test
 * knows the handler itself runs (the job being `running` in the database
 * is not enough: the worker may still be about to start it). */
static void mark_started(const pgq_job *j)
{
    char dir[2048], path[4096];
    payload_str(j->payload, "dir", dir, sizeof dir);
    if (*dir) {
        snprintf(path, sizeof path, "%s/started-%lld-%d", dir, (long long)j->id, j->attempt);
        put_file(path, "x");
    }
}

int polite_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    const pgq_job *j = pgq_ctx_job(ctx);
    mark_started(j);
    for (long left = payload_int(j->payload, "sleep_ms", 0); left > 0; left -= 10) {
        if (pgq_ctx_cancelled(ctx)) {
            char dir[2048], path[4096];
            payload_str(j->payload, "dir", dir, sizeof dir);
            if (*dir) {
                snprintf(path, sizeof path, "%s/cancel-%lld-%d", dir, (long long)j->id,
                         j->attempt);
                put_file(path, pgq_ctx_lease_lost(ctx) ? "lease_lost=1" : "lease_lost=0");
            }
            snprintf(err, errlen, "cancelled");
            return -1;
        }
        sleep_ms(10);
    }
    return 0;
}

int stubborn_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    mark_started(pgq_ctx_job(ctx));
    sleep_ms(payload_int(pgq_ctx_job(ctx)->payload, "sleep_ms", 0));
    return 0;
}

int result_job(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    const pgq_job *j = pgq_ctx_job(ctx);
    long repeat = payload_int(j->payload, "repeat", 0);
    int refused = pgq_ctx_set_result(ctx, "bad \xff byte");
    size_t len = 64 + (size_t)(repeat > 0 ? repeat : 0) * 2;
    char *text = malloc(len);
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int n = snprintf(text, len, "job %lld: refused=%d", (long long)j->id, refused);
    for (long i = 0; i < repeat; i++, n += 2)
        memcpy(text + n, "\xc3\xa9", 3);   /* "é" and the NUL after it */
    int rc = pgq_ctx_set_result(ctx, text);
    free(text);
    if (rc != 0) {
        snprintf(err, errlen, "pgq_ctx_set_result refused a valid text");
        return -1;
    }
    if (payload_int(j->payload, "fail", 0)) {
        snprintf(err, errlen, "failing after setting a result");
        return -1;
    }
    return 0;
}
