/* A worker thread: its own connection, one job at a time.
 *
 * Loop: claim; if nothing is ready, sleep until woken (see pool.c); else
 * run the job's handler and end the attempt with complete or fail, both
 * fenced by the lease token. When the connection breaks, the worker
 * reconnects with backoff and keeps the job in hand: the heartbeat thread
 * (its own connection) keeps the lease alive meanwhile, so the outcome is
 * still recorded once the database is back (promise 10). If the lease was
 * lost, nothing is recorded and the log says so.
 *
 * Two ways to get jobs: with `batch = 1` the worker claims its own, its
 * completion claiming the next in the same statement (work_one_by_one);
 * otherwise it takes them from the batch (batch.c), which claims for
 * several workers and records successes together. Either way every move
 * of the slot goes through slot_set (slot.c): IDLE -> RUNNING when a job
 * is taken, FINISHING while its end is recorded, back to IDLE (or RUNNING
 * with the job its completion claimed). */
#include "pool_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "log.h"

struct pgq_ctx {
    struct slot *slot;
    const pgq_job *job;
    int64_t deadline_ms;   /* the job type's timeout, monotonic */
    size_t result_max;     /* the job type's result_max */
    struct job_result result;   /* pgq_ctx_set_result's, stored if the job is done */
    int64_t snooze_ms;     /* asked by pgq_ctx_snooze; -1: not */
};

const pgq_job *pgq_ctx_job(const pgq_ctx *ctx)
{
    return ctx->job;
}

pgq_conn *pgq_ctx_conn(pgq_ctx *ctx)
{
    return ctx->slot->conn;
}

bool pgq_ctx_lease_lost(const pgq_ctx *ctx)
{
    return atomic_load(&ctx->slot->lease_lost);
}

bool pgq_ctx_cancelled(const pgq_ctx *ctx)
{
    return atomic_load(&ctx->slot->cancel) || atomic_load(&ctx->slot->lease_lost) ||
           pool_now_ms() > ctx->deadline_ms;
}

pgq_snooze_result pgq_ctx_snooze(pgq_ctx *ctx, int64_t ms, char *err, size_t errlen)
{
    pgq_snooze_result r = pgq_snooze(ctx->slot->conn, ctx->job->id, ctx->job->lease_token, ms,
                                     err, errlen);
    if (r == PGQ_SNOOZE_ASKED)
        ctx->snooze_ms = ms;
    return r;
}

int pgq_ctx_set_result(pgq_ctx *ctx, const char *text)
{
    struct job_result r = { 0 };
    if (!text) {
        result_clear(&ctx->result);
        return 0;
    }
    size_t n = strlen(text);
    if (result_make(text, n, n, ctx->result_max, "result", &r) < 0)
        return -1;
    if (!r.text && r.note) {   /* not UTF-8: refused, nothing changes */
        result_clear(&r);
        return -1;
    }
    result_clear(&ctx->result);
    ctx->result = r;
    return 0;
}

pgq_once_result pgq_ctx_run_once(pgq_ctx *ctx, const char *key, pgq_once_fn fn, void *arg,
                                 char *err, size_t errlen)
{
    if (pgq_ctx_lease_lost(ctx)) {
        snprintf(err, errlen, "run_once %s: lease lost", key);
        return PGQ_ONCE_LEASE_LOST;
    }
    return pgq_run_once(ctx->slot->conn, ctx->job->id, ctx->job->lease_token, key, fn, arg,
                        err, errlen);
}

/* The outcome of one attempt. */
struct outcome {
    bool ok;
    bool cancelled;           /* stopped by the pool (shutdown or lease lost) */
    pgq_attempt_info info;
    int64_t ran_us;           /* the handler's running time */
    char error[2048];
    struct job_result result; /* a success's result (owned; moves to the ack) */
};

