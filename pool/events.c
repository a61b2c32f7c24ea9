/* Pool events (pgq_pool_on_event): what happened to each job, told to the
 * embedding program and to the pool's own metrics (metrics.c).
 *
 * The design is simple: the pool's threads already know, at one place
 * each, how an attempt ended and when that was committed (worker.c's
 * finish, batch.c's record of acknowledgements, the heartbeat's drop of a
 * lost acknowledgement, the shutdown's release). Each of those places
 * builds a pgq_event and calls pool_emit, with no pool lock held, after the
 * statement that made the outcome durable returned. "Exactly once per
 * outcome" comes from where a lease is held (batch.c's essay: a slot, the
 * buffer or the ack list, exactly one of them): whoever takes the lease
 * out of its place reports it, and a slot's job additionally carries a
 * `reported` flag (mu) for the one race with two reporters, a handler that
 * ignored the shutdown deadline against the release of its job.
 *
 * A lost lease has two causes the pool cannot tell apart by the lease
 * alone: the lease expired and the job was reaped, or an operator
 * cancelled the running job. The attempt's row in pgq.job_attempts says
 * which (outcome 'cancelled' with "cancelled by WHO"); it is read, on the
 * reporting thread's own connection, only for lost leases, which are rare. */
#include "pool_int.h"

#include <libpq-fe.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Depth of event callbacks on this thread: pgq_pool_wait and friends
 * refuse to run inside one. */
static _Thread_local int in_callback;

static const char *const kind_names[PGQ_EVENT__COUNT] = {
    [PGQ_EVENT_STARTED] = "started",       [PGQ_EVENT_DONE] = "done",
    [PGQ_EVENT_FAILED] = "failed",         [PGQ_EVENT_DEAD] = "dead",
    [PGQ_EVENT_LEASE_LOST] = "lease_lost", [PGQ_EVENT_CANCELLED] = "cancelled",
    [PGQ_EVENT_SNOOZED] = "snoozed",       [PGQ_EVENT_RELEASED] = "released",
};

const char *pgq_event_kind_name(enum pgq_event_kind kind)
{
    return (unsigned)kind < PGQ_EVENT__COUNT ? kind_names[kind] : "unknown";
}

int pgq_pool_on_event(pgq_pool *p, pgq_event_fn fn, void *arg, char *err, size_t errlen)
{
    if (!fn) {
        snprintf(err, errlen, "pgq_pool_on_event: no function given");
        return -1;
    }
    /* The list is read without a lock by every thread once they run. */
    if (p->started) {
        snprintf(err, errlen, "pgq_pool_on_event: the pool is started; register before "
                 "pgq_pool_start");
        return -1;
    }
    struct event_sub *subs = realloc(p->subs, (p->nsubs + 1) * sizeof *subs);
    if (!subs) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->subs = subs;
    subs[p->nsubs++] = (struct event_sub){ fn, arg };
    return 0;
}

bool pool_has_events(const pgq_pool *p)
{
    return p->nsubs > 0;
}

bool pool_in_event_callback(void)
{
    return in_callback > 0;
}

void pool_emit(pgq_pool *p, const pgq_event *ev)
{
    in_callback++;
    for (size_t i = 0; i < p->nsubs; i++)
        p->subs[i].fn(ev, p->subs[i].arg);
    in_callback--;
}

void pool_event_init(pgq_event *ev, enum pgq_event_kind kind, const pgq_job *j,
                     const char *who, int64_t ran_us)
{
    *ev = (pgq_event){
        .kind = kind,
        .job_id = j->id,
        .type = j->type,
        .queue = j->queue,
        .attempt = j->attempt,
        .max_attempts = j->max_retries + 1,
        .worker = who ? who : "",
        .duration_s = ran_us > 0 ? (double)ran_us / 1e6 : 0,
    };
    if (kind == PGQ_EVENT_STARTED && j->run_at_us > 0) {
        /* Queue wait: the database's run_at against this host's wall
         * clock (NTP keeps them close); a skew that makes it negative
         * reads as no wait. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t now_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
        ev->wait_s = now_us > j->run_at_us ? (double)(now_us - j->run_at_us) / 1e6 : 0;
    }
}

enum pgq_event_kind pool_lost_kind(pgq_conn *c, int64_t id, int attempt, char *why,
                                   size_t whylen)
{
    snprintf(why, whylen, "lease lost: the job was reclaimed; this attempt's outcome is "
             "discarded");
    if (!c || !pgq_connected(c))
        return PGQ_EVENT_LEASE_LOST;
    char sid[32], satt[16];
    snprintf(sid, sizeof sid, "%" PRId64, id);
    snprintf(satt, sizeof satt, "%d", attempt);
    const char *params[] = { sid, satt };
    /* A read, not a transition: job_attempts_job_idx finds it. */
    PGresult *r = PQexecParams(pgq_conn_pg(c),
                               "SELECT outcome, error FROM pgq.job_attempts "
                               "WHERE job_id = $1 AND attempt = $2 ORDER BY id DESC LIMIT 1",
                               2, NULL, params, NULL, NULL, 0);
    enum pgq_event_kind kind = PGQ_EVENT_LEASE_LOST;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        if (strcmp(PQgetvalue(r, 0, 0), "cancelled") == 0)
            kind = PGQ_EVENT_CANCELLED;
        if (!PQgetisnull(r, 0, 1))
            snprintf(why, whylen, "%s", PQgetvalue(r, 0, 1));
    }
    PQclear(r);
    return kind;
}

void pool_emit_lost(pgq_pool *p, pgq_conn *c, const pgq_job *j, const char *who,
                    int64_t ran_us)
{
    if (!pool_has_events(p))
        return;
    char why[1024];
    pgq_event ev;
    pool_event_init(&ev, pool_lost_kind(c, j->id, j->attempt, why, sizeof why), j, who,
                    ran_us);
    ev.error = why;
    pool_emit(p, &ev);
}

pgq_job *pool_job_dup(const pgq_job *j)
{
    size_t lq = strlen(j->queue) + 1, lt = strlen(j->type) + 1, lp = strlen(j->payload) + 1;
    pgq_job *d = malloc(sizeof *d + lq + lt + lp);
    if (!d)
        return NULL;
    *d = *j;
    char *s = (char *)(d + 1);
    d->queue = memcpy(s, j->queue, lq);
    d->type = memcpy(s + lq, j->type, lt);
    d->payload = memcpy(s + lq + lt, j->payload, lp);
    return d;
}
