/* The heartbeat thread, with its own connection. Every `heartbeat`
 * interval it renews the leases of all of this pool's in-flight jobs in one
 * statement (a lease reported lost sets the worker's lease_lost and cancel
 * flags: an exec child gets SIGTERM, an in-process handler sees
 * pgq_ctx_cancelled), refreshes this pool's pgq.workers row, reaps expired
 * leases of any pool (so a dead pool's jobs come back without an
 * operator), and once a minute prunes finished jobs past their retention.
 * A cancelled running job (the listener hears NOTIFY pgq_cancel) makes it
 * renew at once: the renewal finds that lease gone and stops the handler,
 * so a cancel takes effect in milliseconds, not a heartbeat.
 * It stops last at shutdown, so leases stay alive while jobs drain. Under
 * a systemd unit with WatchdogSec it also pings the watchdog (notify.c). */
#include "pool_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define REAP_BATCH 500
#define PRUNE_EVERY_MS 60000
#define PRUNE_BATCH 5000
#define PRUNE_ROUNDS 200   /* up to 1M finished jobs a minute */

/* Renew every lease the pool holds: the slots' (RUNNING, FINISHING) and
 * the batch's (buffered, awaiting acknowledgement), listed in one critical
 * section so that a job moving between them is listed once. A lost lease
 * of a running job moves its slot to LOST (its handler is cancelled); one
 * of the batch's is dropped from it. */
static void renew_leases(pgq_pool *p, pgq_conn *c)
{
    char err[512];
    struct lease *ls = NULL;
    int64_t *ids = NULL;
    const char **tokens = NULL;
    int *owner = NULL;
    bool *lost = NULL;
    size_t n = 0;

    /* Sized under the lock so that a grown ack list is renewed whole. */
    pthread_mutex_lock(&p->mu);
    size_t max = (size_t)p->nslots + batch_nleases(p->batch);
    ls = malloc(max * sizeof *ls);
    ids = malloc(max * sizeof *ids);
    tokens = malloc(max * sizeof *tokens);
    owner = malloc(max * sizeof *owner);
    lost = malloc(max * sizeof *lost);
    if (!ls || !ids || !tokens || !owner || !lost) {
        pthread_mutex_unlock(&p->mu);
        pool_log(PGQ_LOG_WARN, "heartbeat", "out of memory renewing leases");
        goto out;
    }
    for (int i = 0; i < p->nslots && n < max; i++) {
        const struct slot *s = &p->slots[i];
        if (s->state != SLOT_RUNNING && s->state != SLOT_FINISHING)
            continue;
        ls[n].id = s->job->id;
        snprintf(ls[n].token, sizeof ls[n].token, "%s", s->job->lease_token);
        owner[n++] = i;
    }
    size_t nslot = n;
    n += batch_leases(p->batch, ls + n, max - n);
    for (size_t k = nslot; k < n; k++)
        owner[k] = -1;
    pthread_mutex_unlock(&p->mu);
    if (n == 0)
        goto out;
    for (size_t k = 0; k < n; k++) {
        ids[k] = ls[k].id;
        tokens[k] = ls[k].token;
    }
    if (pgq_heartbeat(c, ids, tokens, n, p->cfg->lease_ttl_ms, lost, err, sizeof err) < 0) {
        pool_log(PGQ_LOG_WARN, NULL, "%s", err);   /* err names the operation */
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        if (!lost[k])
            continue;
        if (owner[k] < 0) {
            struct pending_ack acked;
            pthread_mutex_lock(&p->mu);
            bool held = batch_drop(p->batch, ids[k], &acked);
            pthread_mutex_unlock(&p->mu);
            if (held)
                pool_log(PGQ_LOG_WARN, "heartbeat", "job=%" PRId64 ": lease lost (expired "
                         "and reclaimed) while batched; dropped", ids[k]);
            /* A done job awaiting acknowledgement: its attempt ran, and
             * this is its outcome. (A buffered one never started.) */
            if (acked.job) {
                if (!acked.silent)
                    pool_emit_lost(p, c, acked.job, acked.who, acked.ran_us);
                pgq_job_free(acked.job);
            }
            continue;
        }
        struct slot *s = &p->slots[owner[k]];
        pthread_mutex_lock(&p->mu);
        /* Only if the slot still runs that same lease. A job whose end is
         * being recorded (FINISHING) may have been done a moment ago: "lost"
         * would be a false alarm, and the recording reports a real loss
         * itself. */
        bool same = s->state == SLOT_RUNNING && s->job->id == ids[k] &&
                    strcmp(s->job->lease_token, tokens[k]) == 0;
        if (same)
            slot_set(s, SLOT_LOST, s->job);
        pthread_mutex_unlock(&p->mu);
        if (same)
            pool_log(PGQ_LOG_WARN, s->who, "job=%" PRId64 ": lease lost (expired and "
                     "reclaimed); stopping its handler", ids[k]);
    }
out:
    free(ls);
    free(ids);
    free(tokens);
    free(owner);
    free(lost);
}

