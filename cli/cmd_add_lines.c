/* pgq add - : jobs as JSON lines on stdin, enqueued in batches, one id a
 * line back (with " duplicate" as pgq add prints it).
 *
 * Each line is an object: {"type": T, "payload": {...}, "queue": Q,
 * "priority": N, "delay": "30s", "run_at": TS, "max_retries": N,
 * "idempotency_key": K, "unique_for": "1h", "replace": true,
 * "after": [ID, ...]}; only type is required. PostgreSQL parses the
 * JSON (as it validates every payload: no JSON library here); a line it
 * cannot parse, a field of the wrong type or an unknown key is an error
 * that names the line. A batch is one transaction (pgq_add_batch): on an
 * error, the batches before it stay enqueued (their ids were printed) and
 * nothing of the failing one is. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define BATCH 500

struct line {
    char *text;
    long no;   /* 1-based line number on stdin */
};

/* The fields of each line, as PostgreSQL reads them: per line, column 0 is
 * jsonb_typeof of the line, then text and jsonb_typeof of each field, then
 * the unknown keys. */
static const char *const fields[] = { "type", "payload", "queue", "priority", "delay",
                                      "run_at", "max_retries", "idempotency_key", "unique_for",
                                      "replace", "after" };
#define NFIELDS (sizeof fields / sizeof fields[0])

static const char read_sql[] =
    "SELECT jsonb_typeof(j),"
    " j->>'type', jsonb_typeof(j->'type'), (j->'payload')::text, jsonb_typeof(j->'payload'),"
    " j->>'queue', jsonb_typeof(j->'queue'), j->>'priority', jsonb_typeof(j->'priority'),"
    " j->>'delay', jsonb_typeof(j->'delay'), j->>'run_at', jsonb_typeof(j->'run_at'),"
    " j->>'max_retries', jsonb_typeof(j->'max_retries'),"
    " j->>'idempotency_key', jsonb_typeof(j->'idempotency_key'),"
    " j->>'unique_for', jsonb_typeof(j->'unique_for'), j->>'replace', jsonb_typeof(j->'replace'),"
    /* after: its elements as PostgreSQL writes them, joined by commas, for
     * the --after parser (a non-number element fails there, named) */
    " CASE WHEN jsonb_typeof(j->'after') = 'array' THEN (SELECT string_agg(e::text, ',' ORDER BY o)"
    "   FROM jsonb_array_elements(j->'after') WITH ORDINALITY AS a(e, o)) END,"
    " jsonb_typeof(j->'after'),"
    " (SELECT string_agg(k, ', ') FROM jsonb_object_keys(CASE WHEN jsonb_typeof(j) = 'object'"
    "    THEN j ELSE '{}' END) k WHERE k <> ALL ($2::text[]))"
    "  FROM regexp_split_to_table($1, E'\\n') WITH ORDINALITY AS u(line, o),"
    "  LATERAL (SELECT u.line::jsonb AS j) x ORDER BY o";

/* Which line PostgreSQL could not parse, once the batch failed. */
static int find_bad_json(struct cli *c, const struct line *l, size_t n)
{
    PGconn *pg = pgq_conn_pg(c->conn);
    for (size_t i = 0; i < n; i++) {
        const char *p[] = { l[i].text };
        PGresult *r = PQexecParams(pg, "SELECT $1::jsonb", 1, NULL, p, NULL, NULL, 0);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (!ok) {
            const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
            const char *d = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
            cli_error(c, "stdin line %ld: not JSON: %s%s%s%s", l[i].no, m ? m : "?",
                      d ? " (" : "", d ? d : "", d ? ")" : "");
        }
        PQclear(r);
        if (!ok)
            return EXIT_FAIL;
    }
    return cli_error(c, "stdin lines %ld..%ld: %s", l[0].no, l[n - 1].no,
                     PQerrorMessage(pg));
}

/* Column k's text, or NULL when SQL NULL. */
static const char *col(PGresult *r, int row, int k)
{
    return PQgetisnull(r, row, k) ? NULL : PQgetvalue(r, row, k);
}

