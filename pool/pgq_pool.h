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

/* Free a stopped (or never started) pool. Accepts NULL. */
PGQ_API void pgq_pool_free(pgq_pool *p);

/* Log threshold for this process's pool log lines (stderr). */
PGQ_API void pgq_pool_set_log_level(enum pgq_log_level level);

#endif
