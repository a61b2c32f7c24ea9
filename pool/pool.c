/* The pool: owns the worker slots and the heartbeat and listener threads,
 * and the wake protocol between them (its functions are in wake.c).
 *
 * Idle workers sleep on one condition variable. A wake is a token: the
 * listener adds one per NOTIFY for our queues and one per poll tick, and a
 * worker that claimed a job adds one more (so a backlog fans out to all
 * workers) — never more tokens than idle workers, so there is no thundering
 * herd and an idle pool costs one claim query per poll interval.
 *
 * Shutdown (promise 9): stop() stops claiming and sets a deadline; wait()
 * lets in-flight jobs finish until then, cancels what is left (exec
 * children are killed), releases leases still held (back to ready, no
 * attempt spent), stops the heartbeat last (leases stay alive while
 * draining), and removes the pool's registry row. */
#include "pool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int pgq_pool_new(pgq_cfg *cfg, const char *db_url, pgq_pool **out, char *err, size_t errlen)
{
    const char *url = db_url ? db_url : cfg->db_url ? cfg->db_url : getenv("DATABASE_URL");
    if (!url || !*url) {
        snprintf(err, errlen, "no database: give --db URL, [database] url in %s, or set "
                 "DATABASE_URL", cfg->path ? cfg->path : "the config");
        return -1;
    }
    pgq_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->url = strdup(url)) ||
        asprintf(&p->url_env, "DATABASE_URL=%s", cfg->handler_url ? cfg->handler_url : url) < 0) {
        if (p)
            free(p->url);
        free(p);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->cfg = cfg;
    p->nslots = cfg->workers;
    p->stop_pipe[0] = p->stop_pipe[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake_cv, &ca);
    pthread_cond_init(&p->state_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (gethostname(p->host, sizeof p->host) < 0)
        snprintf(p->host, sizeof p->host, "unknown");
    p->host[sizeof p->host - 1] = '\0';
    snprintf(p->name, sizeof p->name, "%s:%d:%lld", p->host, (int)getpid(),
             (long long)time(NULL));
    *out = p;
    return 0;
}

const char *pgq_pool_db_url(const pgq_pool *p)
{
    return p->url;
}

int pgq_pool_on(pgq_pool *p, const char *name, pgq_handler_fn fn, void *arg, char *err,
                size_t errlen)
{
    struct callback *cbs = realloc(p->cbs, (p->ncbs + 1) * sizeof *cbs);
    if (!cbs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->cbs = cbs;
    cbs[p->ncbs] = (struct callback){ strdup(name), fn, arg };
    if (!cbs[p->ncbs].name) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->ncbs++;
    return 0;
}

int pgq_pool_check(pgq_pool *p, char *err, size_t errlen)
{
    struct handlers *h;
    if (handlers_build(p, p->cfg, &h, err, errlen) < 0)
        return -1;
    h->cfg = NULL;   /* not ours to free */
    handlers_free(h);
    return 0;
}

int pgq_pool_start(pgq_pool *p, char *err, size_t errlen)
{
    char e[512];
    p->started = true;
    if (handlers_build(p, p->cfg, &p->handlers, err, errlen) < 0)
        return -1;
    p->handlers->cfg = NULL;   /* p->cfg is freed by pgq_pool_free */
    if (metrics_new(p, err, errlen) < 0)
        return -1;
    if (pgq_connect_via(p->url, p->cfg->pooler, &p->hb_conn, e, sizeof e) < 0 ||
        pgq_schema_check(p->hb_conn, e, sizeof e) < 0 ||
        pgq_cfg_apply_types_as(p->hb_conn, p->cfg, p->name, false, e, sizeof e) < 0 ||
        pgq_pool_register_row(p->hb_conn, p->name, p->host, (int)getpid(), p->nslots,
                              (const char *const *)p->cfg->queues, p->cfg->nqueues,
                              e, sizeof e) < 0) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    p->registered = true;
    if (pipe2(p->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    /* Hints are forgotten every 10 s: the safety net for a job that came
     * to lie behind one unannounced (a claim rolled back, a lost note).
     * Without LISTEN (through a transaction pooler, no listen_url) no job
     * is announced at all: no hints, every claim searches from the start. */
    p->listens = p->cfg->pooler != PGQ_POOLER_TRANSACTION || p->cfg->listen_url;
    if (p->listens)
        p->hints = pgq_hints_new((const char *const *)p->cfg->queues, p->cfg->nqueues,
                                 p->cfg->poll_ms, 10000);
    else
        pool_log(PGQ_LOG_INFO, "pool", "through a transaction pooler without listen_url: no "
                 "LISTEN, workers poll every %lld ms", (long long)p->cfg->poll_ms);
    /* batch = 1: strict, each worker on its own; otherwise (no key, or N)
     * claims and acks for several workers. */
    if (!p->slots || (p->listens && !p->hints) || (p->cfg->batch != 1 && batch_new(p) < 0)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->nstate[SLOT_NEW] = p->nslots;
    for (int i = 0; i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        char owner[300];
        s->pool = p;
        s->index = i;
        snprintf(s->who, sizeof s->who, "worker[%d]", i);
        snprintf(owner, sizeof owner, "%s/w%d", p->name, i);
        claim_spec_init(&s->claim, p, owner);
        /* IDLE before the thread runs: its first move starts from there. */
        pthread_mutex_lock(&p->mu);
        slot_set(s, SLOT_IDLE, NULL);
        pthread_mutex_unlock(&p->mu);
        if (pthread_create(&s->thread, NULL, worker_main, s) != 0) {
            pthread_mutex_lock(&p->mu);
            slot_set(s, SLOT_NEW, NULL);
            pthread_mutex_unlock(&p->mu);
            snprintf(err, errlen, "cannot start worker thread %d", i);
            pgq_pool_stop(p);
            return -1;
        }
    }
    if (pthread_create(&p->hb_thread, NULL, heartbeat_main, p) != 0 ||
        pthread_create(&p->listen_thread, NULL, listener_main, p) != 0) {
        snprintf(err, errlen, "cannot start the heartbeat or listener thread");
        pgq_pool_stop(p);
        return -1;
    }
    p->threads_started = true;
    if (p->cfg->ncrons > 0) {
        if (pthread_create(&p->cron_thread, NULL, cron_main, p) != 0) {
            snprintf(err, errlen, "cannot start the cron thread");
            pgq_pool_stop(p);
            return -1;
        }
        p->cron_started = true;
    }
    if (metrics_start(p, err, errlen) < 0) {
        pgq_pool_stop(p);
        return -1;
    }
    char queues[512] = "";
    for (size_t i = 0, off = 0; i < p->cfg->nqueues && off < sizeof queues; i++)
        off += (size_t)snprintf(queues + off, sizeof queues - off, "%s%s", i ? ", " : "",
                                p->cfg->queues[i]);
    pool_log(PGQ_LOG_INFO, NULL, "started %s: %d workers on queues %s; %zu job types, "
             "%zu cron schedules", p->name, p->nslots, queues, p->cfg->ntypes, p->cfg->ncrons);
    pool_notify_ready(p);
    return 0;
}

void pgq_pool_stop(pgq_pool *p)
{
    bool first = false;
    pthread_mutex_lock(&p->mu);
    if (!p->stop_requested) {
        p->stop_requested = first = true;
        p->deadline_ms = pool_now_ms() + p->cfg->shutdown_timeout_ms;
        atomic_store(&p->stopping, true);
        pthread_cond_broadcast(&p->wake_cv);
        pthread_cond_broadcast(&p->state_cv);
        if (p->stop_pipe[1] >= 0) {
            ssize_t w = write(p->stop_pipe[1], "x", 1);
            (void)w;
        }
    }
    pthread_mutex_unlock(&p->mu);
    if (first)   /* outside mu: a socket write */
        pool_notify_stopping(p);
}

/* Wait (mu held) until no worker is busy or the monotonic time `until`. */
static void wait_workers(pgq_pool *p, int64_t until)
{
    struct timespec ts;
    while (slot_busy(p) > 0) {
        int64_t left = until - pool_now_ms();
        if (left <= 0)
            break;
        pool_deadline(&ts, left);
        pthread_cond_timedwait(&p->state_cv, &p->mu, &ts);
    }
}

/* Release, from this thread's own connection, the jobs of workers whose
 * handlers ignored cancellation; their threads are left behind (ABANDONED).
 * mu held: the threads left behind cannot free their jobs meanwhile. The
 * RELEASED events go into *ev (copies of the jobs, caller reports and
 * frees them once mu is dropped). */
static int release_abandoned(pgq_pool *p, struct pending_ack *ev, size_t *nev)
{
    char err[512];
    pgq_conn *c = NULL;
    int rc = 0;
    for (int i = 0; p->slots && i < p->nslots; i++) {
        struct slot *s = &p->slots[i];
        if (s->state == SLOT_NEW || s->state == SLOT_EXITED || s->state == SLOT_ABANDONED)
            continue;
        const pgq_job *j = s->job;
        slot_set(s, SLOT_ABANDONED, NULL);
        if (!j)
            continue;
        bool lost = false;
        if (!c && pgq_connect_via(p->url, p->cfg->pooler, &c, err, sizeof err) < 0) {
            pool_log(PGQ_LOG_ERROR, s->who, "cannot release job %lld: %s; its lease will "
                     "expire", (long long)j->id, err);
            rc = -1;
            continue;
        }
        if (pgq_release(c, j->id, j->lease_token, &lost, err, sizeof err) < 0) {
            pool_log(PGQ_LOG_ERROR, s->who, "cannot release job %lld: %s", (long long)j->id,
                     err);
            rc = -1;
        } else {
            pool_log(PGQ_LOG_WARN, s->who, "job=%lld type=%s: handler ignored the shutdown; "
                     "released%s", (long long)j->id, j->type,
                     lost ? " (lease already lost)" : "");
            /* Released: that is the attempt's outcome, unless the thread
             * left behind recorded one first (then the release found the
             * lease gone, and the thread reports its own). */
            if (!lost && !s->reported && pool_has_events(p)) {
                s->reported = true;
                pgq_job *copy = pool_job_dup(j);
                if (copy)
                    ev[(*nev)++] = (struct pending_ack){
                        .job = copy, .who = s->who,
                        .ran_us = pool_now_us() - atomic_load(&s->started_us) };
            }
        }
    }
    pgq_disconnect(c);
    return rc;
}

int pgq_pool_wait(pgq_pool *p)
{
    char err[512];
    int rc = 0;
    if (pool_in_event_callback()) {
        pool_log(PGQ_LOG_ERROR, NULL, "pgq_pool_wait called from an event callback: refused "
                 "(it would wait for the thread it runs on)");
        return -1;
    }
    struct pending_ack *released = p->slots ? calloc((size_t)p->nslots, sizeof *released) : NULL;
    size_t nreleased = 0;
    pthread_mutex_lock(&p->mu);
    while (!p->stop_requested)
        pthread_cond_wait(&p->state_cv, &p->mu);
    int64_t deadline = p->deadline_ms;
    int held = slot_holding(p);
    /* Batching: stop waiting for a claim in progress. */
    if (p->batch)
        batch_wake(p->batch);
    if (held)
        pool_log(PGQ_LOG_INFO, NULL, "shutting down: waiting up to %lld ms for %d job%s",
                 (long long)(deadline - pool_now_ms()), held, held == 1 ? "" : "s");
    wait_workers(p, deadline);
    if (slot_busy(p)) {
        /* Deadline: cancel what runs (exec children get SIGTERM, then
         * SIGKILL); the workers release their jobs as they return. */
        for (int i = 0; p->slots && i < p->nslots; i++)
            atomic_store(&p->slots[i].cancel, true);
        wait_workers(p, pool_now_ms() + 10000);
        if (released && release_abandoned(p, released, &nreleased) < 0)
            rc = -1;
    }
    p->hb_stop = true;
    pthread_cond_broadcast(&p->state_cv);
    /* Every slot is NEW (no thread), EXITED or ABANDONED now: final. */
    bool *join = p->slots ? calloc((size_t)p->nslots, sizeof *join) : NULL;
    for (int i = 0; join && i < p->nslots; i++)
        join[i] = p->slots[i].state == SLOT_EXITED;
    pthread_mutex_unlock(&p->mu);

    for (size_t i = 0; i < nreleased; i++) {
        pgq_event ev;
        pool_event_init(&ev, PGQ_EVENT_RELEASED, released[i].job, released[i].who,
                        released[i].ran_us);
        pool_emit(p, &ev);
        pgq_job_free(released[i].job);
    }
    free(released);
    for (int i = 0; join && i < p->nslots; i++)
        if (join[i])
            pthread_join(p->slots[i].thread, NULL);
    free(join);
    if (p->threads_started) {
        pthread_join(p->listen_thread, NULL);
        pthread_join(p->hb_thread, NULL);
    }
    if (p->cron_started)
        pthread_join(p->cron_thread, NULL);
    /* Every thread is gone: the heartbeat's connection is free to record
     * the batch's pending acks and give back its unstarted jobs. */
    if (p->batch && p->hb_conn)
        batch_drain(p, p->hb_conn);
    /* Scrapes are answered until every outcome is counted. */
    metrics_stop(p);
    if (p->hb_conn && p->registered) {
        if (!pgq_connected(p->hb_conn))
            (void)!pgq_reconnect(p->hb_conn, err, sizeof err);
        if (pgq_pool_deregister_row(p->hb_conn, p->name, err, sizeof err) < 0) {
            pool_log(PGQ_LOG_WARN, NULL, "%s", err);
            rc = -1;
        }
    }
    pool_log(PGQ_LOG_INFO, NULL, "stopped");
    return rc;
}

int pgq_pool_reload(pgq_pool *p, char *err, size_t errlen)
{
    pgq_cfg *cfg = NULL;
    struct handlers *h;
    char e[1024];
    if (pool_in_event_callback()) {
        snprintf(err, errlen, "pgq_pool_reload: not from an event callback");
        return -1;
    }
    if (!p->cfg->path) {
        snprintf(err, errlen, "no config file to reload");
        return -1;
    }
    if (pgq_cfg_load(p->cfg->path, &cfg, err, errlen) < 0)
        return -1;
    if (handlers_build(p, cfg, &h, err, errlen) < 0) {
        pgq_cfg_free(cfg);
        return -1;
    }
    /* A connection of its own: the heartbeat thread's belongs to it. */
    pgq_conn *c = NULL;
    if (pgq_connect_via(p->url, p->cfg->pooler, &c, e, sizeof e) < 0 ||
        pgq_cfg_apply_types_as(c, cfg, p->name, false, e, sizeof e) < 0) {
        pgq_disconnect(c);
        snprintf(err, errlen, "%s", e);
        handlers_free(h);
        return -1;
    }
    pgq_disconnect(c);
    pthread_mutex_lock(&p->mu);
    h->older = p->handlers;
    p->handlers = h;
    pthread_mutex_unlock(&p->mu);
    err[0] = '\0';
    if (cfg->workers != p->cfg->workers || cfg->nqueues != p->cfg->nqueues ||
        cfg->lease_ttl_ms != p->cfg->lease_ttl_ms || cfg->heartbeat_ms != p->cfg->heartbeat_ms ||
        cfg->batch != p->cfg->batch ||
        (cfg->metrics_listen == NULL) != (p->cfg->metrics_listen == NULL) ||
        (cfg->metrics_listen && strcmp(cfg->metrics_listen, p->cfg->metrics_listen) != 0))
        snprintf(err, errlen, "[pool] changes need a restart; job types were reloaded");
    else if (cron_sections_differ(cfg, p->cfg))
        snprintf(err, errlen, "[cron] changes need a restart; job types were reloaded");
    else if ((cfg->handler_url == NULL) != (p->cfg->handler_url == NULL) ||
             (cfg->handler_url && strcmp(cfg->handler_url, p->cfg->handler_url) != 0))
        /* exec handlers' DATABASE_URL is fixed at start (p->url_env) */
        snprintf(err, errlen, "[database] handler_url changes need a restart; job types were "
                 "reloaded");
    return 0;
}

void pgq_pool_free(pgq_pool *p)
{
    if (!p)
        return;
    if (pool_in_event_callback()) {
        pool_log(PGQ_LOG_ERROR, NULL, "pgq_pool_free called from an event callback: refused "
                 "(the pool runs it)");
        return;
    }
    for (int i = 0; p->slots && i < p->nslots; i++)
        if (p->slots[i].state == SLOT_ABANDONED)
            return;   /* a handler thread still runs and uses the pool: leave it be */
    for (int i = 0; p->slots && i < p->nslots; i++) {
        pgq_disconnect(p->slots[i].conn);
        pgq_job_free(p->slots[i].job);
    }
    handlers_free(p->handlers);
    batch_free(p->batch);
    metrics_free(p->metrics);
    pgq_hints_free(p->hints);
    pgq_disconnect(p->hb_conn);
    for (size_t i = 0; i < p->ncbs; i++)
        free(p->cbs[i].name);
    free(p->cbs);
    free(p->subs);
    if (p->stop_pipe[0] >= 0) {
        close(p->stop_pipe[0]);
        close(p->stop_pipe[1]);
    }
    pgq_cfg_free(p->cfg);
    free(p->slots);
    free(p->url);
    free(p->url_env);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake_cv);
    pthread_cond_destroy(&p->state_cv);
    free(p);
}
