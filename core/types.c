/* Job types and their payload contracts. A contract is stored as a jsonb
 * object {"key": "json type"} in pgq.job_types, where pgq.enqueue checks
 * every payload against it, so a producer in any language is held to the
 * same contract as the pool that registered it. */
#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const json_types[] = { "string", "number", "boolean", "object", "array",
                                          "null" };

static bool known_json_type(const char *t)
{
    for (size_t i = 0; i < sizeof json_types / sizeof json_types[0]; i++)
        if (strcmp(t, json_types[i]) == 0)
            return true;
    return false;
}

/* Build the contract as JSON object text (one query parameter), escaping
 * quotes, backslashes and control characters in the keys. */
static char *contract_json(const pgq_type_def *d, char *err, size_t errlen)
{
    size_t len = 3;
    for (size_t i = 0; i < d->nrequired; i++)
        len += 6 * strlen(d->required[i].key) + strlen(d->required[i].json_type) + 8;
    char *buf = malloc(len), *p = buf;
    if (!buf) {
        seterr(err, errlen, "types: out of memory");
        return NULL;
    }
    *p++ = '{';
    for (size_t i = 0; i < d->nrequired; i++) {
        const pgq_field *f = &d->required[i];
        if (!known_json_type(f->json_type)) {
            seterr(err, errlen, "job type \"%s\": key \"%s\": unknown JSON type \"%s\" "
                   "(use string, number, boolean, object, array or null)",
                   d->type, f->key, f->json_type);
            free(buf);
            return NULL;
        }
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const unsigned char *k = (const unsigned char *)f->key; *k; k++) {
            if (*k == '"' || *k == '\\') {
                *p++ = '\\';
                *p++ = (char)*k;
            } else if (*k < 0x20) {
                p += sprintf(p, "\\u%04x", *k);
            } else {
                *p++ = (char)*k;
            }
        }
        p += sprintf(p, "\":\"%s\"", f->json_type);
    }
    *p++ = '}';
    *p = '\0';
    return buf;
}

static int by_name(const void *a, const void *b)
{
    const pgq_type_def *x = *(const pgq_type_def *const *)a, *y = *(const pgq_type_def *const *)b;
    return strcmp(x->type ? x->type : "", y->type ? y->type : "");
}

int pgq_types_register(pgq_conn *c, const pgq_type_def *defs, size_t n, char *err, size_t errlen)
{
    return pgq_types_register_as(c, defs, n, NULL, true, err, errlen);
}

/* What differs between the registered definition of $1 and the one given,
 * when it may not be replaced (see pgq_types_register_as); no row when it
 * may. Not replaced: one `pgq types apply` registered (the operator's
 * word stands until the next apply), or a pool alive (fresh heartbeat) or
 * registering in the last minute (two pools starting at once). An unknown
 * registrant (NULL: the library's pgq_types_register, or a registration
 * from before schema 6) is replaced. */
static const char conflict_sql[] =
    "SELECT t.registered_by, t.updated_at::text, concat_ws(', ',"
    "  CASE WHEN t.queue <> $2 THEN format('queue %s vs %s', t.queue, $2) END,"
    "  CASE WHEN t.required <> $3::jsonb THEN format('contract %s vs %s', t.required, $3) END,"
    "  CASE WHEN t.max_retries <> $4::int THEN format('max_retries %s vs %s', t.max_retries, $4) END,"
    "  CASE WHEN t.priority <> $5::int THEN format('priority %s vs %s', t.priority, $5) END,"
    "  CASE WHEN t.timeout_ms <> $6::bigint THEN format('timeout_ms %s vs %s', t.timeout_ms, $6) END,"
    "  CASE WHEN t.backoff_base_ms <> $7::bigint"
    "       THEN format('backoff_base_ms %s vs %s', t.backoff_base_ms, $7) END,"
    "  CASE WHEN t.backoff_max_ms <> $8::bigint"
    "       THEN format('backoff_max_ms %s vs %s', t.backoff_max_ms, $8) END,"
    "  CASE WHEN t.concurrency IS DISTINCT FROM $10::int"
    "       THEN format('concurrency %s vs %s', coalesce(t.concurrency::text, 'none'),"
    "                   coalesce($10::int::text, 'none')) END,"
    "  CASE WHEN (t.rate_count, t.rate_ms) IS DISTINCT FROM ($11::int, $12::bigint)"
    "       THEN format('rate %s vs %s', coalesce(t.rate_count || '/' || t.rate_ms || 'ms', 'none'),"
    "                   coalesce($11::int || '/' || $12::bigint || 'ms', 'none')) END,"
    "  CASE WHEN t.max_snoozes <> $13::int"
    "       THEN format('max_snoozes %s vs %s', t.max_snoozes, $13) END,"
    "  CASE WHEN t.max_payload <> $14::bigint"
    "       THEN format('max_payload %s vs %s', t.max_payload, $14) END)"
    "  FROM pgq.job_types t"
    " WHERE t.type = $1 AND t.registered_by IS DISTINCT FROM $9"
    "   AND (t.queue, t.required, t.max_retries, t.priority, t.timeout_ms, t.backoff_base_ms,"
    "        t.backoff_max_ms, t.concurrency, t.rate_count, t.rate_ms, t.max_snoozes,"
    "        t.max_payload)"
    "       IS DISTINCT FROM ($2, $3::jsonb, $4::int, $5::int, $6::bigint,"
    "        $7::bigint, $8::bigint, $10::int, $11::int, $12::bigint, $13::int, $14::bigint)"
    "   AND (t.registered_by = 'pgq types apply'"
    "        OR (t.registered_by IS NOT NULL AND (t.updated_at > now() - interval '1 minute'"
    "            OR EXISTS (SELECT 1 FROM pgq.workers w WHERE w.name = t.registered_by"
    "                        AND w.last_heartbeat > now() - interval '1 minute'))))"
    "   FOR UPDATE OF t";

