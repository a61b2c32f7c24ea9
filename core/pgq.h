/* libpgq: a PostgreSQL-backed job queue.
 *
 * A pgq_conn is one database connection and belongs to one thread at a time.
 * Every function that can fail returns 0 on success and -1 on error, and
 * writes a one-line message into the caller's err buffer (errlen bytes,
 * always NUL-terminated); the library itself never logs or prints.
 *
 * The life of a job: pgq_add() makes it `ready` (possibly in the future:
 * scheduled; or `waiting` until the jobs of opts.after are done), pgq_claim() leases it to a worker (`running`, with a fresh
 * lease token), and the worker ends the attempt with pgq_complete() (`done`),
 * pgq_fail() (back to `ready` after a backoff computed by PostgreSQL, or
 * `dead` after max_retries) or pgq_release() (back to `ready`, no attempt
 * spent). Every one of these is conditional on the lease token: a worker
 * whose lease expired and whose job was reaped and claimed again changes
 * nothing and is told `lease_lost`. pgq_heartbeat() keeps leases alive;
 * pgq_reap() turns expired leases into failed attempts ("lease expired"). */
#ifndef PGQ_H
#define PGQ_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PGQ_VERSION "0.1.0"
#define PGQ_MUSTCHECK __attribute__((warn_unused_result))
/* What libpgq.so exports. The library is built with -fvisibility=hidden,
 * so a function without PGQ_API stays internal to it (tests/layout_test.c
 * fails on any exported name without the pgq_ prefix). */
#define PGQ_API __attribute__((visibility("default")))

/* "Use the job type's default" for int options. */
#define PGQ_DEFAULT INT_MIN

/* Length of a lease token as text (a UUID), without the NUL. */
#define PGQ_TOKEN_LEN 36

typedef struct pgq_conn pgq_conn;

/* ---- connection -------------------------------------------------------- */

/* Connect to url (a libpq URI or key=value string; NULL or "" uses the
 * libpq environment). 0 and *out on success; the caller owns *out. */
PGQ_API int pgq_connect(const char *url, pgq_conn **out, char *err, size_t errlen) PGQ_MUSTCHECK;

/* What sits between pgq and PostgreSQL. Through a pooler in transaction
 * mode (PgBouncer's pool_mode = transaction) consecutive transactions may
 * run on different server connections, so nothing may outlive one: pgq then
 * sends every statement unnamed (no prepared statements: PgBouncer 1.18
 * cannot keep them), sets nothing for the session (the server's default
 * isolation must be READ COMMITTED, PostgreSQL's default; checked at
 * connect), and migrates under transaction-level locks. Session pooling is
 * a direct connection as far as pgq can tell. AUTO: the environment's
 * PGQ_POOLER ("transaction", "session" or "none"; unset: none), which is
 * what pgq_connect uses. */
typedef enum pgq_pooler {
    PGQ_POOLER_AUTO = 0,
    PGQ_POOLER_NONE,
    PGQ_POOLER_TRANSACTION,
} pgq_pooler;

PGQ_API int pgq_connect_via(const char *url, pgq_pooler pooler, pgq_conn **out, char *err,
                    size_t errlen) PGQ_MUSTCHECK;

/* "transaction", "session" or "none" into *out (session is none for pgq);
 * -1 and a message naming the value otherwise. */
