/* Claims and acks of several workers: for pools with no `batch` key in
 * pool.ini (adaptive, the default) or `batch = N` (N > 1). With `batch = 1`
 * each worker claims its own job with its completion (worker.c) and none
 * of this runs.
 *
 * Each worker thread still runs one job at a time, but the database is
 * asked for work and told of successes several jobs at a time:
 *
 * - A worker that finds the pool's buffer empty becomes a claimer: in one
 *   statement (claim_run) it records every pending ack and claims jobs into
 *   the buffer, then wakes idle workers for them. Up to CLAIMERS claims run
 *   at once, so that a claim's commit (an fsync) is not the only thing the
 *   pool waits for: with one, the buffer of short jobs emptied long before
 *   the next claim came back (issue 5: a third of the CPU idle). Other
 *   workers wait for a claim rather than start their own.
 * - A worker whose job succeeded queues an ack. Acks go to the database
 *   with the next claim, or at once when enough are pending or the oldest
 *   has waited ACK_DELAY_MS (so a stream of long jobs does not hold them
 *   back). An adaptive pool with no buffer ahead (long jobs) has no next
 *   claim coming soon: a worker that finishes and does not claim itself
 *   (it takes a buffered job, or waits for a claim that brings one) records
 *   the pending acks at once. Failures and releases are recorded at once
 *   by the worker.
 *
 * How much a claim asks for. `batch = N`: N. Adaptive: one job for every
 * worker that holds none (the claimer among them: an idle pool's claim is
 * the one job that just arrived, so a new job starts as soon as without
 * batching) and that no claim in flight is already bringing one for (with
 * no buffer to fill, such a worker waits for that claim instead of making
 * another), plus a buffer ahead of the jobs the pool's workers finish
 * while two claims are out -- 2 x workers x claim time / job time, both
 * measured (moving averages over the last ~8) -- floored and capped at
 * AHEAD_MAX. Long jobs (a job longer than 2 x workers x claim time) get no
 * buffer at all: a job waiting behind one is a job another pool could have
 * run. Before any job ran there is no estimate and no buffer. That is
 * Little's law for the round trip, twice: a claim starts only when a
 * worker finds the buffer empty, so a buffer of one round trip's jobs was
 * gone by the time the claim that refills it came back; with two, each
 * claim brings twice as many and the database's cost per job of the
 * claims and their acks halves (exec jobs of /bin/true: 97..104 against
 * 145..176 us of server CPU per job, 2,195..2,372 jobs/s against
 * 1,902..2,227, four alternating pairs). From a dry queue the claims grow
 * from one job (see claim_size), so that an idle pool claims as a pool
 * with batch = 1 does. Acks of an adaptive pool are flushed once a full
 * claim's worth is pending.
 *
 * Where a held lease is: a slot's job (RUNNING .. FINISHING, slot.c), the
 * buffer (claimed, not started), or the ack list (done, not recorded) --
 * always exactly one of them: a job moves from the buffer to a slot, and
 * from a slot to the ack list, under the pool mutex in one step (batch_take,
 * batch_ack). Buffered and acked-not-recorded jobs are still `running` in
 * the database: the heartbeat asks for their leases (batch_leases) and
 * renews them with the running ones, and a lease it finds lost is dropped
 * (batch_drop). Every ack is fenced by its lease token, like a single
 * complete. At shutdown the pool records the pending acks and releases
 * the buffered jobs (batch_drain). If the process dies, buffered and
 * unrecorded jobs come back when their leases expire, as for a crash
 * without batching: execution stays at-least-once, run_once stays
 * at-most-once. */
#include "pool_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define ACK_DELAY_MS 20
#define CLAIMERS 2
/* Adaptive: the most jobs one claim takes ahead. No-op jobs on the 2-CPU
 * development machine (8 workers): 64 gave 1.8..2.4x pgbench's single
 * INSERT, 128 2.9..3.0x, 256 2.7..3.3x (same run): the gain ends near 128,
 * while what a crash leaves waiting for its lease to expire grows on. */
#define AHEAD_MAX 128
#define EWMA_SHIFT 3       /* moving averages weigh a new sample 1/8 */

struct batch {
    int fixed;                     /* batch = N (N > 1); 0: adaptive */
    size_t max_claim;              /* the most one claim asks for */
    size_t flush_at;               /* pending acks that are flushed at once */
    struct claim_spec claim;       /* lease owner "<pool name>/batch" */
    pthread_cond_t cv;             /* a claim ended */

