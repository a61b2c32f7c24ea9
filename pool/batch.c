/* Batching, for pools with `batch = N` (N > 1) in pool.ini.
 *
 * Each worker thread still runs one job at a time, but the database is
 * asked for work and told of successes N jobs at a time:
 *
 * - A worker that finds the pool's buffer empty becomes a claimer: in one
 *   statement (pgq_complete_claim) it records every pending ack and claims
 *   up to N jobs into the buffer, then wakes idle workers for them. Up to
 *   CLAIMERS claims run at once, so that a claim's commit (an fsync) is not
 *   the only thing the pool waits for: with one, the buffer of short jobs
 *   emptied long before the next claim came back (issue 5: a third of the
 *   CPU idle). Other workers wait for a claim rather than start their own.
 * - A worker whose job succeeded queues an ack. Acks go to the database
 *   with the next claim, or at once when N are pending or the oldest has
 *   waited ACK_DELAY_MS (so a stream of long jobs does not hold them back).
 *   Failures and releases are recorded at once by the worker, as without
 *   batching.
 *
 * Buffered and acked-not-recorded jobs are still `running` in the
 * database: the heartbeat renews their leases with the running ones, and a
 * lease it finds lost is dropped from the batch. Every ack is fenced by its
 * lease token, like a single complete. At shutdown the pool records the
 * pending acks and releases the buffered jobs (batch_drain). If the
 * process dies, buffered and unrecorded jobs come back when their leases
 * expire, as for a crash without batching: execution stays at-least-once,
 * run_once stays at-most-once. */
#include "pool_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define ACK_DELAY_MS 20
#define CLAIMERS 2

int batch_init(pgq_pool *p)
{
    p->buf_cap = (size_t)p->cfg->batch * CLAIMERS;
    p->acks_cap = p->buf_cap * 2 + (size_t)p->nslots;
    p->buf = calloc(p->buf_cap, sizeof *p->buf);
    p->acks = calloc(p->acks_cap, sizeof *p->acks);
    snprintf(p->batch_owner, sizeof p->batch_owner, "%s/batch", p->name);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->batch_cv, &ca);
    pthread_condattr_destroy(&ca);
    return p->buf && p->acks ? 0 : -1;
}

void batch_free(pgq_pool *p)
{
    for (size_t k = 0; p->buf && k < p->buf_count; k++)
        pgq_job_free(p->buf[(p->buf_head + k) % p->buf_cap]);
    free(p->buf);
    free(p->acks);
    if (p->buf_cap)
        pthread_cond_destroy(&p->batch_cv);
}

/* Move the pending acks into *out (malloc'd); mu held. */
static size_t take_acks(pgq_pool *p, struct pending_ack **out)
{
    size_t n = p->nacks;
    *out = NULL;
    if (n == 0)
        return 0;
    *out = malloc(n * sizeof **out);
    if (!*out)
        return 0;   /* keep them pending; the next flush tries again */
    memcpy(*out, p->acks, n * sizeof **out);
    p->nacks = 0;
    return n;
}

/* Room for `extra` more pending acks; mu held. False when out of memory.
 * The array grows when flushes fail (database away): better than losing. */
static bool acks_reserve(pgq_pool *p, size_t extra)
{
    if (p->nacks + extra <= p->acks_cap)
        return true;
    size_t cap = (p->nacks + extra) * 2;
    struct pending_ack *grown = realloc(p->acks, cap * sizeof *grown);
    if (!grown)
        return false;
    p->acks = grown;
    p->acks_cap = cap;
    return true;
}

/* Put acks that could not be recorded back in front; mu held. */
static void restore_acks(pgq_pool *p, struct pending_ack *a, size_t n)
{
    if (!acks_reserve(p, n)) {
        pool_log(PGQ_LOG_ERROR, NULL, "out of memory keeping %zu done jobs to record; "
                 "their leases will expire and they will run again", n);
        return;
    }
    memmove(p->acks + n, p->acks, p->nacks * sizeof *p->acks);
    memcpy(p->acks, a, n * sizeof *a);
    p->nacks += n;
    p->oldest_ack_ms = pool_now_ms();
}

/* Record n acks and claim up to want jobs in one statement on c. Logs what
 * was recorded and what was lost. Returns 0, or -1 (err filled) when
 * nothing was done. */
