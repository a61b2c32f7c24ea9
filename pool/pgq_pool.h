/* libpgq's worker pool: run handlers for jobs, with leases kept alive,
 * expired leases of dead pools reaped, new jobs picked up within
 * milliseconds, and a graceful shutdown.
 *
 * The pool is what `pgq-pool -c pool.ini` runs; a C program can embed it:
 * load (or build) a pgq_cfg, create the pool, register in-process callbacks
 * for the job types whose handler is `callback NAME`, start it, and stop it
 * when done. Threads: N workers (each with its own connection, one job at a
 * time), one heartbeat/reaper thread and one listener thread. */
#ifndef PGQ_POOL_H
#define PGQ_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgq_config.h"
#include "pgq.h"

typedef struct pgq_pool pgq_pool;

/* The context a handler gets for one attempt of one job. Valid only during
 * the handler call, and only in the calling thread. */
typedef struct pgq_ctx pgq_ctx;

/* An in-process handler: 0 = done, -1 = failed with a message in err. */
typedef int (*pgq_handler_fn)(pgq_ctx *ctx, void *arg, char *err, size_t errlen);

/* The job being handled (id, type, queue, payload JSON, 1-based attempt). */
PGQ_API const pgq_job *pgq_ctx_job(const pgq_ctx *ctx);

/* The worker's own connection, for the handler's SQL (same thread only). */
PGQ_API pgq_conn *pgq_ctx_conn(pgq_ctx *ctx);

/* Run fn at most once for this job and key (see pgq_run_once). */
PGQ_API pgq_once_result pgq_ctx_run_once(pgq_ctx *ctx, const char *key, pgq_once_fn fn, void *arg,
                                 char *err, size_t errlen);

/* Snooze the job: when the handler returns 0 the job goes back to ready
 * ms milliseconds later, its attempt not counted (a `snoozed` history row);
 * returning -1 fails the attempt as usual and drops the snooze. Recorded
 * at once through the worker's connection, fenced by the lease (see
 * pgq_snooze): PGQ_SNOOZE_REFUSED (with err) when the job has snoozed its
 * type's max_snoozes times, and then returning 0 makes it done. */
PGQ_API pgq_snooze_result pgq_ctx_snooze(pgq_ctx *ctx, int64_t ms, char *err, size_t errlen);
/* Set the job's result: text stored with the attempt if the handler
 * returns success (pgq show, `pgq result ID`, pgq.result(id) in SQL);
 * ignored when it fails. A later call replaces it; NULL clears it. The
 * text is copied. Longer than the job type's result_max: the first
 * result_max bytes are stored (cut before a character that does not fit),
 * with a note saying so and a log line; result_max = 0 stores nothing.
 * Returns 0, or -1 when text is not valid UTF-8 (as PostgreSQL accepts it)
 * or memory ran out: then the result is as it was. The handler's thread. */
PGQ_API int pgq_ctx_set_result(pgq_ctx *ctx, const char *text);

/* True once this worker no longer holds the job's lease: whatever the
 * handler does now will not be recorded, and run_once refuses. */
PGQ_API bool pgq_ctx_lease_lost(const pgq_ctx *ctx);

/* True when the handler should stop: lease lost, its timeout passed, or
 * the pool's shutdown deadline passed. Long handlers should poll it. */
PGQ_API bool pgq_ctx_cancelled(const pgq_ctx *ctx);

/* Log levels, for pgq_pool_set_log_level and the -v/-q flags. */
enum pgq_log_level { PGQ_LOG_ERROR = 0, PGQ_LOG_WARN, PGQ_LOG_INFO, PGQ_LOG_DEBUG };

/* Create a pool for cfg (the pool takes ownership of cfg). db_url NULL
 * means cfg's url, then $DATABASE_URL. Nothing connects yet. */
PGQ_API int pgq_pool_new(pgq_cfg *cfg, const char *db_url, pgq_pool **out, char *err, size_t errlen) PGQ_MUSTCHECK;

/* The database URL the pool resolved (db_url, cfg's url, $DATABASE_URL);
 * owned by the pool. */
PGQ_API const char *pgq_pool_db_url(const pgq_pool *p);

/* Register the in-process function for job types whose handler is
 * `callback NAME`. Before pgq_pool_start. */
PGQ_API int pgq_pool_on(pgq_pool *p, const char *name, pgq_handler_fn fn, void *arg, char *err,
                size_t errlen) PGQ_MUSTCHECK;

/* Resolve every job type's handler (exec command on PATH, plugin symbol,
 * registered callback) without starting anything. 0 when all resolve. */