PGQ_API int pgq_pooler_parse(const char *text, pgq_pooler *out, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Whether c goes through a transaction pooler (see pgq_pooler). */
PGQ_API bool pgq_conn_txpooled(const pgq_conn *c);

/* A pgq_conn over the caller's open libpq connection (a PGconn *), so that
 * pgq_add and pgq_add_batch run inside the caller's transaction: the jobs
 * exist only if the caller commits, and workers are woken only then
 * (NOTIFY is delivered at commit). Borrowed: pgq never closes,
 * reconfigures or reconnects it (pgq_disconnect frees only the wrapper;
 * pgq_reconnect refuses) and prepares nothing on it. The transaction
 * should be READ COMMITTED (PostgreSQL's default): under REPEATABLE READ a
 * concurrent add with the same idempotency key may fail instead of
 * returning the existing job. NULL when pg is NULL or out of memory. */
PGQ_API pgq_conn *pgq_conn_wrap(void *pg);

/* Close and free (a wrapped connection: the wrapper only). Accepts NULL. */
PGQ_API void pgq_disconnect(pgq_conn *c);

/* Re-establish a broken connection (same parameters). 0 when connected. */
PGQ_API int pgq_reconnect(pgq_conn *c, char *err, size_t errlen) PGQ_MUSTCHECK;

/* True when the connection is up as far as libpq knows. */
PGQ_API bool pgq_connected(const pgq_conn *c);

/* The underlying libpq connection, for LISTEN and tests (a PGconn *). The
 * pgq_conn keeps owning it. */
PGQ_API void *pgq_conn_pg(pgq_conn *c);

/* keep false: jobs completed through this connection are deleted at once,
 * with their history and effects, instead of kept as done until pruned
 * (a pool with keep_done = 0 sets it: one delete instead of a new row
 * version and its index entries). Default true. */
PGQ_API void pgq_conn_set_keep_done(pgq_conn *c, bool keep);

/* url as it may be shown: the password of a URI (user:PASSWORD@) or of a
 * key=value string (password=...) replaced by ***. Always NUL-terminated. */
PGQ_API void pgq_url_redact(const char *url, char *out, size_t outlen);

/* true when url holds a password (user:PASSWORD@ or password=...). */
PGQ_API bool pgq_url_has_password(const char *url);

/* Overwrite a command-line argument that holds a URL with its redacted form
 * (padded with NULs, cut to the argument's length), so that `ps` and
 * /proc/PID/cmdline no longer show the password. The caller keeps a copy
 * made before. */
PGQ_API void pgq_url_hide_arg(char *arg);

/* Read a database URL from path (the first line; a trailing newline and
 * spaces dropped): --db-file, for credentials kept out of argv and the
 * environment. Returns a malloc'd string, or NULL with err naming the file
 * (unreadable, empty, or more than one non-empty line). */
PGQ_API char *pgq_url_from_file(const char *path, char *err, size_t errlen);

/* ---- schema ------------------------------------------------------------ */

typedef struct pgq_migration_status {
    int version;
    const char *name;       /* static string, the migration's file name */
    bool applied;
    char applied_at[40];    /* timestamp text, "" when pending */
} pgq_migration_status;

/* Apply pending migrations in order, each in its own transaction, under an
 * advisory lock so concurrent migrates are safe. *applied (may be NULL) gets
 * how many this call applied. Refuses a schema newer than this library. */
PGQ_API int pgq_migrate(pgq_conn *c, int *applied, char *err, size_t errlen) PGQ_MUSTCHECK;

/* The same, stopping at migration `target` (a version this library knows),
 * as an older pgq whose newest migration it was would have left the schema.
 * A database already past target is refused: migrations only go forward. */
PGQ_API int pgq_migrate_to(pgq_conn *c, int target, int *applied, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Every known migration with whether it is applied. *out is malloc'd
 * (free() it); also lists applied versions this binary does not know. */
PGQ_API int pgq_migrate_status(pgq_conn *c, pgq_migration_status **out, size_t *n,
                       char *err, size_t errlen) PGQ_MUSTCHECK;

/* Whether the database's job state machine (migrations/state_machine.sql,
 * applied by a migrate to this library's version) is this library's text:
 * *current, and applied_at (40 bytes) its time, "" when never applied. */
PGQ_API int pgq_state_machine_status(pgq_conn *c, bool *current, char applied_at[40],
                             char *err, size_t errlen) PGQ_MUSTCHECK;

/* 0 when the schema is exactly at this library's version and its state
 * machine is this library's; otherwise -1 and a message saying to migrate
 * (older) or upgrade pgq (newer). */
PGQ_API int pgq_schema_check(pgq_conn *c, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Highest migration version compiled into this library. */
PGQ_API int pgq_schema_version(void);

/* ---- queue names ------------------------------------------------------- */

/* The longest queue name, in characters (Unicode code points). */
#define PGQ_QUEUE_NAME_MAX 100

/* The one rule for queue names, held by pool.ini, every call below that
 * takes a queue, the CLI and pgq.enqueue: 1 to PGQ_QUEUE_NAME_MAX
 * characters of valid UTF-8, no ASCII whitespace (space, \t, \n, \r, \v,
 * \f). 0 when name keeps it; else -1 with what is wrong in err (byte
 * offsets count from 0), e.g.
 *   queue name "bulk emails" contains whitespace at byte offset 4
 * Pure: any thread may call it. */
PGQ_API int pgq_queue_name_check(const char *name, char *err, size_t errlen) PGQ_MUSTCHECK;

/* ---- job types --------------------------------------------------------- */

typedef struct pgq_field {
    const char *key;
    const char *json_type;  /* string, number, boolean, object, array, null */
} pgq_field;

typedef struct pgq_type_def {
    const char *type;
    const char *queue;          /* NULL: "default" */
    const pgq_field *required;  /* the payload contract */
    size_t nrequired;
    int max_retries;            /* PGQ_DEFAULT: 5 */
    int priority;               /* PGQ_DEFAULT: 0 */
    int64_t timeout_ms;         /* <= 0: 60 s */
    int64_t backoff_base_ms;    /* < 0: 1 s */
    int64_t backoff_max_ms;     /* < 0: 1 h */
    int concurrency;            /* fleet-wide at most this many running; <= 0: no limit */
    int rate_count;             /* at most this many starts per rate_ms window, fleet-wide; */
    int64_t rate_ms;            /*   either <= 0: no rate limit */
    int max_snoozes;            /* snoozes per job; PGQ_DEFAULT (or < 0): 100 */
    int64_t max_payload;        /* largest payload in bytes, as pgq.payload_size() measures
                                 * it (the size as jsonb); 0: PGQ_MAX_PAYLOAD_DEFAULT;
                                 * < 0: no limit of pgq's own (jsonb's own applies) */
} pgq_type_def;

/* The payload limit of a type that names none: 1 MiB (see README, "Payload size"). */
#define PGQ_MAX_PAYLOAD_DEFAULT (1024 * 1024)

/* Create or update n job types in one transaction. */
PGQ_API int pgq_types_register(pgq_conn *c, const pgq_type_def *defs, size_t n,
                       char *err, size_t errlen) PGQ_MUSTCHECK;

/* The same, recording `who` as the registrant. With replace false (a pool
 * at start or reload) a type whose registered definition differs is not
 * replaced when `pgq types apply` registered it, or another pool that is
 * alive (fresh heartbeat) or registered it in the last minute: -1, and the
 * message names the type, the registrant and what differs. With replace
 * true (pgq types apply: the operator's explicit word) it is. */
PGQ_API int pgq_types_register_as(pgq_conn *c, const pgq_type_def *defs, size_t n, const char *who,
                          bool replace, char *err, size_t errlen) PGQ_MUSTCHECK;

/* One registered type, as text, for listing. */
typedef struct pgq_type_info {
    char *type, *queue, *required, *updated_at;  /* required: the contract as JSON */
    int max_retries, priority;
    int64_t timeout_ms, backoff_base_ms, backoff_max_ms;
    int concurrency;              /* 0: no limit */
    int rate_count;               /* 0: no rate limit; else per rate_ms */
    int64_t rate_ms;
    int max_snoozes;
    int64_t max_payload;          /* bytes (pgq.payload_size); 0: no limit of pgq's own */
    int64_t running;              /* limited types: running now, by the claim's counters */
    int64_t window_starts;        /* rate-limited types: starts in the current window */
} pgq_type_info;

/* All registered types ordered by name; free with pgq_types_free. */
PGQ_API int pgq_types_list(pgq_conn *c, pgq_type_info **out, size_t *n, char *err, size_t errlen) PGQ_MUSTCHECK;
PGQ_API void pgq_types_free(pgq_type_info *t, size_t n);

/* ---- enqueue ----------------------------------------------------------- */

typedef struct pgq_add_opts {
    const char *queue;            /* NULL: the type's queue */
    int priority;                 /* PGQ_DEFAULT: the type's; lower runs first */
    int64_t delay_ms;             /* run this much later (0: now) */
    const char *run_at;           /* or an absolute timestamptz text; beats delay */
    int max_retries;              /* PGQ_DEFAULT: the type's */
    const char *idempotency_key;  /* NULL: none */
    int64_t unique_for_ms;        /* > 0: the key dedups only this long after its job was
                                   * added (done or not); after it a new job is made. 0: the
                                   * key lives as long as its job row. Needs a key. */
    bool replace;                 /* debounce: a job holding the key that is still waiting
                                   * (ready, never started) takes this payload and run_at
                                   * instead; its id is returned (duplicate and replaced).
                                   * Needs a key. */
    /* Dependencies: the job is `waiting`, not claimable, until every job it
     * waits for is done; when one of them ends dead or cancelled, so does
     * this job (and the jobs waiting for it). A parent done already counts
     * as done; an unknown, dead or cancelled one is refused, naming it. */
    const int64_t *after;         /* ids of existing jobs to wait for (n_after of them) */
    size_t n_after;
    const size_t *after_items;    /* in pgq_add_batch: 0-based indexes of earlier items of
                                   * the same batch to wait for (n_after_items of them) */
    size_t n_after_items;
} pgq_add_opts;

#define PGQ_ADD_OPTS_INIT { NULL, PGQ_DEFAULT, 0, NULL, PGQ_DEFAULT, NULL, 0, false, NULL, 0, \
                            NULL, 0 }

typedef struct pgq_add_result {
    int64_t id;
    bool duplicate;   /* the idempotency key existed: id is the existing job */
    bool replaced;    /* ... and it took this payload and run_at (opts.replace) */
} pgq_add_result;

/* Enqueue one job; returns once it is committed. payload is JSON text and
 * must satisfy the type's contract. opts may be NULL. */
PGQ_API int pgq_add(pgq_conn *c, const char *type, const char *payload, const pgq_add_opts *opts,
            pgq_add_result *res, char *err, size_t errlen) PGQ_MUSTCHECK;

typedef struct pgq_add_item {
    const char *type;
    const char *payload;
    pgq_add_opts opts;
} pgq_add_item;

/* Enqueue n jobs in one round trip and one transaction: all or nothing.
 * res[i] answers items[i]. An error names the item ("item 7: ..."). */
PGQ_API int pgq_add_batch(pgq_conn *c, const pgq_add_item *items, size_t n, pgq_add_result *res,
                  char *err, size_t errlen) PGQ_MUSTCHECK;

/* ---- working a job ----------------------------------------------------- */

typedef struct pgq_job {
    int64_t id;
    const char *queue;
    const char *type;
    const char *payload;           /* JSON text */
    int attempt;                   /* 1-based */
    int max_retries;
    int priority;
    int64_t timeout_ms;            /* from the job type */
    char lease_token[PGQ_TOKEN_LEN + 1];
    int64_t run_at_us;             /* when it became due: microseconds since the epoch
                                    * by the database's clock (0 when unknown) */
} pgq_job;

/* Claim the next ready job of the given queues (priority, run_at, id order;
 * FOR UPDATE SKIP LOCKED) for `worker` with a lease of lease_ttl_ms. *job is
 * NULL when none is ready; otherwise the caller frees it with pgq_job_free. */
PGQ_API int pgq_claim(pgq_conn *c, const char *const *queues, size_t nqueues, const char *worker,
              int64_t lease_ttl_ms, pgq_job **job, char *err, size_t errlen) PGQ_MUSTCHECK;

PGQ_API void pgq_job_free(pgq_job *job);   /* accepts NULL */

/* What is known of an attempt's execution; -1 (or 0 for term_signal) when
 * not applicable. */
typedef struct pgq_attempt_info {
    int exit_code;
    int term_signal;
    int64_t cpu_ms;
    int64_t max_rss_kb;
} pgq_attempt_info;

#define PGQ_ATTEMPT_INFO_INIT { -1, 0, -1, -1 }

/* Renew n leases (ids[i] with tokens[i]) to now + lease_ttl_ms in one
 * statement. lost[i] is set true for each lease no longer held. */
PGQ_API int pgq_heartbeat(pgq_conn *c, const int64_t *ids, const char *const *tokens, size_t n,
                  int64_t lease_ttl_ms, bool *lost, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Mark the job done. *lease_lost true (and nothing changed) when the token
 * no longer holds the job. info may be NULL. */
PGQ_API int pgq_complete(pgq_conn *c, int64_t id, const char *token, const pgq_attempt_info *info,
                 bool *lease_lost, char *err, size_t errlen) PGQ_MUSTCHECK;

/* One finished attempt to record as done: the job, its lease token, and
 * what is known of its execution (info may be NULL). result (may be NULL):
 * the job's result, stored with the done attempt (pgq show, pgq result,
 * pgq.result() in SQL); UTF-8 text as PostgreSQL accepts it, else the
 * completion is refused naming the job. result_note (may be NULL): what
 * became of the handler's output when result is not all of it ("cut to
 * the first 65536 of 80000 bytes ...", "not stored: ..."); recorded with
 * it. Both are borrowed for the call. */
typedef struct pgq_ack {
    int64_t id;
    const char *token;
    const pgq_attempt_info *info;
    const char *result;
    const char *result_note;
} pgq_ack;

/* The hot path: mark nacks attempts done and claim up to max_jobs next jobs
 * of the given queues, in one statement and one transaction (one commit
 * per job for a worker that passes its finished job and max_jobs 1; a
 * batching pool passes many of each). Each ack is fenced by its token:
 * lost[i] (may be NULL when nacks is 0) is set true when acks[i]'s lease no
 * longer held its job, and nothing was changed for it. jobs[0..*njobs) get
 * the claimed jobs in claim order (free each with pgq_job_free). queues may
 * be empty (nqueues 0) or max_jobs 0 to only complete. On error nothing was
 * done (the transaction rolled back). */
PGQ_API int pgq_complete_claim(pgq_conn *c, const pgq_ack *acks, size_t nacks, bool *lost,
                       const char *const *queues, size_t nqueues, const char *worker,
                       int64_t lease_ttl_ms, size_t max_jobs, pgq_job **jobs, size_t *njobs,
                       char *err, size_t errlen) PGQ_MUSTCHECK;

/* Claim hints (core/hints.c): where a process's next claim of each queue
 * may start, so that claims stay cheap while another session pins the
 * xmin horizon (every claim would otherwise walk the index entries of all
 * jobs claimed since the pin). Shared by threads (it has its own lock).
 * queues: those the claims use. better_ms: how often a claim also looks
 * at better priorities than its hint's (a scheduled job of a better
 * priority coming due is found then; a pool uses its poll interval).
 * forget_ms: how often one claim searches from the start, the others
 * keeping their hints (the safety net for what no note announces; a pool
 * uses 10 s). */
typedef struct pgq_hints pgq_hints;
PGQ_API pgq_hints *pgq_hints_new(const char *const *queues, size_t n, int64_t better_ms,
                         int64_t forget_ms);   /* NULL: out of memory */
PGQ_API void pgq_hints_free(pgq_hints *h);              /* accepts NULL */
/* A notification a LISTEN connection received (channel, payload): on
 * pgq_ready ("QUEUE PRIORITY RUN_AT_US ID DUE", a job made ready) the
 * queue's next claim starts no later than there; pgq_jobs ("QUEUE",
 * something due) changes nothing. Malformed notes are ignored. True when
 * the queue is one of the hints'. A pool listens on both and wakes a
 * worker on pgq_jobs. */
PGQ_API bool pgq_hints_note(pgq_hints *h, const char *channel, const char *payload);
/* Drop every hint (after a lost LISTEN connection, say). */
PGQ_API void pgq_hints_forget(pgq_hints *h);

/* pgq_complete_claim with claim hints (NULL: none, search everything). A
 * failed call forgets the hints (the claim may have rolled back). */
PGQ_API int pgq_complete_claim_hinted(pgq_conn *c, pgq_hints *hints, const pgq_ack *acks,
                              size_t nacks, bool *lost, const char *const *queues,
                              size_t nqueues, const char *worker, int64_t lease_ttl_ms,
                              size_t max_jobs, pgq_job **jobs, size_t *njobs, char *err,
                              size_t errlen) PGQ_MUSTCHECK;

/* pgq_complete_claim_hinted that also says how each held ack ended:
 * snoozed[i] (may be NULL) is set true when acks[i]'s job went back to
 * ready instead of done, because a snooze was asked during the attempt
 * (pgq_snooze: an exec handler's `pgq snooze`, or pgq_ctx_snooze), false
 * otherwise (done, or lease lost). A pool reports SNOOZED from it. */
PGQ_API int pgq_complete_claim_snoozed(pgq_conn *c, pgq_hints *hints, const pgq_ack *acks,
                                       size_t nacks, bool *lost, bool *snoozed,
                                       const char *const *queues, size_t nqueues,
                                       const char *worker, int64_t lease_ttl_ms,
                                       size_t max_jobs, pgq_job **jobs, size_t *njobs,
                                       char *err, size_t errlen) PGQ_MUSTCHECK;

typedef struct pgq_fail_result {
    bool lease_lost;     /* nothing changed */
    bool dead;           /* no retries left: dead-lettered */
    double retry_in_s;   /* when not dead: delay until the next attempt */
} pgq_fail_result;

/* End the attempt as failed with `error`; retried with backoff or dead. */
PGQ_API int pgq_fail(pgq_conn *c, int64_t id, const char *token, const char *error,
             const pgq_attempt_info *info, pgq_fail_result *res,
             char *err, size_t errlen) PGQ_MUSTCHECK;

/* Give the job back (ready, attempt not counted), e.g. at shutdown. */
PGQ_API int pgq_release(pgq_conn *c, int64_t id, const char *token, bool *lease_lost,
                char *err, size_t errlen) PGQ_MUSTCHECK;

/* Turn up to `limit` expired leases (of any pool) into failed attempts with
 * the error "lease expired". *reaped (may be NULL) gets how many. */
PGQ_API int pgq_reap(pgq_conn *c, int limit, int *reaped, char *err, size_t errlen) PGQ_MUSTCHECK;

/* ---- run_once: at-most-once side effects (DESIGN.md promise 7) ---------- */

typedef enum pgq_once_result {
    PGQ_ONCE_RAN = 0,     /* fn ran now and succeeded; recorded done */
    PGQ_ONCE_SKIPPED,     /* done by an earlier attempt: fn not run */
    PGQ_ONCE_IN_DOUBT,    /* an earlier attempt died while fn ran: not run again */
    PGQ_ONCE_FAILED,      /* fn ran and failed cleanly: record removed, a retry may try again */
    PGQ_ONCE_LEASE_LOST,  /* this worker no longer holds the job: fn not run */
    PGQ_ONCE_ERROR        /* database error; see err (fn not run, or its outcome unrecorded) */
} pgq_once_result;

/* fn returns 0 on success, -1 on failure with a message in err. */
typedef int (*pgq_once_fn)(void *arg, char *err, size_t errlen);

/* Run fn at most once for (job, key) across retries, crashes and workers:
 * records the key as started (fenced by the lease, its own committed
 * transaction), runs fn, then records done (or removes the record when fn
 * failed). Uses c from the calling thread only. */
PGQ_API pgq_once_result pgq_run_once(pgq_conn *c, int64_t job_id, const char *token, const char *key,
                             pgq_once_fn fn, void *arg, char *err, size_t errlen);

/* The two halves of pgq_run_once, for callers that run the effect
 * elsewhere (pgq once KEY -- CMD). begin answers PGQ_ONCE_RAN to mean "go
 * ahead, recorded as started"; end records the outcome. */
PGQ_API pgq_once_result pgq_once_begin(pgq_conn *c, int64_t job_id, const char *token, const char *key,
                               char *err, size_t errlen);
PGQ_API int pgq_once_end(pgq_conn *c, int64_t job_id, const char *token, const char *key,
                 bool succeeded, char *err, size_t errlen) PGQ_MUSTCHECK;

PGQ_API const char *pgq_once_result_name(pgq_once_result r);

/* ---- snooze: back to ready later, no attempt spent ----------------------- */

typedef enum pgq_snooze_result {
    PGQ_SNOOZE_ASKED = 0,     /* recorded: when the attempt ends done, the job goes back to
                               * ready delay_ms later, the attempt not counted */
    PGQ_SNOOZE_REFUSED,       /* the job has snoozed its type's max_snoozes times: not
                               * recorded (err says so); the attempt ends as the handler says */
    PGQ_SNOOZE_LEASE_LOST,    /* the token no longer holds the job */
    PGQ_SNOOZE_ERROR          /* bad delay or database error; see err */
} pgq_snooze_result;

/* Ask that running job `job_id` (held with `token`) be snoozed for
 * delay_ms (0 to 100 years) when its attempt ends done (pgq.snooze,
 * fenced by the token and a live lease). A failure, timeout, release,
 * cancel or expired lease drops the request; a second call in the same
 * attempt replaces the delay. err is filled for every result but ASKED. */
PGQ_API pgq_snooze_result pgq_snooze(pgq_conn *c, int64_t job_id, const char *token,
                                     int64_t delay_ms, char *err, size_t errlen);

/* ---- operating --------------------------------------------------------- */

/* Move the given dead or cancelled jobs back to ready with fresh retries
 * (waiting, for a job whose parents are not all done; one with a dead or
 * cancelled parent not requeued in the same call stays); done[i] (may be
 * NULL) tells which ones moved. Concurrent requeues of the
 * same job move it once. Recorded in pgq.actions with `who`. */
PGQ_API int pgq_requeue(pgq_conn *c, const int64_t *ids, size_t n, const char *who, bool *done,
                int64_t *count, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Requeue every job in `state` ("dead" or "cancelled") matching queue and
 * type (NULL: any). *count gets how many moved. */
PGQ_API int pgq_requeue_matching(pgq_conn *c, const char *state, const char *queue, const char *type,
                         const char *who, int64_t *count, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Cancel the given waiting, ready, scheduled or running jobs; done[i] tells
 * which. The jobs waiting for them are cancelled too (not in done).
 * A running job's lease is revoked in the same transaction (its history
 * gets a cancelled attempt "cancelled by WHO") and its pool is told to stop
 * the handler (NOTIFY pgq_cancel; its heartbeat finds the lease lost as a
 * fallback). */
PGQ_API int pgq_cancel(pgq_conn *c, const int64_t *ids, size_t n, const char *who, bool *done,
               int64_t *count, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Pause (pause true) or resume queues: a paused queue is claimed by no
 * pool; jobs already running finish and adds are still accepted. changed[i]
 * (may be NULL) tells whether queues[i] changed state; each call that
 * changes one is recorded in pgq.actions with who. Resuming wakes the
 * pools. A name that breaks the queue-name rule is refused, naming it. */
PGQ_API int pgq_pause(pgq_conn *c, const char *const *queues, size_t n, bool pause, const char *who,
              bool *changed, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Delete done jobs finished more than keep_done_ms ago and dead/cancelled
 * ones older than keep_dead_ms, at most `limit` rows; *deleted gets how many. */
PGQ_API int pgq_prune(pgq_conn *c, int64_t keep_done_ms, int64_t keep_dead_ms, int limit,
              int64_t *deleted, char *err, size_t errlen) PGQ_MUSTCHECK;

/* pgq_prune as one round of a pass of several: upto ("" for the first
 * round) is where the previous round's done jobs ended and gets where this
 * one's did, so that a round does not walk again the index entries of the
 * rows the rounds before it deleted (vacuum may not have removed them yet:
 * under a pinned xmin a pass of many rounds would be quadratic). */
PGQ_API int pgq_prune_round(pgq_conn *c, int64_t keep_done_ms, int64_t keep_dead_ms, int limit,
                    char *upto, size_t uptolen, int64_t *deleted, char *err,
                    size_t errlen) PGQ_MUSTCHECK;

/* How a count of pgq_stats is known. Counts are read through index ranges
 * that stop at a cap (PGQ_STATS_CAP rows per range), so that the cost of
 * asking does not grow with the table: below the cap a count is exact;
 * above it, an estimate from the planner's statistics, or, when that is
 * lower than what the range held, a lower bound. */
typedef enum pgq_count_kind {
    PGQ_COUNT_EXACT = 0,
    PGQ_COUNT_ESTIMATE,   /* "~N" */
    PGQ_COUNT_AT_LEAST    /* "N+" */
} pgq_count_kind;

#define PGQ_STATS_CAP 5000

typedef struct pgq_queue_stats {
    char queue[801];      /* room for 200 characters of UTF-8: names of up to 200
                           * could be stored before the 100-character rule */
    int64_t ready;        /* due now */
    int64_t scheduled;    /* future run_at, never tried */
    int64_t retrying;     /* future run_at after a failure */
    int64_t running, dead, cancelled, done;   /* running is always exact */
    int64_t done_last_hour;
    double oldest_ready_s;  /* how long the longest-waiting due job has been due; -1: none */
    bool paused;            /* pgq pause: claimed by no pool */
    int64_t waiting;        /* waiting for other jobs to be done (dependencies) */
    /* how each count above is known (scheduled and retrying share one) */
    pgq_count_kind ready_is, future_is, dead_is, cancelled_is, done_is, done_last_hour_is,
                   waiting_is;
    /* Recent work: done jobs and failed attempts (failed, lease expired) of
     * the last five minutes, over the seconds of it they cover (300 unless
     * the cap cut it short); a rate is the count over its window. Jobs
     * deleted at once (keep_done = 0) are not seen. */
    int64_t done_5m, failed_5m;
    double done_5m_window_s, failed_5m_window_s;
    int pools;              /* live pools (heartbeat within the stale limit) claiming from it */
} pgq_queue_stats;

/* True for a queue that holds due jobs which no live pool claims (and that
 * is not paused): its jobs would wait silently. */
PGQ_API bool pgq_queue_unserved(const pgq_queue_stats *q);

/* Counts per queue (ordered by name) with PGQ_STATS_CAP and a pool silent
 * for 60 s counted as gone; *out is malloc'd (free() it). */
PGQ_API int pgq_stats(pgq_conn *c, pgq_queue_stats **out, size_t *n, char *err, size_t errlen) PGQ_MUSTCHECK;

/* pgq_stats with its cap (rows per index range, > 0) and the heartbeat age
 * after which a pool no longer counts as serving its queues. */
PGQ_API int pgq_stats_capped(pgq_conn *c, int cap, double stale_s, pgq_queue_stats **out,
                             size_t *n, char *err, size_t errlen) PGQ_MUSTCHECK;
/* Prometheus's text format (core/prom.c), shared by `pgq stats
 * --prometheus` and a pool's metrics endpoint so that both name the same
 * figures the same way. f is any stdio stream (open_memstream for a
 * buffer). A label value, quoted, with backslash, double quote and newline
 * escaped: */
PGQ_API void pgq_prom_label(FILE *f, const char *s);
/* The fleet's gauges from pgq_stats: pgq_jobs{queue,state},
 * pgq_jobs_done_last_hour{queue}, pgq_queue_oldest_ready_seconds{queue},
 * pgq_queue_paused{queue}, pgq_jobs_exact{queue,state},
 * pgq_queue_pools{queue}, pgq_queue_unserved{queue},
 * pgq_queue_done_per_second{queue}, pgq_queue_failed_per_second{queue},
 * each with its HELP and TYPE lines. */
PGQ_API void pgq_prom_write_stats(FILE *f, const pgq_queue_stats *s, size_t n);
/* pgq_build_info{version,schema} 1, with HELP and TYPE. */
PGQ_API void pgq_prom_write_build_info(FILE *f);

/* A job's whole story, as text for display. */
typedef struct pgq_attempt_row {
    int attempt;
    const char *outcome, *worker, *error, *started_at, *finished_at;
    double duration_ms;
    int exit_code, term_signal;          /* -1 / 0 when unknown */
    int64_t cpu_ms, max_rss_kb;          /* -1 when unknown */
} pgq_attempt_row;

typedef struct pgq_effect_row {
    const char *key, *state, *started_at, *finished_at;
    int attempt;
    bool in_doubt;
} pgq_effect_row;

/* A job's parent or child (dependencies): its id and state; "gone" for a
 * parent pruned or deleted since (it was done). */
typedef struct pgq_dep_row {
    int64_t id;
    const char *state;
} pgq_dep_row;

typedef struct pgq_job_detail {
    int64_t id;
    const char *queue, *type, *state, *payload_pretty, *run_at, *idempotency_key,
               *lease_owner, *lease_expires_at, *last_error, *created_at,
               *started_at, *finished_at;
    int priority, attempts, max_retries;
    pgq_attempt_row *attempts_v; size_t nattempts;
    pgq_effect_row *effects; size_t neffects;
    /* The done attempt's result and its note (see pgq_ack); NULL when none. */
    const char *result, *result_note;
    int waiting_for;                       /* parents not done yet (state waiting) */
    pgq_dep_row *parents; size_t nparents; /* the jobs it waits (or waited) for, by id */
    pgq_dep_row *children; size_t nchildren;  /* the jobs waiting for it, by id: at most
                                            * PGQ_DETAIL_CHILDREN of nchildren_total */
    size_t nchildren_total;
    void *priv_;
} pgq_job_detail;

#define PGQ_DETAIL_CHILDREN 1000

/* Load job id. *out NULL (and 0) when there is no such job. Free with
 * pgq_job_detail_free. */
PGQ_API int pgq_job_describe(pgq_conn *c, int64_t id, pgq_job_detail **out, char *err, size_t errlen) PGQ_MUSTCHECK;
PGQ_API void pgq_job_detail_free(pgq_job_detail *d);

/* ---- pools registry (pgq.workers) --------------------------------------- */

/* Register a running pool under a unique name (host:pid:start). */
PGQ_API int pgq_pool_register_row(pgq_conn *c, const char *name, const char *host, int pid, int workers,
                          const char *const *queues, size_t nqueues, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Refresh its heartbeat and in-flight count; re-creates the row if an
 * operator or a cleanup deleted it. Also forgets pools silent for an hour. */
PGQ_API int pgq_pool_beat_row(pgq_conn *c, const char *name, int in_flight, char *err, size_t errlen) PGQ_MUSTCHECK;

/* Remove the row at shutdown. */
PGQ_API int pgq_pool_deregister_row(pgq_conn *c, const char *name, char *err, size_t errlen) PGQ_MUSTCHECK;

/* ---- periodic jobs (pgq.cron) --------------------------------------------
 * A schedule's row is shared by every pool that has its [cron NAME]
 * section; times are milliseconds since the epoch, -1 for none. */

/* One schedule as a pool knows it. */
typedef struct pgq_cron_def {
    const char *name, *schedule, *timezone, *type;
    const char *queue;      /* NULL: the type's */
    const char *payload;    /* JSON text */
    int priority;           /* PGQ_DEFAULT: the type's */
} pgq_cron_def;

/* Register d at a pool's start: a new schedule (or one whose schedule or
 * zone changed) starts at prev_ms, the latest tick at or before now, so it
 * does not fire a past tick. *last_ms gets the row's last tick. */
PGQ_API int pgq_cron_register(pgq_conn *c, const pgq_cron_def *d, int64_t prev_ms, int64_t next_ms,
                              const char *who, int64_t *last_ms, char *err, size_t errlen) PGQ_MUSTCHECK;

typedef enum pgq_cron_outcome {
    PGQ_CRON_ADDED,         /* this call added the tick's job */
    PGQ_CRON_TAKEN,         /* the tick (or a later one) has its job already */
    PGQ_CRON_EARLY,         /* the database's clock has not reached the tick */
} pgq_cron_outcome;

/* Add the job of tick tick_ms of d, unless any caller (any pool) already
 * did: exactly one job per tick across the fleet (pgq.cron_fire). *job_id
 * gets the new job's id when ADDED. */
PGQ_API int pgq_cron_fire(pgq_conn *c, const pgq_cron_def *d, int64_t tick_ms, int64_t next_ms,
                          const char *who, pgq_cron_outcome *out, int64_t *job_id, char *err,
                          size_t errlen) PGQ_MUSTCHECK;

/* A schedule's row, for pgq cron list and the dashboard. */
typedef struct pgq_cron_row {
    char *name, *schedule, *timezone, *type, *queue;   /* queue NULL: the type's */
    int64_t last_tick_ms, next_tick_ms;                /* -1: none */
    int64_t last_job;                                  /* -1: none */
    char *last_job_state;   /* NULL: no job, or it was pruned */
    char *fired_by;         /* the pool that added the last job, NULL if none */
} pgq_cron_row;

/* Every schedule's row, by name; free with pgq_cron_rows_free. */
PGQ_API int pgq_cron_list(pgq_conn *c, pgq_cron_row **out, size_t *n, char *err, size_t errlen) PGQ_MUSTCHECK;
PGQ_API void pgq_cron_rows_free(pgq_cron_row *rows, size_t n);

#endif
