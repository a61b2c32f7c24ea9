/* Internal to pool/: the pool and worker-slot structs and the functions the
 * pool's threads share. Locking: pool->mu guards every field marked (mu);
 * atomics are read without it. */
#ifndef PGQ_POOL_INT_H
#define PGQ_POOL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "pgq_pool.h"
#include "result.h"

/* A job type's resolved handler. */
struct handler {
    const pgq_cfg_type *type;      /* points into a config generation */
    enum pgq_handler_kind kind;
    pgq_handler_fn fn;             /* plugin or callback */
    void *arg;
    void *dl;                      /* plugin's dlopen handle */
};

/* One generation of handlers (a reload makes a new one; old ones are kept
 * until the pool is freed, as in-flight jobs may still use them). */
struct handlers {
    pgq_cfg *cfg;
    struct handler *h;
    size_t n;
    struct handlers *older;
};

struct callback {
    char *name;
    pgq_handler_fn fn;
    void *arg;
};

/* A lease held by the pool: a job id and its lease token. */
struct lease {
    int64_t id;
    char token[PGQ_TOKEN_LEN + 1];
};

/* A done job whose outcome waits to be recorded with the next claim
 * (batch.c): the lease it still holds, what to record (with the result,
 * owned by whoever holds the pending_ack: the ack list, or the flush that
 * took it), and for its event the job itself (owned: freed once the
 * outcome is reported), the worker that ran it and for how long. */
struct pending_ack {
    struct lease lease;
    int attempt;
    pgq_attempt_info info;
    struct job_result result;
    pgq_job *job;
    const char *who;               /* the slot's name: lives as long as the pool */
    int64_t ran_us;
    bool silent;                   /* its outcome was reported already (the shutdown
                                    * released it from an abandoned slot): no event */
};

/* A registered event callback (events.c). */
struct event_sub {
    pgq_event_fn fn;
    void *arg;
};

/* What a claim asks the database for, built once from the config when the
 * pool starts (claim.c): every claim of a worker or of the batch goes
 * through claim_run() with one of these. */
struct claim_spec {
    pgq_hints *hints;              /* shared by all claims of the pool */
    const char *const *queues;     /* the config's; it outlives the pool's threads */
    size_t nqueues;
    int64_t ttl_ms;                /* lease_ttl */
    char owner[300];               /* lease_owner: "<pool name>/w3" or "<pool name>/batch" */
};

/* The state of a worker slot (slot.c). Every change goes through
 * slot_set(), which refuses an impossible one (see the table there) and
 * keeps pool->nstate right. A slot holds a job (slot->job) exactly in
 * RUNNING, LOST and FINISHING: that is the "running" place of a lease;
 * the others are the batch's buffer and ack list (batch.c). */
enum slot_state {
    SLOT_NEW,          /* no thread yet */
    SLOT_IDLE,         /* thread alive, no job: claiming, taking from the buffer, or asleep */
    SLOT_RUNNING,      /* its handler runs the job; the heartbeat renews the lease */
    SLOT_LOST,         /* the heartbeat found the lease lost: the handler is being stopped */
    SLOT_FINISHING,    /* recording the job's end; the heartbeat renews but reports no loss */
    SLOT_EXITED,       /* the thread is done */
    SLOT_ABANDONED,    /* shutdown released its job and left the thread behind */
    SLOT__COUNT
};

struct slot {
    pgq_pool *pool;
    int index;
    char who[48];                  /* "worker[3]" */
    pthread_t thread;              /* valid unless state is SLOT_NEW */
    struct claim_spec claim;       /* owner "<pool name>/w3" */
    pgq_conn *conn;
    enum slot_state state;         /* (mu), changed by slot_set() only */
    pgq_job *job;                  /* (mu), non-NULL exactly while RUNNING, LOST, FINISHING */
    /* Mirrors for the handler, read without the lock (pgq_ctx_cancelled):
     * set by slot_set() on LOST, cleared when a job starts; cancel is also
     * set by the shutdown deadline. */
    atomic_bool lease_lost;
    atomic_bool cancel;
    /* The job's outcome event was claimed by whoever reports it (the
     * worker, or the shutdown releasing an abandoned job): exactly one
     * does. Cleared by slot_set() when a job starts. (mu) */
    bool reported;
    _Atomic int64_t started_us;    /* when the running job's handler started (monotonic) */
};

struct batch;   /* batch.c */

struct pgq_pool {
    char *url;
    char *url_env;                 /* "DATABASE_URL=" handler_url or url, for exec handlers */
    pgq_cfg *cfg;                  /* the generation the pool started with */
    struct handlers *handlers;     /* current generation (mu) */
    struct callback *cbs;
    size_t ncbs;
    char name[256];                /* host:pid:start, also the workers row */
    char host[128];

