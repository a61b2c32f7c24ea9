/* The state machine of a worker slot: one state per slot, every change in
 * slot_set_at() (PgBouncer's change_server_state), which checks it against
 * the table below, keeps the per-state counts of the pool right, and keeps
 * the handler's lock-free flags in step with the state.
 *
 *   from        to          when
 *   NEW         IDLE        pgq_pool_start, just before the thread is created
 *   IDLE        NEW         the thread could not be created
 *   IDLE        RUNNING     the worker took a job (its own claim, or the batch's buffer)
 *   IDLE        EXITED      the worker ends (pool stopping)
 *   RUNNING     LOST        the heartbeat found the job's lease lost
 *   RUNNING     FINISHING   the handler returned: recording its end
 *   LOST        FINISHING   the handler returned a success anyway: the fenced
 *                           completion finds the lease gone and says so
 *   LOST        IDLE        the handler stopped: nothing to record
 *   FINISHING   IDLE        the end is recorded, queued as an ack, or given up
 *   FINISHING   RUNNING     the completion claimed the next job (batch = 1)
 *   IDLE..FINISHING  ABANDONED  shutdown gave up waiting and released the job
 *
 * Anything else (a second job while holding one, a FINISHING job that is
 * not the one held, leaving EXITED) is a bug in the pool, refused loudly:
 * logged with the caller's file and line, then abort(). Aborting loses
 * nothing a crash would not: held leases expire and their jobs are retried
 * (promise 5), whereas a slot in a state it cannot be in could hold a lease
 * nobody renews, or run two jobs on one connection. ABANDONED is the one
 * state whose thread does not know it: the thread left behind still moves
 * its job along as it ends, so from ABANDONED every move only updates the
 * job it holds and the state stays. */
#include "pool_int.h"

#include <inttypes.h>
#include <stdlib.h>

#include "log.h"

#define BIT(st) (1u << (st))

/* allowed[from]: the states `from` may move to. */
static const unsigned allowed[SLOT__COUNT] = {
    [SLOT_NEW] = BIT(SLOT_IDLE),
    [SLOT_IDLE] = BIT(SLOT_NEW) | BIT(SLOT_RUNNING) | BIT(SLOT_EXITED) | BIT(SLOT_ABANDONED),
    [SLOT_RUNNING] = BIT(SLOT_LOST) | BIT(SLOT_FINISHING) | BIT(SLOT_ABANDONED),
    [SLOT_LOST] = BIT(SLOT_FINISHING) | BIT(SLOT_IDLE) | BIT(SLOT_ABANDONED),
    [SLOT_FINISHING] = BIT(SLOT_IDLE) | BIT(SLOT_RUNNING) | BIT(SLOT_ABANDONED),
    [SLOT_EXITED] = 0,
    [SLOT_ABANDONED] = 0,   /* absorbing: see the top of this file */
};

static const char *const names[SLOT__COUNT] = {
    [SLOT_NEW] = "new", [SLOT_IDLE] = "idle", [SLOT_RUNNING] = "running",
    [SLOT_LOST] = "lost", [SLOT_FINISHING] = "finishing", [SLOT_EXITED] = "exited",
    [SLOT_ABANDONED] = "abandoned",
};

static bool valid(enum slot_state st)
{
    return (unsigned)st < SLOT__COUNT;
}

static bool holds_job(enum slot_state st)
{
    return st == SLOT_RUNNING || st == SLOT_LOST || st == SLOT_FINISHING;
}

bool slot_transition_ok(enum slot_state from, enum slot_state to)
{
    return valid(from) && valid(to) && (allowed[from] & BIT(to)) != 0;
}

const char *slot_state_name(enum slot_state st)
{
    return valid(st) ? names[st] : "invalid";
}

/* Log a refused transition and abort: see the top of this file. */
static _Noreturn void refuse(const struct slot *s, enum slot_state to, const pgq_job *job,
                             const char *why, const char *file, int line)
{
    pool_log(PGQ_LOG_ERROR, s->who, "%s:%d: impossible slot transition %s -> %s (job %" PRId64
             " held, job %" PRId64 " given): %s; aborting", file, line,
             slot_state_name(s->state), slot_state_name(to), s->job ? s->job->id : 0,
             job ? job->id : 0, why);
    abort();
}

void slot_set_at(struct slot *s, enum slot_state to, pgq_job *job, const char *file, int line)
{
    enum slot_state from = s->state;
    if (from == SLOT_ABANDONED && valid(to)) {
        s->job = job;
        return;
    }
    if (!slot_transition_ok(from, to))
        refuse(s, to, job, "not in the table", file, line);
    if (holds_job(to) != (job != NULL))
        refuse(s, to, job, holds_job(to) ? "no job given" : "a job given", file, line);
    /* LOST and FINISHING are about the job held, not another one. */
    if ((to == SLOT_LOST || to == SLOT_FINISHING) && job != s->job)
        refuse(s, to, job, "not the job the slot holds", file, line);
    if (to == SLOT_RUNNING) {
        s->reported = false;   /* a new job: its outcome is not reported yet */
        atomic_store(&s->lease_lost, false);
        atomic_store(&s->cancel, false);
    } else if (to == SLOT_LOST) {
        atomic_store(&s->lease_lost, true);
        atomic_store(&s->cancel, true);
    }
    s->pool->nstate[from]--;
    s->pool->nstate[to]++;
    s->state = to;
    s->job = job;
}

int slot_busy(const pgq_pool *p)
{
    return p->nstate[SLOT_IDLE] + p->nstate[SLOT_RUNNING] + p->nstate[SLOT_LOST] +
           p->nstate[SLOT_FINISHING];
}

int slot_holding(const pgq_pool *p)
{
    return p->nstate[SLOT_RUNNING] + p->nstate[SLOT_LOST] + p->nstate[SLOT_FINISHING];
}