    /* All (mu): claimed jobs not yet started (a ring with room for every
     * claim in flight), done jobs not yet recorded, claims in flight. */
    pgq_job **buf;
    size_t cap, head, count;
    struct pending_ack *acks;
    size_t nacks, acks_cap;
    int64_t oldest_ack_ms;
    int claimers;
    size_t coming;                 /* jobs the claims in flight take for idle workers */
    int full_run;                  /* claims in a row that found all they asked for */
    /* Adaptive estimates in microseconds, -1 until measured (mu). */
    int64_t job_us, claim_us;
};

static void ewma(int64_t *avg, int64_t sample)
{
    *avg = *avg < 0 ? sample : *avg + ((sample - *avg) >> EWMA_SHIFT);
}

int batch_new(pgq_pool *p)
{
    struct batch *b = calloc(1, sizeof *b);
    if (!b)
        return -1;
    b->fixed = p->cfg->batch > 1 ? p->cfg->batch : 0;
    /* Adaptive: a job for every worker plus the buffer ahead. */
    b->max_claim = b->fixed ? (size_t)b->fixed : (size_t)p->nslots + AHEAD_MAX;
    b->flush_at = b->max_claim;
    b->cap = b->max_claim * CLAIMERS;
    b->acks_cap = b->cap * 2 + (size_t)p->nslots;
    b->job_us = b->claim_us = -1;
    b->buf = calloc(b->cap, sizeof *b->buf);
    b->acks = calloc(b->acks_cap, sizeof *b->acks);
    char owner[300];
    snprintf(owner, sizeof owner, "%s/batch", p->name);
    claim_spec_init(&b->claim, p, owner);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->batch = b;
    return b->buf && b->acks ? 0 : -1;
}

/* Free the results of n acks (recorded, or given up on). */
static void acks_free_results(struct pending_ack *a, size_t n)
{
    for (size_t i = 0; a && i < n; i++)
        result_clear(&a[i].result);
}

void batch_free(struct batch *b)
{
    if (!b)
        return;
    for (size_t k = 0; b->buf && k < b->count; k++)
        pgq_job_free(b->buf[(b->head + k) % b->cap]);
    for (size_t k = 0; b->acks && k < b->nacks; k++)
        pgq_job_free(b->acks[k].job);
    acks_free_results(b->acks, b->nacks);
    free(b->buf);
    free(b->acks);
    pthread_cond_destroy(&b->cv);
    free(b);
}

/* Adaptive: the jobs to buffer ahead, what the workers finish while two
 * claims are out (0 until both times are measured); mu held. */
static size_t ahead_of(const pgq_pool *p, const struct batch *b)
{
    if (b->fixed || b->job_us < 0 || b->claim_us < 0)
        return 0;
    int64_t a = 2 * (int64_t)p->nslots * b->claim_us / (b->job_us > 0 ? b->job_us : 1);
    return a > AHEAD_MAX ? AHEAD_MAX : (size_t)a;
}

/* How many jobs the next claim asks for, and how many of them are for
 * workers waiting now (*for_workers); 0 when the claims in flight already
 * bring a job for every idle worker and there is no buffer to fill (long
 * jobs: then a second claim would only hold jobs no worker is free for).
 * mu held. See the top of the file. */
static size_t claim_size(const pgq_pool *p, const struct batch *b, size_t *for_workers)
{
    if (b->fixed) {
        *for_workers = 0;
        return (size_t)b->fixed;
    }
    /* Workers holding no job (this one among them), less those that the
     * claims in flight are bringing jobs for. */
    int64_t need = (int64_t)p->nstate[SLOT_IDLE] - (int64_t)b->coming;
    size_t ahead = ahead_of(p, b);
    if (need <= 0 && ahead == 0)
        return *for_workers = 0;
    /* From a dry queue, claims grow: one, one, two, four, ... (each claim
     * that finds all it asked for doubles the next; one that finds fewer
     * starts over), like TCP's slow start. An idle pool's claims are thus
     * claims of one, the statement a worker's claim runs with batch = 1
     * (one row, its plan cached): a job added to an idle pool starts as
     * soon as there. A backlog reaches full claims within a few round
     * trips. */
    size_t cap = b->full_run < 2 ? 1 : (size_t)1 << (b->full_run - 1);
    if (cap == 1)
        return *for_workers = need > 0 ? 1 : 0;
    *for_workers = need > 0 ? (size_t)need : 1;
    size_t want = *for_workers + ahead;
    if (want > cap)
        want = cap;
    if (want > b->max_claim)
        want = b->max_claim;
    if (*for_workers > want)
        *for_workers = want;
    return want;
}

void batch_note_run(struct batch *b, int64_t us)
{
    ewma(&b->job_us, us);
}

