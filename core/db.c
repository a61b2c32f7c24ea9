/* Database plumbing for libpgq: error text, prepared statements, arrays.
 *
 * The hot statements (claim, complete, heartbeat, ...) live in one table
 * below and are prepared the first time a connection uses them; a bit per
 * statement in pgq_conn remembers which are prepared, and a reconnect clears
 * the bits. Everything goes through PQexecPrepared/PQexecParams: no value is
 * ever spliced into SQL text.
 *
 * A statement that finds a job by id writes `(state = 'running') IS TRUE`
 * (state is NOT NULL, so the same test) rather than `state = 'running'`:
 * the plain form lets a generic plan pick the partial lease index, which
 * the planner believes tiny but which holds an entry for every job claimed
 * since the last vacuum, and scan all of it instead of one primary-key
 * probe (see migration 003). */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stmt_def {
    const char *name;
    const char *sql;
};

static const struct stmt_def stmts[STMT__COUNT] = {
    [STMT_ADD] = { "pgq_add",
        "SELECT ord, id, duplicate FROM pgq.enqueue($1::text[], $2::text[], $3::text[], "
        "$4::int[], $5::timestamptz[], $6::bigint[], $7::int[], $8::text[])" },
    [STMT_HEARTBEAT] = { "pgq_heartbeat",
        "UPDATE pgq.jobs j SET lease_expires_at = now() + $3::bigint * interval '1 millisecond'"
        "  FROM unnest($1::bigint[], $2::uuid[]) AS h(id, token)"
        " WHERE j.id = h.id AND j.lease_token = h.token AND (j.state = 'running') IS TRUE"
        " RETURNING j.id, j.lease_token::text" },
    [STMT_COMPLETE_CLAIM] = { "pgq_complete_claim",
        "SELECT acked, id, queue, type, payload, attempts, max_retries, priority, lease_token,"
        "  timeout_ms, ord"
        " FROM pgq.complete_claim($1::bigint[], $2::uuid[], $3::int[], $4::int[],"
        "  $5::bigint[], $6::bigint[], $7::text[], $8, $9::bigint, $10::int)" },
    [STMT_FAIL] = { "pgq_fail",
        "SELECT state, extract(epoch FROM run_at - now()) FROM pgq.fail($1, $2::uuid, $3,"
        " 'failed', $4, $5, $6, $7)" },
    [STMT_RELEASE] = { "pgq_release",
        "WITH upd AS ("
        "  UPDATE pgq.jobs SET state = 'ready', attempts = attempts - 1,"
        "    lease_token = NULL, lease_expires_at = NULL"
        "   WHERE id = $1 AND lease_token = $2::uuid AND (state = 'running') IS TRUE"
        "  RETURNING id, queue, attempts + 1 AS attempt, lease_owner, started_at),"
        " hist AS ("
        "  INSERT INTO pgq.job_attempts (job_id, attempt, outcome, worker, error, started_at,"
        "    duration_ms)"
        "  SELECT id, attempt, 'released', lease_owner, 'released (not counted)', started_at,"
        "    extract(epoch FROM clock_timestamp() - started_at) * 1000 FROM upd)"
        " SELECT id, pg_notify('pgq_jobs', queue) FROM upd" },
    [STMT_REAP] = { "pgq_reap",
        "SELECT x.id, f.state FROM ("
        "  SELECT id, lease_token FROM pgq.jobs"
        "   WHERE state = 'running' AND lease_expires_at < now()"
        "   ORDER BY lease_expires_at LIMIT $1 FOR UPDATE SKIP LOCKED) x"
        " CROSS JOIN LATERAL pgq.fail(x.id, x.lease_token, 'lease expired', 'lease_expired',"
        "   NULL, NULL, NULL, NULL) f" },
    /* The job row is locked FOR SHARE so that a concurrent reap or
     * re-claim either waits for us or makes us see the new token. */
    [STMT_ONCE_BEGIN] = { "pgq_once_begin",
        "WITH lease AS ("
        "  SELECT id, attempts, lease_owner FROM pgq.jobs"
        "   WHERE id = $1 AND lease_token = $2::uuid AND (state = 'running') IS TRUE"
        "     AND lease_expires_at > now() FOR SHARE),"
        " ins AS ("
        "  INSERT INTO pgq.effects (job_id, key, state, attempt, lease_token, worker)"
        "  SELECT id, $3, 'started', attempts, $2::uuid, lease_owner FROM lease"
        "  ON CONFLICT (job_id, key) DO NOTHING RETURNING job_id)"
        " SELECT (SELECT count(*) FROM lease) AS held, (SELECT count(*) FROM ins) AS inserted,"
        "  (SELECT state FROM pgq.effects WHERE job_id = $1 AND key = $3) AS existing" },
    [STMT_ONCE_DONE] = { "pgq_once_done",
        "UPDATE pgq.effects SET state = 'done', finished_at = now()"
        " WHERE job_id = $1 AND key = $3 AND lease_token = $2::uuid AND state = 'started'"
        " RETURNING job_id" },
    [STMT_ONCE_FORGET] = { "pgq_once_forget",
        "DELETE FROM pgq.effects"
        " WHERE job_id = $1 AND key = $3 AND lease_token = $2::uuid AND state = 'started'"
        " RETURNING job_id" },
    /* pgq.enqueue for one job as one plain statement: its plan stays cached
     * and nothing runs in PL/pgSQL unless the type has a contract. A JSON
     * syntax error surfaces as PostgreSQL's own (22P02/22P05); jobs.c then
     * asks pgq.enqueue for the refusal. No row back: the key existed. */
    [STMT_ADD_ONE] = { "pgq_add_one",
        "WITH t AS (SELECT queue, priority, max_retries, required FROM pgq.job_types"
        "            WHERE type = $1)"
        " INSERT INTO pgq.jobs AS j (queue, type, payload, priority, run_at, max_retries,"
        "   idempotency_key)"
        " SELECT coalesce($3, t.queue), $1, i.payload, coalesce($4::int, t.priority), i.run_at,"
        "   coalesce($7::int, t.max_retries), $8"
        "  FROM (SELECT $2::jsonb AS payload, coalesce($5::timestamptz,"
        "          now() + coalesce($6::bigint, 0) * interval '1 millisecond') AS run_at"
        "        OFFSET 0) i"
        "  LEFT JOIN t ON true"
        " WHERE (t.required = '{}' AND isfinite(i.run_at))"
        "    OR pgq.check_item(1, $1, i.payload, i.run_at, t.required)"
        " ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING"
        " RETURNING j.id, CASE WHEN j.run_at <= now() THEN pg_notify('pgq_jobs', j.queue) END" },
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