static void run_exec(struct slot *s, const struct handler *h, const pgq_job *j,
                     struct outcome *o)
{
    /* Names and ids are short and bounded; the URL is not (a long
     * options= or sslrootcert= path), so it is the pool's own string. */
    char env[5][1200];
    const char *envp[7];
    snprintf(env[0], sizeof env[0], "PGQ_JOB_ID=%" PRId64, j->id);
    snprintf(env[1], sizeof env[1], "PGQ_JOB_TYPE=%s", j->type);
    snprintf(env[2], sizeof env[2], "PGQ_QUEUE=%s", j->queue);
    snprintf(env[3], sizeof env[3], "PGQ_ATTEMPT=%d", j->attempt);
    snprintf(env[4], sizeof env[4], "PGQ_LEASE_TOKEN=%s", j->lease_token);
    for (int i = 0; i < 5; i++)
        envp[i] = env[i];
    envp[5] = s->pool->url_env;
    envp[6] = NULL;
    exec_request req = {
        .argv = (const char *const *)h->type->argv,
        .env_extra = envp,
        .payload = j->payload,
        .payload_len = strlen(j->payload),
        .timeout_ms = h->type->timeout_ms,
        .grace_ms = 5000,
        .cancel = &s->cancel,
        .out_max = (size_t)h->type->result_max,
    };
    exec_result res;
    if (exec_run(&req, &res) < 0) {
        snprintf(o->error, sizeof o->error, "%s", res.error);
        free(res.out);
        return;
    }
    /* stdout is the result of a success only; nothing written, no result. */
    if (res.ok && res.out_total > 0 &&
        result_make(res.out ? res.out : "", res.out_len, res.out_total, req.out_max, "stdout",
                    &o->result) < 0)
        pool_log(PGQ_LOG_ERROR, s->who, "job=%" PRId64 " type=%s: out of memory keeping its "
                 "stdout; the job is done without a result", j->id, j->type);
    free(res.out);
    o->ok = res.ok;
    o->cancelled = res.cancelled;
    o->info.exit_code = res.exit_code;
    o->info.term_signal = res.term_signal;
    o->info.cpu_ms = res.cpu_ms;
    o->info.max_rss_kb = res.max_rss_kb;
    snprintf(o->error, sizeof o->error, "%s", res.error);
}

static void run_handler(struct slot *s, const pgq_job *j, struct outcome *o)
{
    const struct handler *h = pool_handler(s->pool, j->type);
    memset(o, 0, sizeof *o);
    o->info = (pgq_attempt_info)PGQ_ATTEMPT_INFO_INIT;
    if (!h) {
        snprintf(o->error, sizeof o->error, "no handler for job type \"%s\" in pool %s "
                 "(add a [job %s] section)", j->type, s->pool->name, j->type);
        return;
    }
    if (h->kind == PGQ_HANDLER_EXEC) {
        run_exec(s, h, j, o);
        return;
    }
    pgq_ctx ctx = { s, j, pool_now_ms() + h->type->timeout_ms, (size_t)h->type->result_max,
                    { NULL, NULL }, -1 };
    char err[2048] = "";
    o->ok = h->fn(&ctx, h->arg, err, sizeof err) == 0;
    o->cancelled = atomic_load(&s->cancel);
    if (!o->ok)
        snprintf(o->error, sizeof o->error, "%s", *err ? err : "handler failed");
    else if (ctx.snooze_ms >= 0 && pool_log_enabled(PGQ_LOG_DEBUG))
        /* applied (and logged, and reported) by the done end, which the
         * database tells about it, as it does for an exec handler's */
        pool_log(PGQ_LOG_DEBUG, s->who, "job=%" PRId64 " type=%s: asked to snooze for %" PRId64
                 " ms", j->id, j->type, ctx.snooze_ms);
    if (o->ok)
        o->result = ctx.result;   /* moves */
    else
        result_clear(&ctx.result);
}

enum finish { FINISH_COMPLETE, FINISH_FAIL, FINISH_RELEASE };

/* Take the right to report the outcome of the job s holds: false when the
 * shutdown already reported it (released an abandoned job); mu held. */
static bool take_report(struct slot *s)
{
    bool mine = !s->reported;
    s->reported = true;
    return mine;
}

/* Record the end of j, which s holds FINISHING, reconnecting as long as the
 * lease may still be ours. Gives up when the heartbeat says the lease is
 * lost, or after the shutdown deadline. A completion also claims the
 * worker's next job in the same statement and transaction when claim_next
 * and the pool is not stopping (batch = 1: one commit per job); with a
 * batch, a success is queued as an ack instead (its result moves with it).
 * Once recorded, the outcome is reported as an event when the job was
 * started (a job claimed with a completion and released unstarted at
 * shutdown has none). Frees j; o's result stays the caller's to clear.
 * Leaves s RUNNING with the job claimed (returned), or IDLE (NULL returned). */