/* Move the pending acks into *out (malloc'd); mu held. */
static size_t take_acks(struct batch *b, struct pending_ack **out)
{
    size_t n = b->nacks;
    *out = NULL;
    if (n == 0)
        return 0;
    *out = malloc(n * sizeof **out);
    if (!*out)
        return 0;   /* keep them pending; the next flush tries again */
    memcpy(*out, b->acks, n * sizeof **out);
    b->nacks = 0;
    return n;
}

/* Room for `extra` more pending acks; mu held. False when out of memory.
 * The array grows when flushes fail (database away): better than losing. */
static bool acks_reserve(struct batch *b, size_t extra)
{
    if (b->nacks + extra <= b->acks_cap)
        return true;
    size_t cap = (b->nacks + extra) * 2;
    struct pending_ack *grown = realloc(b->acks, cap * sizeof *grown);
    if (!grown)
        return false;
    b->acks = grown;
    b->acks_cap = cap;
    return true;
}

/* Put acks that could not be recorded back in front (their results
 * with them); mu held. */
static void restore_acks(struct batch *b, struct pending_ack *a, size_t n)
{
    if (n == 0)
        return;   /* a may be NULL then: memcpy from NULL is undefined even for 0 bytes */
    if (!acks_reserve(b, n)) {
        pool_log(PGQ_LOG_ERROR, NULL, "out of memory keeping %zu done jobs to record; "
                 "their leases will expire and they will run again", n);
        for (size_t i = 0; i < n; i++)
            pgq_job_free(a[i].job);
        acks_free_results(a, n);
        return;
    }
    memmove(b->acks + n, b->acks, b->nacks * sizeof *b->acks);
    memcpy(b->acks, a, n * sizeof *a);
    b->nacks += n;
    b->oldest_ack_ms = pool_now_ms();
}

/* Record n acks (with their results) and claim up to want jobs in one
 * statement on c. Logs what was recorded and what was lost, and once the
 * statement returned (it commits by itself) reports each outcome as an
 * event and frees the acks' jobs and results. Returns 0, or -1 (err
 * filled) when nothing was done: the acks, their jobs and results are then
 * still the caller's. No pool lock held. */
