/* Internal: the pgq_conn struct and helpers shared by core/ modules. */
#ifndef PGQ_DB_H
#define PGQ_DB_H

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgq.h"

/* Statements prepared lazily, once per connection (see db.c's table). */
enum db_stmt {
    STMT_ADD,
    STMT_HEARTBEAT,
    STMT_COMPLETE_CLAIM,
    STMT_SNOOZE,
    STMT_FAIL,
    STMT_RELEASE,
    STMT_REAP,
    STMT_ONCE_BEGIN,
    STMT_ONCE_DONE,
    STMT_ONCE_FORGET,
    STMT_ADD_ONE,
    STMT__COUNT
};

struct pgq_conn {
    PGconn *pg;
    char *url;
    uint64_t prepared;   /* bit per enum db_stmt */
    char sqlstate[6];    /* of the last failure db_error described, "" if none */
    bool delete_done;    /* pgq_conn_set_keep_done(c, false): done jobs deleted at once */
    bool txpool;         /* through a transaction pooler: nothing outlives a transaction */
    bool borrowed;       /* pgq_conn_wrap: the caller's PGconn, never closed or reconfigured */
};

/* 0 when libpq can parse url as a URI or key=value string; otherwise -1
 * and a message that names the fault and shows the URL without its
 * password (core/dburl.c). */
int db_url_check(const char *url, char *err, size_t errlen);

/* Write a formatted message into err (always NUL-terminated). Returns -1 so
 * callers can `return seterr(...)`. */
int seterr(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Describe a failed result (or the connection's error when res is NULL) as
 * "WHAT: primary message (detail)" into err; returns -1. */
int db_error(pgq_conn *c, const PGresult *res, const char *what, char *err, size_t errlen);

/* Run a prepared statement from the table with text params. Returns the
 * result when its status is `want`, else NULL with err filled (the result
 * is cleared). */
PGresult *db_run(pgq_conn *c, enum db_stmt s, int nparams, const char *const *params,
                 ExecStatusType want, const char *what, char *err, size_t errlen);

/* Run ad-hoc parameterized SQL (for rare statements not worth preparing). */
PGresult *db_query(pgq_conn *c, const char *sql, int nparams, const char *const *params,
                   ExecStatusType want, const char *what, char *err, size_t errlen);

/* Run parameterless SQL that returns no rows (BEGIN, COMMIT, ...). */
int db_command(pgq_conn *c, const char *sql, const char *what, char *err, size_t errlen);

/* Build a PostgreSQL array literal ({"a","b"}) from n strings (NULL
 * elements become NULL). Returns malloc'd text or NULL on out of memory. */
char *db_text_array(const char *const *items, size_t n);
char *db_int64_array(const int64_t *items, size_t n);
/* The same with NULL elements where present[i] is false (present may be
 * NULL: all present). */
char *db_int64_array_nullable(const int64_t *items, const bool *present, size_t n);

/* Claim hints (hints.c) as the claim statement's parameters 11..14: array
 * literals of the hints of the claim's queues (all NULL without hints) and
 * whether to search better priorities too. */
struct hints_params {
    const char *prio, *run_at, *id, *better;
    struct hints_snapshot *snap;   /* registered with hints while the claim runs */
    pgq_hints *hints;
};
int hints_claim_params(pgq_hints *h, const char *const *queues, size_t n,
                       struct hints_params *p);
/* The claim took a job at (queue, prio, run_at, id). */
void hints_claimed(const struct hints_params *p, const char *queue, int prio, int64_t run_at,
                   int64_t id);
void hints_params_free(struct hints_params *p);

/* Integer/bool/double field getters: NULL fields give the fallback. */
int64_t db_int64(const PGresult *r, int row, int col, int64_t fallback);
double db_double(const PGresult *r, int row, int col, double fallback);
bool db_bool(const PGresult *r, int row, int col);

#endif