    pthread_mutex_t mu;
    pthread_cond_t wake_cv;        /* idle workers wait here */
    pthread_cond_t state_cv;       /* worker exits, stop requests, heartbeat sleeps */
    int idle;                      /* workers waiting for a wake (mu) */
    int wakeups;                   /* pending wakes, at most idle (mu) */
    atomic_bool stopping;          /* stop claiming */
    bool stop_requested;           /* (mu) */
    bool hb_stop;                  /* the heartbeat thread may end (mu) */
    bool hb_now;                   /* renew the leases now: a job was cancelled (mu) */
    int64_t deadline_ms;           /* shutdown deadline, monotonic (mu) */
    int stop_pipe[2];              /* wakes the listener's poll */

    /* Claims for several workers and acks of several (batch.c); NULL with
     * batch = 1, where each worker claims its own job with its completion. */
    struct batch *batch;

    /* Where the next claim of each queue may start (core/hints.c): shared
     * by the workers and the batch claimers, lowered by the listener. */
    pgq_hints *hints;            /* NULL when the pool does not listen */
    bool listens;                /* LISTEN for wake-ups and claim hints (listener.c) */

    struct slot *slots;
    int nslots;
    int nstate[SLOT__COUNT];       /* slots per state (mu), kept by slot_set() */
    pgq_conn *hb_conn;             /* the heartbeat thread's */
    pthread_t hb_thread, listen_thread;
    pthread_t cron_thread;         /* only with [cron NAME] sections (cron_started) */
    bool cron_started;
    bool threads_started;
    bool started;                  /* pgq_pool_start was called: no more registrations */
    bool registered;               /* our pgq.workers row exists */
    bool notify;                   /* tell systemd (notify.c); set before start */

    struct event_sub *subs;        /* pgq_pool_on_event; fixed once started */
    size_t nsubs;
    atomic_llong reconnects;       /* connections re-established after a loss (metrics) */
    struct metrics *metrics;       /* [pool] metrics_listen (metrics.c); NULL when off */
};

/* ---- notify.c: sd_notify, when the program asked for it ---- */

/* READY=1 (start done), STOPPING=1 (graceful stop begun), WATCHDOG=1. Any
 * thread; nothing when p->notify is off or NOTIFY_SOCKET is unset. */
void pool_notify_ready(const pgq_pool *p);
void pool_notify_stopping(const pgq_pool *p);
void pool_notify_watchdog(const pgq_pool *p);
/* The unit's WatchdogSec in ms when it asked this process for pings
 * (WATCHDOG_USEC, WATCHDOG_PID) and notify is on; 0 otherwise. */
int64_t pool_notify_watchdog_ms(const pgq_pool *p);

/* ---- slot.c: the slot state machine ---- */

/* Whether from -> to is a transition of the table in slot.c. */
bool slot_transition_ok(enum slot_state from, enum slot_state to);
const char *slot_state_name(enum slot_state st);
/* Move s to state `to` holding job (NULL unless to is RUNNING, LOST or
 * FINISHING; for LOST and FINISHING it must be the job s holds); mu held.
 * An impossible transition is a bug: it is logged with the caller's file
 * and line and the process aborts (the leases it held expire and their
 * jobs are retried: at-least-once still holds). A slot ABANDONED by the
 * shutdown stays so: its thread's later moves only update its job. */
#define slot_set(s, to, job) slot_set_at((s), (to), (job), __FILE__, __LINE__)
void slot_set_at(struct slot *s, enum slot_state to, pgq_job *job, const char *file, int line);
/* Slots whose thread still runs and is not abandoned (IDLE .. FINISHING); mu held. */
int slot_busy(const pgq_pool *p);
/* Slots holding a job (RUNNING, LOST, FINISHING); mu held. */
int slot_holding(const pgq_pool *p);

/* ---- events.c: pgq_pool_on_event ---- */

/* Call every registered callback with ev; no pool lock may be held. */
void pool_emit(pgq_pool *p, const pgq_event *ev);
/* Whether anything listens (skip building events nobody reads). */
bool pool_has_events(const pgq_pool *p);
/* Whether the calling thread is inside an event callback. */
bool pool_in_event_callback(void);
/* ev for job j of worker `who`, kind and duration (microseconds). */
void pool_event_init(pgq_event *ev, enum pgq_event_kind kind, const pgq_job *j,
                     const char *who, int64_t ran_us);
/* Why the lease of job id's attempt was lost, read on c: CANCELLED when an
 * operator cancelled that attempt, else LEASE_LOST; why gets the
 * attempt's recorded error (or a generic reason). */
enum pgq_event_kind pool_lost_kind(pgq_conn *c, int64_t id, int attempt, char *why,
                                   size_t whylen);
/* Emit the lost-lease outcome of j (CANCELLED or LEASE_LOST, see above). */
void pool_emit_lost(pgq_pool *p, pgq_conn *c, const pgq_job *j, const char *who,
                    int64_t ran_us);
/* A copy of j (one allocation, like a claimed job's); NULL when out of memory. */
pgq_job *pool_job_dup(const pgq_job *j);

/* ---- metrics.c: [pool] metrics_listen ---- */

struct metrics;
/* Bind cfg's metrics_listen (nothing when unset) and subscribe to the
 * pool's events; -1 with err naming the address (a port in use says so).
 * In pgq_pool_start, before the threads. */