static int record(pgq_pool *p, pgq_conn *c, const char *who, struct pending_ack *a, size_t n,
                  size_t want, pgq_job **got, size_t *ngot, char *err, size_t errlen)
{
    struct batch *b = p->batch;
    pgq_ack *acks = n ? malloc(n * sizeof *acks) : NULL;
    bool *lost = n ? malloc(n * sizeof *lost) : NULL;
    bool *snoozed = n ? malloc(n * sizeof *snoozed) : NULL;
    if (n && (!acks || !lost || !snoozed)) {
        free(acks);
        free(lost);
        free(snoozed);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        acks[i] = (pgq_ack){ a[i].lease.id, a[i].lease.token, &a[i].info, a[i].result.text,
                             a[i].result.note };
    int rc = claim_run(&b->claim, c, acks, n, lost, snoozed, want, got, ngot, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* snoozed: the database applied a snooze asked during the attempt
         * (pgq_ctx_snooze, or an exec handler's `pgq snooze`, which only
         * the database knows of) */
        if (lost[i])
            pool_log(PGQ_LOG_WARN, who, "job=%" PRId64 ": lease lost: the job was reclaimed; "
                     "this attempt's outcome is discarded", a[i].lease.id);
        else if (snoozed[i])
            pool_log(PGQ_LOG_INFO, who, "job=%" PRId64 " snoozed (attempt %d not counted)",
                     a[i].lease.id, a[i].attempt);
        else if (pool_log_enabled(PGQ_LOG_INFO))
            pool_log(PGQ_LOG_INFO, who, "job=%" PRId64 " done (attempt %d)", a[i].lease.id,
                     a[i].attempt);
        if (a[i].silent) {
            /* reported when the shutdown released it */
        } else if (lost[i]) {
            pool_emit_lost(p, c, a[i].job, a[i].who, a[i].ran_us);
        } else if (pool_has_events(p)) {
            pgq_event ev;
            pool_event_init(&ev, snoozed[i] ? PGQ_EVENT_SNOOZED : PGQ_EVENT_DONE, a[i].job,
                            a[i].who, a[i].ran_us);
            pool_emit(p, &ev);
        }
        pgq_job_free(a[i].job);
        a[i].job = NULL;
    }
    if (rc == 0)
        acks_free_results(a, n);
    free(acks);
    free(lost);
    free(snoozed);
    return rc;
}

/* Record the pending acks on s's connection now (no claim); mu held, and
 * dropped meanwhile. Acks that could not be recorded stay pending (false). */
static bool flush_locked(struct slot *s)
{
    struct batch *b = s->pool->batch;
    char err[512];
    struct pending_ack *mine;
    size_t n = take_acks(b, &mine);
    if (n == 0)
        return false;
    pthread_mutex_unlock(&s->pool->mu);
    int rc = record(s->pool, s->conn, s->who, mine, n, 0, NULL, NULL, err, sizeof err);
    if (rc < 0 && pgq_connected(s->conn))
        pool_log(PGQ_LOG_ERROR, s->who, "%s", err);
    pthread_mutex_lock(&s->pool->mu);
    if (rc < 0)
        restore_acks(b, mine, n);
    free(mine);
    return rc == 0;
}

/* Adaptive with no buffer ahead (long jobs), and s is not claiming now:
 * pending acks would wait for the next claim, which may be a whole job
 * away, so s records them itself. mu held (dropped meanwhile); true when
 * it did (false too when that failed: the caller then waits, not retries). */
static bool flush_stranded(struct slot *s)
{
    const struct batch *b = s->pool->batch;
    if (b->fixed || b->nacks == 0 || ahead_of(s->pool, b) > 0 || !pgq_connected(s->conn))
        return false;
    return flush_locked(s);
}

pgq_job *batch_take(struct slot *s)
{
    pgq_pool *p = s->pool;
    struct batch *b = p->batch;
    char err[512];
    bool full = false;   /* our last claim found all it asked for: there may be more */
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
        if (b->count > 0) {
            pgq_job *j = b->buf[b->head];
            b->head = (b->head + 1) % b->cap;
            b->count--;
            slot_set(s, SLOT_RUNNING, j);   /* buffer -> slot, in one step */
            bool more = b->count > 0 || full;
            (void)flush_stranded(s);
            pthread_mutex_unlock(&p->mu);
            if (more)
                pool_wake_one(p);   /* fan the batch out to idle workers, or let one look */
            return j;
        }
        if (b->claimers >= CLAIMERS) {
            if (!flush_stranded(s))
                pthread_cond_wait(&b->cv, &p->mu);
            continue;
        }
        /* The buffer is empty and at most CLAIMERS claims of at most
         * max_claim are in flight: whatever they bring fits in cap. */
        size_t for_workers, want = claim_size(p, b, &for_workers);
        if (want == 0) {
            if (!flush_stranded(s))
                pthread_cond_wait(&b->cv, &p->mu);   /* a claim in flight brings ours */
            continue;
        }
        pgq_job **got = malloc(want * sizeof *got);
        if (!got) {
            pthread_mutex_unlock(&p->mu);
            pool_log(PGQ_LOG_ERROR, s->who, "out of memory claiming a batch");
            pool_nap(p, 1000);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        b->claimers++;
        b->coming += for_workers;
        struct pending_ack *a;
        size_t n = take_acks(b, &a);
        pthread_mutex_unlock(&p->mu);

        size_t ngot = 0;
        int64_t t0 = pool_now_us();
        int rc = record(p, s->conn, s->who, a, n, want, got, &ngot, err, sizeof err);
        int64_t took = pool_now_us() - t0;
        pthread_mutex_lock(&p->mu);
        b->claimers--;
        b->coming -= for_workers;
        pthread_cond_broadcast(&b->cv);
        if (rc < 0) {
            restore_acks(b, a, n);
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
        ewma(&b->claim_us, took);
        full = ngot == want;
        if (!b->fixed)   /* capped: 2^20 is far past any claim */
            b->full_run = full ? (b->full_run < 21 ? b->full_run + 1 : 21) : 0;
        for (size_t k = 0; k < ngot; k++)
            b->buf[(b->head + b->count + k) % b->cap] = got[k];
        b->count += ngot;
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

void batch_ack(struct slot *s, pgq_job *j, const pgq_attempt_info *info, int64_t ran_us,
               struct job_result *result)
{
    pgq_pool *p = s->pool;
    struct batch *b = p->batch;
    struct job_result none = { 0 };
    pthread_mutex_lock(&p->mu);
    if (!acks_reserve(b, 1)) {
        bool report = !s->reported;
        s->reported = true;
        slot_set(s, SLOT_IDLE, NULL);
        pthread_mutex_unlock(&p->mu);
        if (result)
            result_clear(result);
        pool_log(PGQ_LOG_ERROR, s->who, "job=%" PRId64 ": out of memory queueing its "
                 "success; its lease will expire and it will run again", j->id);
        if (report && pool_has_events(p)) {
            pgq_event ev;
            pool_event_init(&ev, PGQ_EVENT_LEASE_LOST, j, s->who, ran_us);
            ev.error = "out of memory queueing its success; the lease will expire";
            pool_emit(p, &ev);
        }
        pgq_job_free(j);
        return;
    }
    if (b->nacks == 0)
        b->oldest_ack_ms = pool_now_ms();
    struct pending_ack *a = &b->acks[b->nacks++];
    a->lease.id = j->id;
    snprintf(a->lease.token, sizeof a->lease.token, "%s", j->lease_token);
    a->attempt = j->attempt;
    a->info = info ? *info : (pgq_attempt_info)PGQ_ATTEMPT_INFO_INIT;
    a->job = j;
    a->who = s->who;
    a->ran_us = ran_us;
    /* The ack list reports it now (record, batch_drop, batch_drain); a
     * shutdown releasing this slot later finds no job in it. Unless it
     * came too late: the slot was abandoned and its job released and
     * reported (the ack will find the lease gone). */
    a->silent = s->reported;
    s->reported = true;
    a->result = result ? *result : none;
    if (result)
        *result = none;
    slot_set(s, SLOT_IDLE, NULL);   /* slot -> ack list, in one step */
    bool flush = b->nacks >= b->flush_at || pool_now_ms() - b->oldest_ack_ms >= ACK_DELAY_MS;
    if (flush && pgq_connected(s->conn))
        (void)flush_locked(s);
    pthread_mutex_unlock(&p->mu);
}

size_t batch_nleases(const struct batch *b)
{
    return b ? b->count + b->nacks : 0;
}

size_t batch_leases(const struct batch *b, struct lease *out, size_t max)
{
    size_t n = 0;
    for (size_t k = 0; b && k < b->count && n < max; k++, n++) {
        const pgq_job *j = b->buf[(b->head + k) % b->cap];
        out[n].id = j->id;
        snprintf(out[n].token, sizeof out[n].token, "%s", j->lease_token);
    }
    for (size_t k = 0; b && k < b->nacks && n < max; k++, n++)
        out[n] = b->acks[k].lease;
    return n;
}

bool batch_drop(struct batch *b, int64_t id, struct pending_ack *acked)
{
    bool found = false;
    acked->job = NULL;
    size_t keep = 0;
    for (size_t k = 0; k < b->count; k++) {
        pgq_job *j = b->buf[(b->head + k) % b->cap];
        if (j->id == id) {
            pgq_job_free(j);
            found = true;
            continue;
        }
        b->buf[(b->head + keep++) % b->cap] = j;
    }
    b->count = keep;
    keep = 0;
    for (size_t k = 0; k < b->nacks; k++) {
        if (b->acks[k].lease.id == id) {
            result_clear(&b->acks[k].result);
            found = true;
            *acked = b->acks[k];
            continue;
        }
        b->acks[keep++] = b->acks[k];
    }
    b->nacks = keep;
    return found;
}

void batch_wake(struct batch *b)
{
    pthread_cond_broadcast(&b->cv);
}

void batch_drain(pgq_pool *p, pgq_conn *c)
{
    struct batch *b = p->batch;
    char err[512];
    pthread_mutex_lock(&p->mu);
    struct pending_ack *a;
    size_t n = take_acks(b, &a);
    size_t nbuf = b->count;
    pgq_job **jobs = nbuf ? malloc(nbuf * sizeof *jobs) : NULL;
    for (size_t k = 0; jobs && k < nbuf; k++)
        jobs[k] = b->buf[(b->head + k) % b->cap];
    if (jobs)
        b->count = 0;
    pthread_mutex_unlock(&p->mu);

    if ((n || jobs) && !pgq_connected(c))
        (void)!pgq_reconnect(c, err, sizeof err);
    /* The acks end as the workers' would: keep_done = 0 deletes them. */
    pgq_conn_set_keep_done(c, p->cfg->keep_done_ms > 0);
    if (n && record(p, c, "shutdown", a, n, 0, NULL, NULL, err, sizeof err) < 0) {
        pool_log(PGQ_LOG_ERROR, "shutdown", "recording %zu done jobs: %s; their leases will "
                 "expire and they will run again", n, err);
        char why[600];
        snprintf(why, sizeof why, "outcome not recorded at shutdown: %s", err);
        for (size_t i = 0; i < n; i++) {
            if (pool_has_events(p) && !a[i].silent) {
                pgq_event ev;
                pool_event_init(&ev, PGQ_EVENT_LEASE_LOST, a[i].job, a[i].who, a[i].ran_us);
                ev.error = why;
                pool_emit(p, &ev);
            }
            pgq_job_free(a[i].job);
        }
        acks_free_results(a, n);
    }
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