PGQ_API int pgq_pool_check(pgq_pool *p, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Connect, check the schema, register the job types, and start the
 * threads. Returns once running. The caller's thread should block all
 * signals first (threads inherit the mask); see pgq-pool's main (cli/pool_main.c). */
PGQ_API int pgq_pool_start(pgq_pool *p, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Ask for a graceful stop: claim nothing more, let in-flight jobs finish
 * until shutdown_timeout, then release the rest. Any thread; returns at once. */
PGQ_API void pgq_pool_stop(pgq_pool *p);

/* Wait for the stop to complete (threads joined, leases released, pool
 * deregistered). 0 when everything was released cleanly. */
PGQ_API int pgq_pool_wait(pgq_pool *p) PGQ_MUSTCHECK;

/* Re-read the job-type sections of the config file (SIGHUP). In-flight
 * jobs finish with the handler they started with. [pool] and [database]
 * changes need a restart and are reported in err (return 0 still). */
PGQ_API int pgq_pool_reload(pgq_pool *p, char *err, size_t errlen) PGQ_MUSTCHECK;

/* ---- events: what happened to each job, for embedding programs ----
 *
 * A callback registered with pgq_pool_on_event is told of every attempt the
 * pool starts and of how it ended. Every PGQ_EVENT_STARTED is followed by
 * exactly one outcome event for the same job and attempt (DONE, FAILED,
 * DEAD, LEASE_LOST, CANCELLED, SNOOZED or RELEASED), and an outcome is
 * reported only after the statement that recorded it committed: a DONE is
 * durable when the callback sees it, including a success acknowledged
 * together with other workers' in one statement. Jobs the pool claimed
 * ahead and gave back unstarted (a batch's buffer at shutdown, a lease
 * lost while buffered) have no events: they never started.
 *
 * Threads: the callback runs on the thread that learned the outcome, once
 * it is committed: the job's worker thread (STARTED, FAILED, DEAD, and most
 * others), a worker thread that acknowledged several workers' successes in
 * one statement (DONE of another worker's job), the heartbeat thread (a
 * lease found lost while a success waited to be acknowledged) or the thread
 * in pgq_pool_wait (RELEASED at shutdown, and DONE for the successes it
 * records then). Callbacks may run on several threads at once: fn must be
 * thread-safe. No pool lock is held while it runs.
 *
 * What it may do: count, log, signal its own threads, call pgq_pool_stop.
 * It must return quickly (the worker it runs on, and the jobs that thread
 * acknowledges, wait for it), must not block on the pool (pgq_pool_wait,
 * pgq_pool_free, pgq_pool_reload are refused to it: they would deadlock or
 * free what runs it), and must not keep the event or its strings past the
 * call. A handler that ignores the shutdown deadline may still report its
 * outcome after pgq_pool_wait returned, if its end committed before the
 * pool released its job. */
enum pgq_event_kind {
    PGQ_EVENT_STARTED = 0,  /* the handler is about to run the attempt */
    PGQ_EVENT_DONE,         /* completed; committed */
    PGQ_EVENT_FAILED,       /* failed, another attempt is scheduled (retry_in_s) */
    PGQ_EVENT_DEAD,         /* failed with no retries left: dead-lettered */
    PGQ_EVENT_LEASE_LOST,   /* the lease expired and the job was reaped (or its end could
                             * not be recorded): this attempt's outcome is discarded */
    PGQ_EVENT_CANCELLED,    /* cancelled by an operator (pgq cancel) while it ran */
    PGQ_EVENT_SNOOZED,      /* the handler snoozed it: back to ready later, no attempt
                             * spent (pgq_ctx_snooze, or an exec handler's pgq snooze:
                             * the completion says it applied one) */
    PGQ_EVENT_RELEASED,     /* given back at shutdown: ready again, attempt not counted */
    PGQ_EVENT__COUNT
};

typedef struct pgq_event {
    enum pgq_event_kind kind;
    int64_t job_id;
    const char *type;       /* job type */
    const char *queue;
    int attempt;            /* 1-based */
    int max_attempts;       /* max_retries + 1 */
    const char *worker;     /* the pool's thread that ran it: "worker[3]" */
    double wait_s;          /* STARTED: how long the job had been due (queue wait,
                             * by this host's clock against the database's run_at) */
    double duration_s;      /* outcomes: the handler's running time; 0 for STARTED and
                             * for RELEASED jobs that never ran */
    double retry_in_s;      /* FAILED: delay until the next attempt; else 0 */
    const char *error;      /* FAILED, DEAD: the attempt's error; LEASE_LOST,
                             * CANCELLED: what is known of why; else NULL */
} pgq_event;

typedef void (*pgq_event_fn)(const pgq_event *ev, void *arg);

/* Call fn(ev, arg) for every event of the pool (see above). Before
 * pgq_pool_start; several callbacks may be registered, called in order. */
PGQ_API int pgq_pool_on_event(pgq_pool *p, pgq_event_fn fn, void *arg, char *err,
                              size_t errlen) PGQ_MUSTCHECK;

/* "started", "done", "failed", "dead", "lease_lost", "cancelled",
 * "snoozed", "released"; "unknown" for anything else. */
PGQ_API const char *pgq_event_kind_name(enum pgq_event_kind kind);

/* Free a stopped (or never started) pool. Accepts NULL. */
PGQ_API void pgq_pool_free(pgq_pool *p);

/* Tell systemd about the pool through sd_notify(3) (Type=notify units):
 * READY=1 when pgq_pool_start has succeeded, STOPPING=1 when a graceful
 * stop begins, WATCHDOG=1 from the heartbeat thread when the unit set
 * WatchdogSec=. Off by default (an embedding program decides its own
 * readiness); pgq-pool turns it on. Before pgq_pool_start. Does nothing in
 * a build without libsystemd, or when NOTIFY_SOCKET is unset. */
PGQ_API void pgq_pool_set_notify(pgq_pool *p, bool on);

/* Log threshold for this process's pool log lines (stderr). */
PGQ_API void pgq_pool_set_log_level(enum pgq_log_level level);

#endif