static int in_flight(pgq_pool *p)
{
    pthread_mutex_lock(&p->mu);
    int n = slot_holding(p);
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void tick(pgq_pool *p, pgq_conn *c, int64_t *last_prune)
{
    char err[512];
    renew_leases(p, c);
    if (pgq_pool_beat_row(c, p->name, in_flight(p), err, sizeof err) < 0 && pgq_connected(c)) {
        /* deleted by an operator or a cleanup: come back */
        if (pgq_pool_register_row(c, p->name, p->host, getpid(), p->nslots,
                                  (const char *const *)p->cfg->queues, p->cfg->nqueues, err,
                                  sizeof err) < 0)
            pool_log(PGQ_LOG_WARN, NULL, "%s", err);
    }
    for (int round = 0; round < 20; round++) {
        int reaped = 0;
        if (pgq_reap(c, REAP_BATCH, &reaped, err, sizeof err) < 0) {
            pool_log(PGQ_LOG_WARN, NULL, "%s", err);
            break;
        }
        if (reaped)
            pool_log(PGQ_LOG_WARN, "reaper", "%d expired lease%s: attempts failed as "
                     "\"lease expired\"", reaped, reaped == 1 ? "" : "s");
        if (reaped < REAP_BATCH)
            break;
    }
    if (pool_now_ms() - *last_prune >= PRUNE_EVERY_MS) {
        int64_t gone = 0, total = 0;
        *last_prune = pool_now_ms();
        /* In rounds of PRUNE_BATCH (short transactions) until caught up, up
         * to PRUNE_ROUNDS a minute: one round a minute bounded pruning at
         * ~83 jobs/s, and done rows grew without limit above that (soak). */
        /* ... and never longer than half a heartbeat: this thread renews
         * the leases too. */
        int64_t until = pool_now_ms() + p->cfg->heartbeat_ms / 2;
        char upto[64] = "";
        for (int round = 0; round < PRUNE_ROUNDS && (round == 0 || pool_now_ms() < until);
             round++) {
            if (pgq_prune_round(c, p->cfg->keep_done_ms, p->cfg->keep_dead_ms, PRUNE_BATCH,
                                upto, sizeof upto, &gone, err, sizeof err) < 0) {
                pool_log(PGQ_LOG_WARN, NULL, "%s", err);
                break;
            }
            total += gone;
            if (gone < PRUNE_BATCH)
                break;
        }
        if (total)
            pool_log(PGQ_LOG_DEBUG, "prune", "deleted %" PRId64 " finished jobs", total);
    }
}

void *heartbeat_main(void *arg)
{
    pgq_pool *p = arg;
    pgq_conn *c = p->hb_conn;
    int64_t last_prune = 0;
    bool down = false;
    struct timespec ts;
    /* Under a unit with WatchdogSec, ping systemd at least twice per
     * period, every pass of this loop (also while the database is down: a
     * restart would not bring it back); a loop stuck longer gets the pool
     * restarted. A tick still comes every heartbeat, not every ping. */
    int64_t wd_ms = pool_notify_watchdog_ms(p);
    int64_t wait_ms = p->cfg->heartbeat_ms;
    if (wd_ms > 0 && wd_ms / 2 < wait_ms)
        wait_ms = wd_ms / 2 > 0 ? wd_ms / 2 : 1;
    int64_t next_tick = pool_now_ms() + p->cfg->heartbeat_ms;

    pthread_mutex_lock(&p->mu);
    while (!p->hb_stop) {
        pool_deadline(&ts, wait_ms);
        while (!p->hb_stop && !p->hb_now &&
               pthread_cond_timedwait(&p->state_cv, &p->mu, &ts) != ETIMEDOUT)
            ;
        if (p->hb_stop)
            break;
        bool due = p->hb_now || pool_now_ms() >= next_tick;
        p->hb_now = false;
        pthread_mutex_unlock(&p->mu);
        if (wd_ms > 0)
            pool_notify_watchdog(p);
        if (!due) {
            pthread_mutex_lock(&p->mu);
            continue;
        }
        next_tick = pool_now_ms() + p->cfg->heartbeat_ms;
        if (!pgq_connected(c)) {
            char err[512];
            if (pgq_reconnect(c, err, sizeof err) < 0) {
                /* once per outage, not once per interval */
                if (!down)
                    pool_log(PGQ_LOG_WARN, "heartbeat", "database unreachable, retrying "
                             "every heartbeat: %s", err);
                down = true;
                pthread_mutex_lock(&p->mu);
                continue;
            }
            pool_log(PGQ_LOG_INFO, "heartbeat", "reconnected");
            atomic_fetch_add(&p->reconnects, 1);
            down = false;
        }
        tick(p, c, &last_prune);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}