int pgq_types_register_as(pgq_conn *c, const pgq_type_def *defs, size_t n, const char *who,
                          bool replace, char *err, size_t errlen)
{
    static const char sql[] =
        "INSERT INTO pgq.job_types AS t (type, queue, required, max_retries, priority,"
        "  timeout_ms, backoff_base_ms, backoff_max_ms, registered_by, concurrency, rate_count,"
        "  rate_ms, max_snoozes, max_payload)"
        " VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        " ON CONFLICT (type) DO UPDATE SET queue = EXCLUDED.queue, required = EXCLUDED.required,"
        "  max_retries = EXCLUDED.max_retries, priority = EXCLUDED.priority,"
        "  timeout_ms = EXCLUDED.timeout_ms, backoff_base_ms = EXCLUDED.backoff_base_ms,"
        "  backoff_max_ms = EXCLUDED.backoff_max_ms, registered_by = EXCLUDED.registered_by,"
        "  concurrency = EXCLUDED.concurrency, rate_count = EXCLUDED.rate_count,"
        "  rate_ms = EXCLUDED.rate_ms, max_snoozes = EXCLUDED.max_snoozes,"
        "  max_payload = EXCLUDED.max_payload,"
        "  updated_at = now()";

    /* Upsert in name order: two pools registering overlapping types at
     * once then lock rows in the same order and cannot deadlock. */
    const pgq_type_def **order = malloc((n + 1) * sizeof *order);
    if (!order)
        return seterr(err, errlen, "types: out of memory");
    for (size_t i = 0; i < n; i++)
        order[i] = &defs[i];
    qsort(order, n, sizeof *order, by_name);
    if (db_command(c, "BEGIN", "types", err, errlen) < 0) {
        free(order);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const pgq_type_def *d = order[i];
        char num[10][24], what[256];
        if (!d->type || !*d->type) {
            seterr(err, errlen, "types: a job type has no name");
            goto fail;
        }
        char why[512];
        if (d->queue && pgq_queue_name_check(d->queue, why, sizeof why) < 0) {
            seterr(err, errlen, "types: job type \"%s\": %s", d->type, why);
            goto fail;
        }
        char *contract = contract_json(d, err, errlen);
        if (!contract)
            goto fail;
        snprintf(num[0], 24, "%d", d->max_retries == PGQ_DEFAULT ? 5 : d->max_retries);
        snprintf(num[1], 24, "%d", d->priority == PGQ_DEFAULT ? 0 : d->priority);
        snprintf(num[2], 24, "%" PRId64, d->timeout_ms > 0 ? d->timeout_ms : 60000);
        snprintf(num[3], 24, "%" PRId64, d->backoff_base_ms >= 0 ? d->backoff_base_ms : 1000);
        snprintf(num[4], 24, "%" PRId64, d->backoff_max_ms >= 0 ? d->backoff_max_ms : 3600000);
        /* Limits: both halves of a rate or neither; absent ones are NULL. */
        bool rated = d->rate_count > 0 && d->rate_ms > 0;
        snprintf(num[5], 24, "%d", d->concurrency);
        snprintf(num[6], 24, "%d", d->rate_count);
        snprintf(num[7], 24, "%" PRId64, d->rate_ms);
        snprintf(num[8], 24, "%d", d->max_snoozes == PGQ_DEFAULT || d->max_snoozes < 0
                                       ? 100 : d->max_snoozes);
        /* 0 in the column is "no limit"; 0 in the struct the default */
        snprintf(num[9], 24, "%" PRId64, d->max_payload == 0 ? (int64_t)PGQ_MAX_PAYLOAD_DEFAULT
                                         : d->max_payload < 0 ? 0 : d->max_payload);
        const char *params[] = { d->type, d->queue ? d->queue : "default", contract,
                                 num[0], num[1], num[2], num[3], num[4], who,
                                 d->concurrency > 0 ? num[5] : NULL, rated ? num[6] : NULL,
                                 rated ? num[7] : NULL, num[8], num[9] };
        snprintf(what, sizeof what, "job type \"%s\"", d->type);
        if (!replace) {
            PGresult *k = db_query(c, conflict_sql, 14, params, PGRES_TUPLES_OK, what, err,
                                   errlen);
            if (!k) {
                free(contract);
                goto fail;
            }
            if (PQntuples(k) > 0) {
                seterr(err, errlen, "job type \"%s\": %s registered another definition (at %s) "
                       "and is still alive: %s (registered vs this one). Make the [job %s] "
                       "sections agree, or replace it on purpose with `pgq types apply -c FILE`",
                       d->type, PQgetisnull(k, 0, 0) ? "someone" : PQgetvalue(k, 0, 0),
                       PQgetvalue(k, 0, 1), PQgetvalue(k, 0, 2), d->type);
                PQclear(k);
                free(contract);
                goto fail;
            }
            PQclear(k);
        }
        PGresult *r = db_query(c, sql, 14, params, PGRES_COMMAND_OK, what, err, errlen);
        free(contract);
        if (!r)
            goto fail;
        PQclear(r);
    }
    free(order);
    return db_command(c, "COMMIT", "types", err, errlen);
fail:
    free(order);
    PQclear(PQexec(c->pg, "ROLLBACK"));
    return -1;
}