int metrics_new(pgq_pool *p, char *err, size_t errlen);
/* Start serving (after the other threads); -1 with err. */
int metrics_start(pgq_pool *p, char *err, size_t errlen);
/* Stop serving and join the thread (pgq_pool_wait, last). */
void metrics_stop(pgq_pool *p);
void metrics_free(struct metrics *m);

/* ---- claim.c: the claim specification ---- */

/* Fill c from the pool's config and hints, with lease owner `owner`. */
void claim_spec_init(struct claim_spec *c, const pgq_pool *p, const char *owner);
/* pgq_complete_claim_snoozed with c: record n acks (lost[i] set for those
 * whose lease was lost, snoozed[i] for those whose done end applied a
 * snooze asked during the attempt; lost may be NULL when n is 0, snoozed
 * always) and claim up to limit jobs into got (*ngot of them, caller frees
 * each). 0, or -1 with err. */
int claim_run(const struct claim_spec *c, pgq_conn *conn, const pgq_ack *acks, size_t n,
              bool *lost, bool *snoozed, size_t limit, pgq_job **got, size_t *ngot, char *err,
              size_t errlen) __attribute__((warn_unused_result));

/* Monotonic milliseconds, and microseconds. */
int64_t pool_now_ms(void);
int64_t pool_now_us(void);

/* *ts = now + ms on CLOCK_MONOTONIC (the clock of the pool's condvars). */
void pool_deadline(struct timespec *ts, int64_t ms);

/* Wake one idle worker, if any is idle (listener, poll tick, cascade). */
void pool_wake_one(pgq_pool *p);

/* The handler for a job type in the current generation, or NULL. */
const struct handler *pool_handler(pgq_pool *p, const char *type);

/* Build and resolve a handler generation for cfg; -1 with err naming the
 * job type, file and line when a handler cannot be resolved. */
int handlers_build(pgq_pool *p, pgq_cfg *cfg, struct handlers **out, char *err, size_t errlen);
void handlers_free(struct handlers *h);

/* Connect with backoff until it works or the pool stops; 0 or -1 (stopping). */
int pool_connect_retry(pgq_pool *p, pgq_conn **conn, const char *who);
/* The same to another URL (the listener's listen_url). */
int pool_connect_retry_to(pgq_pool *p, const char *url, pgq_pooler pooler, pgq_conn **conn,
                          const char *who);

/* Sleep up to ms, waking early when the pool stops claiming. */
void pool_nap(pgq_pool *p, int64_t ms);

/* Sleep until woken by a wake token or the pool stops (worker threads). */
void pool_wait_for_work(pgq_pool *p);

/* ---- batch.c: claims and acks of several workers (batch = N, or no batch key) ---- */

/* Set p->batch up for the config's batch (0: adaptive, N > 1: fixed N);
 * -1 when out of memory. Before the threads start. */
int batch_new(pgq_pool *p);
void batch_free(struct batch *b);
/* The worker's next job, with s moved IDLE -> RUNNING holding it; claimed
 * for several workers at once together with the pending acks. NULL when
 * the pool stops. Worker threads. */
pgq_job *batch_take(struct slot *s);
/* s (FINISHING) succeeded with j: j's lease moves to the ack list and s to
 * IDLE in one step; the ack is recorded with the next claim, or at once
 * when enough are pending or the oldest waited long enough. Takes
 * ownership of j (its DONE event fires once recorded); the result (may be
 * NULL) moves with it (*result is emptied). Worker threads. */
void batch_ack(struct slot *s, pgq_job *j, const pgq_attempt_info *info, int64_t ran_us,
               struct job_result *result);
/* A job of the batch ran for us microseconds (the adaptive policy learns
 * how short jobs are); mu held. */
void batch_note_run(struct batch *b, int64_t us);
/* How many leases the batch holds (buffered and awaiting acknowledgement),
 * and a copy of up to max of them into out; mu held (the heartbeat). */
size_t batch_nleases(const struct batch *b);
size_t batch_leases(const struct batch *b, struct lease *out, size_t max);
/* The heartbeat found job id's lease lost: drop it from the buffer or the
 * ack list; mu held. True when the batch held it. When it was a done job
 * awaiting acknowledgement, *acked gets it (the caller reports its
 * outcome and frees acked->job) and acked->job is non-NULL. */
bool batch_drop(struct batch *b, int64_t id, struct pending_ack *acked);
/* Wake workers waiting for a claim to end (shutdown); mu held. */
void batch_wake(struct batch *b);
/* At shutdown, after every thread stopped: record pending acks and give
 * buffered jobs back, on connection c. */
void batch_drain(pgq_pool *p, pgq_conn *c);

void *worker_main(void *arg);
void *heartbeat_main(void *arg);
void *listener_main(void *arg);

/* ---- cron.c: periodic jobs ---- */

/* The scheduler thread of the config's [cron NAME] sections (own connection);
 * it ends when the pool stops claiming. */
void *cron_main(void *arg);
/* Whether two configs' [cron] sections differ (a reload cannot apply that). */
bool cron_sections_differ(const pgq_cfg *a, const pgq_cfg *b);

#endif