/* Enqueue one batch and print its ids. */
static int add_batch(struct cli *c, struct line *l, size_t n)
{
    char err[1024];
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(l[i].text) + 1;
    char *joined = malloc(len), *p = joined;
    if (!joined)
        return cli_error(c, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t m = strlen(l[i].text);
        memcpy(p, l[i].text, m);
        p += m;
        *p++ = i + 1 < n ? '\n' : '\0';
    }
    const char *params[] = { joined, "{type,payload,queue,priority,delay,run_at,max_retries,"
                                     "idempotency_key,unique_for,replace,after}" };
    PGresult *r = PQexecParams(pgq_conn_pg(c->conn), read_sql, 2, NULL, params, NULL, NULL, 0);
    free(joined);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || (size_t)PQntuples(r) != n) {
        PQclear(r);
        return find_bad_json(c, l, n);
    }
    pgq_add_item *items = calloc(n, sizeof *items);
    pgq_add_result *res = calloc(n, sizeof *res);
    int64_t **after = calloc(n, sizeof *after);   /* each line's "after", freed below */
    int rc = EXIT_OK;
    if (!items || !res || !after) {
        rc = cli_error(c, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n && rc == EXIT_OK; i++) {
        int row = (int)i;
        long no = l[i].no;
        pgq_add_opts o = PGQ_ADD_OPTS_INIT;
        if (strcmp(PQgetvalue(r, row, 0), "object") != 0) {
            rc = cli_error(c, "stdin line %ld: a job is a JSON object, not %s %s", no,
                           strchr("aeiou", PQgetvalue(r, row, 0)[0]) ? "an" : "a",
                           PQgetvalue(r, row, 0));
            break;
        }
        if (col(r, row, 23)) {
            rc = cli_error(c, "stdin line %ld: unknown key %s (known: type, payload, queue, "
                           "priority, delay, run_at, max_retries, idempotency_key, unique_for, "
                           "replace, after)", no, col(r, row, 23));
            break;
        }
        /* The type each field must have, by its column pair (text, typeof). */
        static const char *const want[NFIELDS] = { "string", NULL, "string", "number",
                                                   "string", "string", "number", "string",
                                                   "string", "boolean", "array" };
        for (size_t k = 0; k < NFIELDS && rc == EXIT_OK; k++) {
            const char *t = col(r, row, (int)(2 + 2 * k));
            if (t && want[k] && strcmp(t, want[k]) != 0)
                rc = cli_error(c, "stdin line %ld: \"%s\" must be %s %s, not %s", no, fields[k],
                               want[k][0] == 'a' ? "an" : "a", want[k], t);
        }
        if (rc != EXIT_OK)
            break;
        if (!col(r, row, 1)) {
            rc = cli_error(c, "stdin line %ld: needs \"type\"", no);
            break;
        }
        long num;
        char what[64];
        if (col(r, row, 5)) {
            if (pgq_queue_name_check(col(r, row, 5), err, sizeof err) < 0) {
                rc = cli_error(c, "stdin line %ld: queue: %s", no, err);
                break;
            }
            o.queue = col(r, row, 5);
        }
        snprintf(what, sizeof what, "stdin line %ld: priority", no);
        if (col(r, row, 7)) {
            if (cli_parse_int(c, what, col(r, row, 7), -1000000, 1000000, &num) < 0) {
                rc = EXIT_FAIL;
                break;
            }
            o.priority = (int)num;
        }
        snprintf(what, sizeof what, "stdin line %ld: delay", no);
        if (col(r, row, 9) && cli_parse_duration(c, what, col(r, row, 9), &o.delay_ms) < 0) {
            rc = EXIT_FAIL;
            break;
        }
        if (col(r, row, 9) && col(r, row, 11)) {
            rc = cli_error(c, "stdin line %ld: give \"delay\" or \"run_at\", not both", no);
            break;
        }
        o.run_at = col(r, row, 11);
        snprintf(what, sizeof what, "stdin line %ld: max_retries", no);
        if (col(r, row, 13)) {
            if (cli_parse_int(c, what, col(r, row, 13), 0, 1000000, &num) < 0) {
                rc = EXIT_FAIL;
                break;
            }
            o.max_retries = (int)num;
        }
        o.idempotency_key = col(r, row, 15);
        if (o.idempotency_key && !*o.idempotency_key) {
            rc = cli_error(c, "stdin line %ld: idempotency_key: empty key", no);
            break;
        }
        snprintf(what, sizeof what, "stdin line %ld: unique_for", no);
        if (col(r, row, 17) && cli_parse_duration(c, what, col(r, row, 17), &o.unique_for_ms) < 0) {
            rc = EXIT_FAIL;
            break;
        }
        o.replace = col(r, row, 19) && strcmp(col(r, row, 19), "true") == 0;
        if (col(r, row, 21)) {
            if (cli_parse_id_list(col(r, row, 21), &after[i], &o.n_after, err, sizeof err) < 0) {
                rc = cli_error(c, "stdin line %ld: after: %s", no, err);
                break;
            }
            o.after = after[i];
        }
        items[i] = (pgq_add_item){ col(r, row, 1), col(r, row, 3) ? col(r, row, 3) : "{}", o };
    }
    if (rc == EXIT_OK && pgq_add_batch(c->conn, items, n, res, err, sizeof err) < 0) {
        /* "item K: ..." of the batch is line l[K-1] of stdin. */
        const char *it = strstr(err, "item ");
        long k = it ? strtol(it + 5, NULL, 10) : 0;
        const char *msg = k >= 1 && strstr(it, ": ") ? strstr(it, ": ") + 2 : err;
        if (k >= 1 && (size_t)k <= n)
            rc = cli_error(c, "stdin line %ld: %s", l[k - 1].no, msg);
        else if (n == 1)   /* a batch of one says no item */
            rc = cli_error(c, "stdin line %ld: %s", l[0].no, err);
        else
            rc = cli_error(c, "stdin lines %ld..%ld: %s", l[0].no, l[n - 1].no, err);
    }
    for (size_t i = 0; i < n && rc == EXIT_OK; i++)
        printf("%" PRId64 "%s\n", res[i].id,
               res[i].replaced ? " replaced" : res[i].duplicate ? " duplicate" : "");
out:
    PQclear(r);
    for (size_t i = 0; after && i < n; i++)
        free(after[i]);
    free(after);
    free(items);
    free(res);
    return rc;
}

int cli_add_lines(struct cli *c)
{
    struct line l[BATCH];
    size_t n = 0;
    long no = 0;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = EXIT_OK;

    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    while (rc == EXIT_OK && (got = getline(&buf, &cap, stdin)) >= 0) {
        no++;
        while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
            buf[--got] = '\0';
        if (strspn(buf, " \t") == (size_t)got)
            continue;   /* blank */
        if (strlen(buf) != (size_t)got) {
            rc = cli_error(c, "stdin line %ld: contains a NUL byte", no);
            break;
        }
        l[n].text = strdup(buf);
        l[n].no = no;
        if (!l[n].text) {
            rc = cli_error(c, "out of memory");
            break;
        }
        if (++n == BATCH) {
            rc = add_batch(c, l, n);
            while (n)
                free(l[--n].text);
        }
    }
    if (rc == EXIT_OK && n)
        rc = add_batch(c, l, n);
    while (n)
        free(l[--n].text);
    free(buf);
    return rc;
}