int pgq_types_list(pgq_conn *c, pgq_type_info **out, size_t *n, char *err, size_t errlen)
{
    PGresult *r = db_query(c,
        "SELECT t.type, t.queue, t.required::text, t.max_retries, t.priority, t.timeout_ms,"
        " t.backoff_base_ms, t.backoff_max_ms, t.updated_at::text, t.concurrency, t.rate_count,"
        " t.rate_ms, t.max_snoozes, u.running, u.window_starts, t.max_payload"
        " FROM pgq.job_types t LEFT JOIN pgq.type_use u ON u.type = t.type ORDER BY t.type",
        0, NULL, PGRES_TUPLES_OK, "types list", err, errlen);
    if (!r)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    pgq_type_info *t = calloc(rows + 1, sizeof *t);
    if (!t) {
        PQclear(r);
        return seterr(err, errlen, "types list: out of memory");
    }
    for (size_t i = 0; i < rows; i++) {
        int row = (int)i;
        t[i].type = strdup(PQgetvalue(r, row, 0));
        t[i].queue = strdup(PQgetvalue(r, row, 1));
        t[i].required = strdup(PQgetvalue(r, row, 2));
        t[i].updated_at = strdup(PQgetvalue(r, row, 8));
        t[i].max_retries = (int)db_int64(r, row, 3, 0);
        t[i].priority = (int)db_int64(r, row, 4, 0);
        t[i].timeout_ms = db_int64(r, row, 5, 0);
        t[i].backoff_base_ms = db_int64(r, row, 6, 0);
        t[i].backoff_max_ms = db_int64(r, row, 7, 0);
        t[i].concurrency = (int)db_int64(r, row, 9, 0);
        t[i].rate_count = (int)db_int64(r, row, 10, 0);
        t[i].rate_ms = db_int64(r, row, 11, 0);
        t[i].max_snoozes = (int)db_int64(r, row, 12, 100);
        t[i].running = db_int64(r, row, 13, 0);
        t[i].window_starts = db_int64(r, row, 14, 0);
        t[i].max_payload = db_int64(r, row, 15, 0);
        if (!t[i].type || !t[i].queue || !t[i].required || !t[i].updated_at) {
            pgq_types_free(t, i + 1);
            PQclear(r);
            return seterr(err, errlen, "types list: out of memory");
        }
    }
    PQclear(r);
    *out = t;
    *n = rows;
    return 0;
}

void pgq_types_free(pgq_type_info *t, size_t n)
{
    if (!t)
        return;
    for (size_t i = 0; i < n; i++) {
        free(t[i].type);
        free(t[i].queue);
        free(t[i].required);
        free(t[i].updated_at);
    }
    free(t);
}