static pgq_job *finish(struct slot *s, pgq_job *j, enum finish how, struct outcome *o,
                       bool claim_next, bool started)
{
    pgq_pool *p = s->pool;
    char err[512], who[128];
    bool lost = false, snoozed = false;
    pgq_fail_result fr = { 0 };
    pgq_job *next = NULL;
    pgq_event ev;
    bool emit = started && pool_has_events(p);
    char why[1024] = "";
    snprintf(who, sizeof who, "%s job=%" PRId64 " type=%s", s->who, j->id, j->type);
    if (how == FINISH_COMPLETE && p->batch) {
        /* recorded, logged, reported with the batch */
        batch_ack(s, j, &o->info, o->ran_us, &o->result);
        return NULL;
    }
    pool_event_init(&ev, PGQ_EVENT_LEASE_LOST, j, s->who, o->ran_us);
    for (;;) {
        int rc;
        if (how == FINISH_COMPLETE) {
            pgq_ack ack = { j->id, j->lease_token, &o->info, o->result.text, o->result.note };
            bool claim = claim_next && !atomic_load(&p->stopping);
            size_t got = 0;
            rc = claim_run(&s->claim, s->conn, &ack, 1, &lost, &snoozed, claim ? 1 : 0, &next,
                           &got, err, sizeof err);
            if (rc < 0 || got == 0)
                next = NULL;
        } else if (how == FINISH_FAIL) {
            rc = pgq_fail(s->conn, j->id, j->lease_token, o->error, &o->info, &fr, err,
                          sizeof err);
        } else {
            rc = pgq_release(s->conn, j->id, j->lease_token, &lost, err, sizeof err);
        }
        if (rc == 0)
            break;
        /* The outcome cannot be recorded: the lease will expire and the
         * job be reaped; for the event, this attempt's lease is lost. */
        if (pgq_connected(s->conn)) {
            pool_log(PGQ_LOG_ERROR, who, "%s; the lease will expire and the job be retried", err);
            snprintf(why, sizeof why, "outcome not recorded: %s", err);
            goto out;
        }
        if (atomic_load(&s->lease_lost)) {
            pool_log(PGQ_LOG_WARN, who, "lease lost while reconnecting; outcome not recorded");
            snprintf(why, sizeof why, "lease lost while reconnecting; outcome not recorded");
            goto out;
        }
        pthread_mutex_lock(&p->mu);
        bool past = p->stop_requested && pool_now_ms() > p->deadline_ms + 5000;
        pthread_mutex_unlock(&p->mu);
        if (past) {
            pool_log(PGQ_LOG_WARN, who, "database unreachable at shutdown; the lease will "
                     "expire and the job be retried");
            snprintf(why, sizeof why, "database unreachable at shutdown; outcome not recorded");
            goto out;
        }
        pool_nap(p, 200);
        /* Not pool_connect_retry: it gives up once stopping, and a drain
         * must still record outcomes. */
        if (pgq_reconnect(s->conn, err, sizeof err) == 0) {
            atomic_fetch_add(&p->reconnects, 1);
            pool_log(PGQ_LOG_INFO, who, "reconnected");
        }
    }
    if (lost || fr.lease_lost) {
        pool_log(PGQ_LOG_WARN, who, "lease lost: the job was reclaimed; this attempt's "
                 "outcome is discarded");
        if (emit)
            ev.kind = pool_lost_kind(s->conn, j->id, j->attempt, why, sizeof why);
    } else if (how == FINISH_COMPLETE) {
        /* the database says whether the done end applied a snooze: an
         * exec handler's `pgq snooze` is known only there */
        if (snoozed)
            pool_log(PGQ_LOG_INFO, who, "snoozed (attempt %d not counted)", j->attempt);
        else
            pool_log(PGQ_LOG_INFO, who, "done (attempt %d)", j->attempt);
        ev.kind = snoozed ? PGQ_EVENT_SNOOZED : PGQ_EVENT_DONE;
    } else if (how == FINISH_RELEASE) {
        pool_log(PGQ_LOG_INFO, who, "released at shutdown (attempt not counted)");
        ev.kind = PGQ_EVENT_RELEASED;
    } else if (fr.dead) {
        pool_log(PGQ_LOG_WARN, who, "dead after attempt %d: %s", j->attempt, o->error);
        ev.kind = PGQ_EVENT_DEAD;
        ev.error = o->error;
    } else {
        pool_log(PGQ_LOG_INFO, who, "failed (attempt %d of %d), retry in %.1fs: %s", j->attempt,
                 j->max_retries + 1, fr.retry_in_s, o->error);
        ev.kind = PGQ_EVENT_FAILED;
        ev.error = o->error;
        ev.retry_in_s = fr.retry_in_s;
    }
out:
    if (*why)
        ev.error = why;
    pthread_mutex_lock(&p->mu);
    emit = take_report(s) && emit;
    slot_set(s, next ? SLOT_RUNNING : SLOT_IDLE, next);
    pthread_mutex_unlock(&p->mu);
    if (emit)
        pool_emit(p, &ev);
    pgq_job_free(j);
    return next;
}

