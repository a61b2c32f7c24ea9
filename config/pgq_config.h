/* pgq_config.h -- pool.ini: loading, validation and the key reference.
 *
 * The structs below are plain data: everything they point to is owned by the
 * pgq_cfg and freed by pgq_cfg_free. A loaded pgq_cfg is never modified by
 * this module again, so any number of threads may read it. Durations are in
 * milliseconds. */
#ifndef PGQ_CONFIG_H
#define PGQ_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgq.h"

enum pgq_handler_kind {
    PGQ_HANDLER_NONE = 0,
    PGQ_HANDLER_EXEC,       /* exec CMD ARGS...: a command run per job */
    PGQ_HANDLER_PLUGIN,     /* plugin PATH SYMBOL: a function in a shared object */
    PGQ_HANDLER_CALLBACK,   /* callback NAME: a C function registered by an embedding program */
};

/* One required payload key; json_type is a jsonb_typeof() name:
 * string, number, boolean, object, array or null. */
typedef struct pgq_cfg_require {
    char *key;
    char *json_type;
} pgq_cfg_require;

/* A rate limit, "N/DURATION": at most count starts per per_ms window. */
typedef struct pgq_cfg_rate {
    int count;                  /* 0: no rate limit */
    int64_t per_ms;
} pgq_cfg_rate;

/* One "[job NAME]" section. */
typedef struct pgq_cfg_type {
    char *name;                 /* from the section header "[job NAME]" */
    int line;                   /* line of the section header */
    char *queue;                /* default "default" */
    enum pgq_handler_kind handler_kind;
    char *handler;              /* the value after the kind word, e.g. "/usr/local/bin/send-email --verbose" */
    char **argv;                /* NULL-terminated. exec: the command split into words (shell-like
                                 * '...' and "..." quoting and backslash escapes, no expansion);
                                 * plugin: {PATH, SYMBOL}; callback: {NAME} */
    size_t argc;
    int handler_line;           /* line of the handler key */
    int64_t timeout_ms;         /* default 60s */
    int max_retries;            /* default 5, 0..1000 */
    int64_t backoff_base_ms;    /* default 1s */
    int64_t backoff_max_ms;     /* default 1h */
    int priority;               /* default 0, -1000..1000; lower runs first */
    pgq_cfg_require *require;   /* payload contract, from "to:string, subject:string" */
    size_t nrequire;
    int concurrency;            /* fleet-wide running at most; 0 (no key): no limit */
    pgq_cfg_rate rate;          /* fleet-wide starts per window; count 0 (no key): none */
    int max_snoozes;            /* default 100 */
    int64_t result_max;         /* bytes of a result kept; default 64KiB, 0..16MiB */
    int64_t max_payload;        /* largest payload in bytes (pgq.payload_size); default 1MiB,
                                 * 0..256MiB; 0: no limit of pgq's own */
    int max_payload_line;       /* line of the max_payload key; 0: the default */
} pgq_cfg_type;

struct pgq_cron;   /* a parsed schedule (config/cron.h) */
struct pgq_tz;     /* a time zone (config/tz.h) */

/* One "[cron NAME]" section: a periodic job, one per tick across the fleet. */
typedef struct pgq_cfg_cron {
    char *name;                 /* from the section header "[cron NAME]" */
    int line;                   /* line of the section header */
    char *schedule;             /* as written: five fields, an @ form or "@every D" */
    int schedule_line;
    struct pgq_cron *cron;      /* the schedule parsed, in zone */
    char *type;                 /* the job type it adds; a [job TYPE] of the same file */
    int type_line;
    char *payload;              /* JSON text, default "{}", meets the type's contract */
    int payload_line;
    char *queue;                /* NULL: the type's queue */
    int priority;               /* meaningful when priority_line > 0; else the type's */
    int priority_line;
    struct pgq_tz *zone;        /* the timezone key, default UTC */
} pgq_cfg_cron;

typedef struct pgq_cfg {
    char *path;                 /* the file it was loaded from */
    char *db_url;               /* [database] url, NULL when absent */
    pgq_pooler pooler;          /* [database] pooler, default none */
    char *listen_url;           /* [database] listen_url, NULL when absent */
    char *handler_url;          /* [database] handler_url (exec handlers' DATABASE_URL), NULL when absent */
    int workers;                /* default 8, 1..256 */
    int batch;                  /* jobs claimed/acked per statement, 1..1000; 0 (no key): adaptive */
    char **queues;              /* default {"default"}; not NULL-terminated, see nqueues */
    size_t nqueues;
    int64_t lease_ttl_ms;       /* default 30s */
    int64_t heartbeat_ms;       /* default 10s, always < lease_ttl_ms */
    int64_t poll_ms;            /* default 1s */
    int64_t shutdown_timeout_ms;/* default 30s */
    int64_t keep_done_ms;       /* default 1d; 0 = delete at once */
    int64_t keep_dead_ms;       /* default 30d */
    char *metrics_listen;       /* [pool] metrics_listen "HOST:PORT", NULL when off */
    pgq_cfg_type *types;        /* in file order */
    size_t ntypes;
    pgq_cfg_cron *crons;        /* in file order */
    size_t ncrons;
} pgq_cfg;

/* Load and validate the ini file at path. Returns 0 with *out owned by the
 * caller (free with pgq_cfg_free), or -1 with *out NULL and a one-line
 * message in err: "FILE:LINE: [section] key: what is wrong" (the first error
 * in the file). Does not look at the filesystem beyond path (handler programs
 * need not exist). Thread-safe. */
PGQ_API int pgq_cfg_load(const char *path, pgq_cfg **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free cfg and everything it owns; accepts NULL. */
PGQ_API void pgq_cfg_free(pgq_cfg *cfg);

/* The job type called name, or NULL. The pointer lives as long as cfg. */
PGQ_API const pgq_cfg_type *pgq_cfg_find_type(const pgq_cfg *cfg, const char *name);

/* Parse a payload contract such as "to:string, subject:string" (an empty or
 * blank string is an empty contract: *out NULL, *n 0). Returns 0 with *out
 * owned by the caller (free with pgq_require_free), or -1 with a message
 * naming the item (`item 2 "to:str": unknown type "str" (...)`). */
PGQ_API int pgq_require_parse(const char *s, pgq_cfg_require **out, size_t *n, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free an array from pgq_require_parse; accepts NULL. */
PGQ_API void pgq_require_free(pgq_cfg_require *r, size_t n);

/* Write the reference of every key as a Markdown table (a header row, then one
 * row per key: section, key, type, default, bounds, description), generated
 * from the same key table that drives parsing. */
PGQ_API void pgq_cfg_write_reference(FILE *f);

/* Register (create or update) every job type of cfg in the database, in one
 * transaction. 0, or -1 with the database's message in err. */
PGQ_API int pgq_cfg_apply_types(pgq_conn *c, const pgq_cfg *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The same as `who` (a pool's name): with replace false a definition that
 * another live pool registered differently is not replaced (see
 * pgq_types_register_as); pgq_cfg_apply_types replaces (pgq types apply). */
PGQ_API int pgq_cfg_apply_types_as(pgq_conn *c, const pgq_cfg *cfg, const char *who, bool replace,
                           char *err, size_t errlen);

#endif /* PGQ_CONFIG_H */
