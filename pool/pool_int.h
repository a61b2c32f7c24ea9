/* Internal to pool/: the pool and worker-slot structs and the functions the
 * pool's threads share. Locking: pool->mu guards every field marked (mu);
 * atomics are read without it. */
#ifndef PGQ_POOL_INT_H
#define PGQ_POOL_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "pgq_pool.h"

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

/* A done job whose outcome waits to be recorded in the next batch (batch.c). */
struct pending_ack {
    int64_t id;
    int attempt;
    char token[PGQ_TOKEN_LEN + 1];
    pgq_attempt_info info;
};

struct slot {
    pgq_pool *pool;
    int index;
    char who[48];                  /* "worker[3]" */
    char owner[300];               /* lease_owner: "<pool name>/w3" */
    pthread_t thread;
    bool started;
    pgq_conn *conn;
    pgq_job *job;                  /* in flight (mu) */
    bool exited;                   /* thread is done (mu) */
    bool abandoned;                /* released by the shutdown, thread left behind (mu) */
    bool finishing;                /* recording the job's end: the heartbeat leaves it be (mu) */
    atomic_bool lease_lost;
    atomic_bool cancel;            /* stop the handler (lease lost, shutdown deadline) */
};

struct pgq_pool {
    char *url;
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

    /* batch > 1 (batch.c): claimed jobs not yet started (a ring with room
     * for every claim in flight), done jobs not yet recorded, and how many
     * workers are claiming right now (mu). */
    pgq_job **buf;
    size_t buf_cap, buf_head, buf_count;
    struct pending_ack *acks;
    size_t nacks, acks_cap;
    int64_t oldest_ack_ms;
    int claimers;
    pthread_cond_t batch_cv;       /* a claim ended */
    char batch_owner[300];         /* lease_owner of batch claims: "<pool name>/batch" */

    /* Where the next claim of each queue may start (core/hints.c): shared
     * by the workers and the batch claimers, lowered by the listener. */
    pgq_hints *hints;            /* NULL when the pool does not listen */
    bool listens;                /* LISTEN for wake-ups and claim hints (listener.c) */

    struct slot *slots;
    int nslots;
    pgq_conn *hb_conn;             /* the heartbeat thread's */
    pthread_t hb_thread, listen_thread;
    bool threads_started;
    bool registered;               /* our pgq.workers row exists */
};

/* Monotonic milliseconds. */
int64_t pool_now_ms(void);

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

/* Batching (batch.c), used when the config's batch > 1. */
int batch_init(pgq_pool *p);
void batch_free(pgq_pool *p);
/* The worker's next job (also set as s->job), claimed in batches together
 * with the pending acks; NULL when the pool stops. */
pgq_job *batch_take(struct slot *s);
/* Queue j's success to be recorded with the next batch (flushed at once
 * when the batch is full or the oldest ack waited long enough). */
void batch_ack(struct slot *s, const pgq_job *j, const pgq_attempt_info *info);
/* Leases the batch holds (buffered and acked-not-recorded jobs), for the
 * heartbeat; mu held. Returns how many were written (at most max). */
size_t batch_leases(pgq_pool *p, int64_t *ids, char (*tokens)[PGQ_TOKEN_LEN + 1], size_t max);
/* The heartbeat found job id's lease lost: drop it from the batch; mu held.
 * True when the batch held it. */
bool batch_lost(pgq_pool *p, int64_t id);
/* At shutdown, after the workers stopped: record pending acks and give
 * buffered jobs back, on connection c. */
void batch_drain(pgq_pool *p, pgq_conn *c);

void *worker_main(void *arg);
void *heartbeat_main(void *arg);
void *listener_main(void *arg);

#endif