/* Run j, which s holds RUNNING, and record its end; frees j. Returns the
 * job claimed with the completion (s RUNNING with it), or NULL (s IDLE). */
static pgq_job *run_job(struct slot *s, pgq_job *j, bool claim_next)
{
    pgq_pool *p = s->pool;
    struct outcome o;
    if (pool_log_enabled(PGQ_LOG_DEBUG))
        pool_log(PGQ_LOG_DEBUG, s->who, "job=%" PRId64 " type=%s claimed (attempt %d)", j->id,
                 j->type, j->attempt);

    int64_t t0 = pool_now_us();
    atomic_store(&s->started_us, t0);
    if (pool_has_events(p)) {
        pgq_event ev;
        pool_event_init(&ev, PGQ_EVENT_STARTED, j, s->who, 0);
        pool_emit(p, &ev);
    }
    run_handler(s, j, &o);
    int64_t ran_us = pool_now_us() - t0;
    o.ran_us = ran_us;
    /* A cut or refused result is said once, when the job is done. */
    if (o.ok && o.result.note)
        pool_log(PGQ_LOG_WARN, s->who, "job=%" PRId64 " type=%s: result: %s", j->id, j->type,
                 o.result.note);

    enum finish how = o.ok ? FINISH_COMPLETE : FINISH_FAIL;
    /* Stopped by the shutdown deadline: give the job back, not a failure. */
    if (!o.ok && o.cancelled && atomic_load(&p->stopping) && !atomic_load(&s->lease_lost))
        how = FINISH_RELEASE;
    pthread_mutex_lock(&p->mu);
    if (p->batch)
        batch_note_run(p->batch, ran_us);
    /* The heartbeat found the lease lost and the handler gave up: there is
     * nothing to record. A success is still recorded: fenced, it will be
     * told the lease is gone, and say so. */
    bool stopped = s->state == SLOT_LOST && !o.ok;
    bool report = stopped && take_report(s);
    slot_set(s, stopped ? SLOT_IDLE : SLOT_FINISHING, stopped ? NULL : j);
    pthread_mutex_unlock(&p->mu);
    if (!stopped) {
        pgq_job *next = finish(s, j, how, &o, claim_next, true);
        result_clear(&o.result);
        return next;
    }
    pool_log(PGQ_LOG_WARN, s->who, "job=%" PRId64 " type=%s: lease lost, handler stopped",
             j->id, j->type);
    if (report)
        pool_emit_lost(p, s->conn, j, s->who, ran_us);
    result_clear(&o.result);
    pgq_job_free(j);
    return NULL;
}

/* One job per transaction: each completion claims the next job. */
static void work_one_by_one(struct slot *s)
{
    pgq_pool *p = s->pool;
    char err[512];
    pgq_job *j = NULL;   /* held by s (RUNNING), claimed with the last completion */

    while (!atomic_load(&p->stopping) || j) {
        if (!j) {
            if (!pgq_connected(s->conn) && pool_connect_retry(p, &s->conn, s->who) < 0)
                break;
            size_t got;
            pgq_job *c = NULL;
            if (claim_run(&s->claim, s->conn, NULL, 0, NULL, NULL, 1, &c, &got, err, sizeof err) < 0) {
                if (pgq_connected(s->conn)) {
                    pool_log(PGQ_LOG_ERROR, s->who, "%s", err);
                    pool_nap(p, 1000);
                }
                continue;
            }
            if (!c) {
                pool_wait_for_work(p);
                continue;
            }
            pthread_mutex_lock(&p->mu);
            slot_set(s, SLOT_RUNNING, c);
            pthread_mutex_unlock(&p->mu);
            j = c;
        }
        pool_wake_one(p);   /* there may be more: let an idle worker look */
        if (atomic_load(&p->stopping)) {
            struct outcome none = { .info = PGQ_ATTEMPT_INFO_INIT };
            pthread_mutex_lock(&p->mu);
            slot_set(s, SLOT_FINISHING, j);
            pthread_mutex_unlock(&p->mu);
            (void)finish(s, j, FINISH_RELEASE, &none, false, false);   /* frees j */
            break;
        }
        j = run_job(s, j, true);
    }
}

void *worker_main(void *arg)
{
    struct slot *s = arg;
    pgq_pool *p = s->pool;

    if (p->batch) {
        pgq_job *j;
        while ((j = batch_take(s)) != NULL)
            (void)run_job(s, j, false);   /* successes go to the batch's acks */
    } else {
        work_one_by_one(s);
    }
    pthread_mutex_lock(&p->mu);
    slot_set(s, SLOT_EXITED, NULL);
    pthread_cond_broadcast(&p->state_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}
