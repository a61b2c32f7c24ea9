/* Database plumbing for libpgq: error text, prepared statements, arrays.
 *
 * The hot statements (claim, complete, heartbeat, ...) live in one table
 * below and are prepared the first time a connection uses them; a bit per
 * statement in pgq_conn remembers which are prepared, and a reconnect clears
 * the bits. Everything goes through PQexecPrepared/PQexecParams: no value is
 * ever spliced into SQL text.
 *
 * The statements only call the state machine's functions
 * (migrations/state_machine.sql), which are the only writers of job
 * rows. */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stmt_def {
    const char *name;
    const char *sql;
};

/* Every statement calls a function of the state machine's one home
 * (migrations/state_machine.sql): no statement here writes a job row. */
static const struct stmt_def stmts[STMT__COUNT] = {
    [STMT_ADD] = { "pgq_add",
        "SELECT ord, id, duplicate, replaced FROM pgq.enqueue($1::text[], $2::text[], $3::text[], "
        "$4::int[], $5::timestamptz[], $6::bigint[], $7::int[], $8::text[], $9::bigint[], "
        "$10::boolean[], $11::int[], $12::bigint[], $13::int[])" },
    [STMT_HEARTBEAT] = { "pgq_heartbeat",
        "SELECT id, lease_token FROM pgq.renew($1::bigint[], $2::uuid[], $3::bigint)" },
    [STMT_COMPLETE_CLAIM] = { "pgq_complete_claim",
        "SELECT acked, id, queue, type, payload, attempts, max_retries, priority, lease_token,"
        "  timeout_ms, ord, run_at, state"
        " FROM pgq.complete_claim($1::bigint[], $2::uuid[], $3::int[], $4::int[],"
        "  $5::bigint[], $6::bigint[], $7::text[], $8, $9::bigint, $10::int, $11::int[],"
        "  $12::bigint[], $13::bigint[], $14::boolean, p_keep_done => $15::boolean,"
        "  p_results => $16::text[], p_result_notes => $17::text[])" },
    [STMT_SNOOZE] = { "pgq_snooze",
        "SELECT held, recorded, snoozes, max_snoozes FROM pgq.snooze($1, $2::uuid, $3::bigint)" },
    [STMT_FAIL] = { "pgq_fail",
        "SELECT state, extract(epoch FROM run_at - now()) FROM pgq.fail($1, $2::uuid, $3,"
        " 'failed', $4, $5, $6, $7)" },
    [STMT_RELEASE] = { "pgq_release",
        "SELECT 1 WHERE pgq.release($1, $2::uuid)" },
    [STMT_REAP] = { "pgq_reap",
        "SELECT id, state FROM pgq.reap($1::int)" },
    [STMT_ONCE_BEGIN] = { "pgq_once_begin",
        "SELECT held::int, inserted::int, existing FROM pgq.effect_begin($1, $2::uuid, $3)" },
    [STMT_ONCE_DONE] = { "pgq_once_done",
        "SELECT 1 WHERE pgq.effect_done($1, $2::uuid, $3)" },
    [STMT_ONCE_FORGET] = { "pgq_once_forget",
        "SELECT 1 WHERE pgq.effect_forget($1, $2::uuid, $3)" },
    /* One job: pgq.add. A JSON syntax error surfaces as PostgreSQL's own
     * (22P02/22P05) from the cast; enqueue.c then asks pgq.enqueue for the
     * refusal, which names the item. */
    [STMT_ADD_ONE] = { "pgq_add_one",
        "SELECT id, duplicate, replaced FROM pgq.add($1, $2::jsonb, $3, $4::int, $5::timestamptz,"
        " $6::bigint, $7::int, $8, $9::bigint, coalesce($10::boolean, false))" },
};

int seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* libpq messages end in a newline and may span lines; keep one line. */
static void one_line(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
        s[--n] = '\0';
    for (char *p = s; *p; p++)
        if (*p == '\n' || *p == '\t')
            *p = ' ';
}