static int record(pgq_pool *p, pgq_conn *c, const char *who, const struct pending_ack *a,
                  size_t n, size_t want, pgq_job **got, size_t *ngot, char *err, size_t errlen)
{
    pgq_ack *acks = n ? malloc(n * sizeof *acks) : NULL;
    bool *lost = n ? malloc(n * sizeof *lost) : NULL;
    if (n && (!acks || !lost)) {
        free(acks);
        free(lost);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        acks[i] = (pgq_ack){ a[i].id, a[i].token, &a[i].info };
    int rc = pgq_complete_claim_hinted(c, p->hints, acks, n, lost,
                                       (const char *const *)p->cfg->queues, p->cfg->nqueues,
                                       p->batch_owner, p->cfg->lease_ttl_ms, want, got, ngot,
                                       err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (lost[i])
            pool_log(PGQ_LOG_WARN, who, "job=%" PRId64 ": lease lost: the job was reclaimed; "
                     "this attempt's outcome is discarded", a[i].id);
        else if (pool_log_enabled(PGQ_LOG_INFO))
            pool_log(PGQ_LOG_INFO, who, "job=%" PRId64 " done (attempt %d)", a[i].id,
                     a[i].attempt);
    }
    free(acks);
    free(lost);
    return rc;
}

pgq_job *batch_take(struct slot *s)
{
    pgq_pool *p = s->pool;
    char err[512];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (atomic_load(&p->stopping))
            break;
        /* Connected before taking a job: its handler, run_once and its
         * end all use this worker's connection, even when another worker
         * claimed the job. */
        if (!pgq_connected(s->conn)) {
            pthread_mutex_unlock(&p->mu);
            if (pool_connect_retry(p, &s->conn, s->who) < 0)
                return NULL;
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->buf_count > 0) {
            pgq_job *j = p->buf[p->buf_head];
            p->buf_head = (p->buf_head + 1) % p->buf_cap;
            p->buf_count--;
            s->job = j;
            bool more = p->buf_count > 0;
            pthread_mutex_unlock(&p->mu);
            if (more)
                pool_wake_one(p);   /* fan the batch out to idle workers */
            return j;
        }
        if (p->claimers >= CLAIMERS) {
            pthread_cond_wait(&p->batch_cv, &p->mu);
            continue;
        }
        /* The buffer is empty and at most CLAIMERS claims of N are in
         * flight: whatever they bring fits in buf_cap. */
        size_t want = (size_t)p->cfg->batch;
        pgq_job **got = malloc(want * sizeof *got);
        if (!got) {
            pthread_mutex_unlock(&p->mu);
            pool_log(PGQ_LOG_ERROR, s->who, "out of memory claiming a batch");
            pool_nap(p, 1000);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        p->claimers++;
        struct pending_ack *a;
        size_t n = take_acks(p, &a);
        pthread_mutex_unlock(&p->mu);

        size_t ngot = 0;
        int rc = record(p, s->conn, s->who, a, n, want, got, &ngot, err, sizeof err);
        pthread_mutex_lock(&p->mu);
        p->claimers--;
        pthread_cond_broadcast(&p->batch_cv);
        if (rc < 0) {
            restore_acks(p, a, n);
            free(a);
            free(got);
            pthread_mutex_unlock(&p->mu);
            if (pgq_connected(s->conn)) {
                pool_log(PGQ_LOG_ERROR, s->who, "%s", err);
                pool_nap(p, 1000);
            }
            pthread_mutex_lock(&p->mu);
            continue;
        }
        free(a);
        for (size_t k = 0; k < ngot; k++)
            p->buf[(p->buf_head + p->buf_count + k) % p->buf_cap] = got[k];
        p->buf_count += ngot;
        free(got);
        if (ngot == 0) {
            pthread_mutex_unlock(&p->mu);
            pool_wait_for_work(p);
            pthread_mutex_lock(&p->mu);
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void batch_ack(struct slot *s, const pgq_job *j, const pgq_attempt_info *info)
{
    pgq_pool *p = s->pool;
    char err[512];
    pthread_mutex_lock(&p->mu);
    if (!acks_reserve(p, 1)) {
        pthread_mutex_unlock(&p->mu);
        pool_log(PGQ_LOG_ERROR, s->who, "job=%" PRId64 ": out of memory queueing its "
                 "success; its lease will expire and it will run again", j->id);
        return;
    }
    if (p->nacks == 0)
        p->oldest_ack_ms = pool_now_ms();
    struct pending_ack *a = &p->acks[p->nacks++];
    a->id = j->id;
    a->attempt = j->attempt;
    snprintf(a->token, sizeof a->token, "%s", j->lease_token);
    a->info = info ? *info : (pgq_attempt_info)PGQ_ATTEMPT_INFO_INIT;
    bool flush = p->nacks >= (size_t)p->cfg->batch ||
                 pool_now_ms() - p->oldest_ack_ms >= ACK_DELAY_MS;
    if (!flush || !pgq_connected(s->conn)) {
        pthread_mutex_unlock(&p->mu);
        return;
    }
    struct pending_ack *mine;
    size_t n = take_acks(p, &mine);
    pthread_mutex_unlock(&p->mu);
    if (n == 0)
        return;
    if (record(p, s->conn, s->who, mine, n, 0, NULL, NULL, err, sizeof err) < 0) {
        if (pgq_connected(s->conn))
            pool_log(PGQ_LOG_ERROR, s->who, "%s", err);
        pthread_mutex_lock(&p->mu);
        restore_acks(p, mine, n);
        pthread_mutex_unlock(&p->mu);
    }
    free(mine);
}

size_t batch_leases(pgq_pool *p, int64_t *ids, char (*tokens)[PGQ_TOKEN_LEN + 1], size_t max)
{
    size_t n = 0;
    for (size_t k = 0; k < p->buf_count && n < max; k++, n++) {
        const pgq_job *j = p->buf[(p->buf_head + k) % p->buf_cap];
        ids[n] = j->id;
        snprintf(tokens[n], sizeof tokens[n], "%s", j->lease_token);
    }
    for (size_t k = 0; k < p->nacks && n < max; k++, n++) {
        ids[n] = p->acks[k].id;
        snprintf(tokens[n], sizeof tokens[n], "%s", p->acks[k].token);
    }
    return n;
}

bool batch_lost(pgq_pool *p, int64_t id)
{
    bool found = false;
    size_t keep = 0;
    for (size_t k = 0; k < p->buf_count; k++) {
        pgq_job *j = p->buf[(p->buf_head + k) % p->buf_cap];
        if (j->id == id) {
            pgq_job_free(j);
            found = true;
            continue;
        }
        p->buf[(p->buf_head + keep++) % p->buf_cap] = j;
    }
    p->buf_count = keep;
    keep = 0;
    for (size_t k = 0; k < p->nacks; k++) {
        if (p->acks[k].id == id) {
            found = true;
            continue;
        }
        p->acks[keep++] = p->acks[k];
    }
    p->nacks = keep;
    return found;
}

void batch_drain(pgq_pool *p, pgq_conn *c)
{
    char err[512];
    pthread_mutex_lock(&p->mu);
    struct pending_ack *a;
    size_t n = take_acks(p, &a);
    size_t nbuf = p->buf_count;
    pgq_job **jobs = nbuf ? malloc(nbuf * sizeof *jobs) : NULL;
    for (size_t k = 0; jobs && k < nbuf; k++)
        jobs[k] = p->buf[(p->buf_head + k) % p->buf_cap];
    if (jobs)
        p->buf_count = 0;
    pthread_mutex_unlock(&p->mu);

    if ((n || jobs) && !pgq_connected(c))
        (void)!pgq_reconnect(c, err, sizeof err);
    if (n && record(p, c, "shutdown", a, n, 0, NULL, NULL, err, sizeof err) < 0)
        pool_log(PGQ_LOG_ERROR, "shutdown", "recording %zu done jobs: %s; their leases will "
                 "expire and they will run again", n, err);
    free(a);
    size_t released = 0;
    for (size_t k = 0; jobs && k < nbuf; k++) {
        bool lost;
        if (pgq_release(c, jobs[k]->id, jobs[k]->lease_token, &lost, err, sizeof err) < 0)
            pool_log(PGQ_LOG_ERROR, "shutdown", "job=%" PRId64 ": cannot release: %s; its "
                     "lease will expire", jobs[k]->id, err);
        else
            released += !lost;
        pgq_job_free(jobs[k]);
    }
    if (released)
        pool_log(PGQ_LOG_INFO, "shutdown", "released %zu claimed jobs not yet started", released);
    free(jobs);
}
