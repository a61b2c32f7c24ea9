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
    int64_t deadline_ms;           /* shutdown deadline, monotonic (mu) */
    int stop_pipe[2];              /* wakes the listener's poll */

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

/* Sleep up to ms, waking early when the pool stops claiming. */
void pool_nap(pgq_pool *p, int64_t ms);

void *worker_main(void *arg);
void *heartbeat_main(void *arg);
void *listener_main(void *arg);

#endif