int db_error(pgq_conn *c, const PGresult *res, const char *what, char *err, size_t errlen)
{
    char msg[1024];
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (c)
        snprintf(c->sqlstate, sizeof c->sqlstate, "%s", state ? state : "");

    if (primary) {
        if (detail && *detail)
            snprintf(msg, sizeof msg, "%s (%s)", primary, detail);
        else
            snprintf(msg, sizeof msg, "%s", primary);
    } else if (res && *PQresultErrorMessage(res)) {
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
    } else if (c && c->pg && *PQerrorMessage(c->pg)) {
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c->pg));
    } else if (res) {
        snprintf(msg, sizeof msg, "unexpected result %s", PQresStatus(PQresultStatus(res)));
    } else {
        snprintf(msg, sizeof msg, "out of memory or connection lost");
    }
    one_line(msg);
    /* read_only_sql_transaction: this server is a standby (or was demoted
     * in a failover). Nothing done here can succeed on it, so the
     * connection is closed: every caller then reconnects as after a lost
     * connection, and libpq's target_session_attrs=read-write (a multi-host
     * URL, README "High availability") finds the primary. A job in hand is
     * not failed for it: the pool completes it after the reconnect. */
    if (c && c->pg && state && strcmp(state, "25006") == 0) {
        PQfinish(c->pg);
        c->pg = NULL;
        c->prepared = 0;
        return seterr(err, errlen, "%s: %s (a read-only server: reconnecting to find the "
                      "primary)", what, msg);
    }
    /* insufficient_privilege: PostgreSQL names the object; say what to do. */
    if (state && strcmp(state, "42501") == 0)
        return seterr(err, errlen, "%s: %s (the role lacks a grant on pgq's objects: see README, "
                      "\"Roles and grants\")", what, msg);
    return seterr(err, errlen, "%s: %s", what, msg);
}

static PGresult *checked(pgq_conn *c, PGresult *r, ExecStatusType want, const char *what,
                         char *err, size_t errlen)
{
    if (r && PQresultStatus(r) == want)
        return r;
    db_error(c, r, what, err, errlen);
    PQclear(r);
    return NULL;
}

PGresult *db_run(pgq_conn *c, enum db_stmt s, int nparams, const char *const *params,
                 ExecStatusType want, const char *what, char *err, size_t errlen)
{
    uint64_t bit = UINT64_C(1) << s;

    /* Through a transaction pooler the next transaction may meet another
     * server connection, which has not got our prepared statements (and
     * may have another client's of the same name): unnamed, each time. The
     * functions they call keep their own plans per server connection. The
     * same on a borrowed connection, whose owner may DEALLOCATE ALL. */
    if (c->txpool || c->borrowed)
        return checked(c, PQexecParams(c->pg, stmts[s].sql, nparams, NULL, params, NULL, NULL, 0),
                       want, what, err, errlen);
    if (!(c->prepared & bit)) {
        PGresult *r = PQprepare(c->pg, stmts[s].name, stmts[s].sql, 0, NULL);
        if (!checked(c, r, PGRES_COMMAND_OK, what, err, errlen))
            return NULL;
        PQclear(r);
        c->prepared |= bit;
    }
    PGresult *r = PQexecPrepared(c->pg, stmts[s].name, nparams, params, NULL, NULL, 0);
    /* A server restart loses prepared statements even when libpq
     * reconnects; forget them whenever the connection is in doubt. */
    if (PQstatus(c->pg) != CONNECTION_OK)
        c->prepared = 0;
    return checked(c, r, want, what, err, errlen);
}

PGresult *db_query(pgq_conn *c, const char *sql, int nparams, const char *const *params,
                   ExecStatusType want, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
    return checked(c, r, want, what, err, errlen);
}

int db_command(pgq_conn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = checked(c, PQexec(c->pg, sql), PGRES_COMMAND_OK, what, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Append s to an array literal as a quoted element, escaping " and \. */
static char *append_quoted(char *p, const char *s)
{
    *p++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p++ = '"';
    return p;
}

char *db_text_array(const char *const *items, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += items[i] ? 2 * strlen(items[i]) + 3 : 5;
    char *buf = malloc(len), *p = buf;
    if (!buf)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        if (items[i]) {
            p = append_quoted(p, items[i]);
        } else {
            memcpy(p, "NULL", 4);
            p += 4;
        }
    }
    *p++ = '}';
    *p = '\0';
    return buf;
}

char *db_int64_array_nullable(const int64_t *items, const bool *present, size_t n)
{
    char *buf = malloc(n * 21 + 3), *p = buf;
    if (!buf)
        return NULL;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        if (present && !present[i])
            p += sprintf(p, "NULL");
        else
            p += sprintf(p, "%lld", (long long)items[i]);
    }
    *p++ = '}';
    *p = '\0';
    return buf;
}

char *db_int64_array(const int64_t *items, size_t n)
{
    return db_int64_array_nullable(items, NULL, n);
}

int64_t db_int64(const PGresult *r, int row, int col, int64_t fallback)
{
    if (PQgetisnull(r, row, col))
        return fallback;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double db_double(const PGresult *r, int row, int col, double fallback)
{
    if (PQgetisnull(r, row, col))
        return fallback;
    return strtod(PQgetvalue(r, row, col), NULL);
}

bool db_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}
