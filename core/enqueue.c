/* Enqueueing (pgq_add, pgq_add_batch): the producer's side of the state
 * machine. Every item is checked here for what PostgreSQL would refuse as a
 * whole statement (text that is not UTF-8), and the rest is decided by the
 * database: one job is pgq.add, a batch one call of pgq.enqueue, which
 * validates the whole batch (types, JSON, payload contracts, queue names)
 * in one pass before storing any of it, both functions of the state
 * machine's one home, migrations/state_machine.sql. An idempotency key
 * seen before inserts nothing and returns the existing job, flagged.
 * Dependencies (opts.after, opts.after_items) travel as a list of edges,
 * three arrays of pgq.enqueue (the waiting item, an existing job or an
 * earlier item); an add with dependencies is a batch of one. */
#include "db.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The text fields of an item PostgreSQL would refuse as a whole statement
 * ("invalid byte sequence"), named with the byte at fault; NULL if none. */
static const char *bad_text(const pgq_add_item *it, char *buf, size_t len)
{
    const char *name[] = { "job type", "payload", "run_at", "idempotency key" };
    const char *text[] = { it->type, it->payload, it->opts.run_at, it->opts.idempotency_key };
    for (size_t i = 0; i < sizeof text / sizeof text[0]; i++) {
        size_t bad;
        if (text[i] && !utf8_valid(text[i], strlen(text[i]), &bad, NULL)) {
            snprintf(buf, len, "%s is not valid UTF-8 at byte offset %zu", name[i], bad);
            return buf;
        }
    }
    return NULL;
}

/* What is wrong with an item before PostgreSQL sees it, or NULL; buf holds
 * the message when it needs one. Types, JSON and payload contracts are
 * checked by PostgreSQL (pgq.check_item). */
static const char *item_problem(const pgq_add_item *it, char *buf, size_t len)
{
    const pgq_add_opts *o = &it->opts;
    if (!it->type || !*it->type)
        return "job type is missing";
    if (!it->payload)
        return "payload is missing";
    if (o->delay_ms < 0)
        return "delay must not be negative";
    if (o->max_retries != PGQ_DEFAULT && o->max_retries < 0)
        return "max_retries must be 0 or more";
    if (o->queue && pgq_queue_name_check(o->queue, buf, len) < 0)
        return buf;
    if ((o->n_after && !o->after) || (o->n_after_items && !o->after_items))
        return "after: the list of jobs is NULL";
    for (size_t k = 0; k < o->n_after; k++)
        if (o->after[k] <= 0) {
            snprintf(buf, len, "unknown parent job %" PRId64, o->after[k]);
            return buf;
        }
    return bad_text(it, buf, len);
}

/* An error about item i of n: "item 3: msg" in a batch, "msg" alone. */
static int item_err(char *err, size_t errlen, size_t n, size_t i, const char *msg)
{
    if (n > 1)
        return seterr(err, errlen, "item %zu: %s", i + 1, msg);
    return seterr(err, errlen, "%s", msg);
}

/* Rewrite "add: msg (item N)" into "item N: msg" for batches, or "msg"
 * for a single add: the caller knows it is adding. */
static void tidy_add_error(char *err, size_t errlen, size_t n)
{
    if (!err || !errlen)
        return;
    char *msg = strncmp(err, "add: ", 5) == 0 ? err + 5 : err;
    char *item = strstr(msg, " (item ");
    char tmp[1024];
    if (item && n > 1) {
        long k = strtol(item + 7, NULL, 10);
        *item = '\0';
        snprintf(tmp, sizeof tmp, "item %ld: %s", k, msg);
    } else {
        if (item)
            *item = '\0';
        snprintf(tmp, sizeof tmp, "%s", msg);
    }
    snprintf(err, errlen, "%s", tmp);
}

/* The numeric options of an item as text params, NULL for the defaults. */
struct add_nums {
    char prio[16], delay[24], retries[16], unique[24];
    const char *v[5];   /* priority, delay, max_retries, unique_for, replace */
};

static void add_nums(const pgq_add_opts *o, struct add_nums *a)
{
    memset(a->v, 0, sizeof a->v);
    if (o->priority != PGQ_DEFAULT) {
        snprintf(a->prio, sizeof a->prio, "%d", o->priority);
        a->v[0] = a->prio;
    }
    if (o->delay_ms > 0) {
        snprintf(a->delay, sizeof a->delay, "%" PRId64, o->delay_ms);
        a->v[1] = a->delay;
    }
    if (o->max_retries != PGQ_DEFAULT) {
        snprintf(a->retries, sizeof a->retries, "%d", o->max_retries);
        a->v[2] = a->retries;
    }
    if (o->unique_for_ms != 0) {
        snprintf(a->unique, sizeof a->unique, "%" PRId64, o->unique_for_ms);
        a->v[3] = a->unique;
    }
    if (o->replace)
        a->v[4] = "true";
}

static int add_batch(pgq_conn *c, const pgq_add_item *items, size_t n, pgq_add_result *res,
                     char *err, size_t errlen);

/* One job: pgq.add (migration 004), the single-job transition of the
 * state machine, with the same checks as a batch, inside PostgreSQL. */
static int add_one(pgq_conn *c, const pgq_add_item *it, pgq_add_result *res,
                   char *err, size_t errlen)
{
    char why[512];
    const char *bad = item_problem(it, why, sizeof why);
    if (bad)
        return item_err(err, errlen, 1, 0, bad);
    if (it->opts.n_after || it->opts.n_after_items)
        return add_batch(c, it, 1, res, err, errlen);
    struct add_nums nums;
    add_nums(&it->opts, &nums);
    const char *params[] = { it->type, it->payload, it->opts.queue, nums.v[0],
                             it->opts.run_at, nums.v[1], nums.v[2], it->opts.idempotency_key,
                             nums.v[3], nums.v[4] };
    /* A key whose holder is deleted between pgq.add's insert and its
     * look-up is free again (40001): add anew, a bounded number of times. */
    for (int attempt = 0; attempt < 3; attempt++) {
        PGresult *r = db_run(c, STMT_ADD_ONE, 10, params, PGRES_TUPLES_OK, "add", err, errlen);
        if (!r) {
            if (strcmp(c->sqlstate, "40001") == 0 && attempt < 2)
                continue;
            /* Invalid JSON fails the statement's cast with PostgreSQL's
             * own message. Nothing was stored: let pgq.enqueue word the
             * refusal, as it does for a batch. */
            if (strcmp(c->sqlstate, "22P02") == 0 || strcmp(c->sqlstate, "22P05") == 0 ||
                strcmp(c->sqlstate, "54001") == 0)
                return add_batch(c, it, 1, res, err, errlen);
            tidy_add_error(err, errlen, 1);
            return -1;
        }
        bool ok = PQntuples(r) == 1;
        if (ok) {
            res->id = db_int64(r, 0, 0, 0);
            res->duplicate = db_bool(r, 0, 1);
            res->replaced = db_bool(r, 0, 2);
        }
        PQclear(r);
        return ok ? 0 : seterr(err, errlen, "add: the job was not stored");
    }
    return seterr(err, errlen, "the job holding idempotency key \"%s\" was deleted "
                  "concurrently; retry", it->opts.idempotency_key);
}

/* The columns of pgq.enqueue, one text array each. A column that is NULL
 * for every item is sent as a NULL array: less to build, send and parse. */
enum { COL_TYPE, COL_PAYLOAD, COL_QUEUE, COL_PRIO, COL_RUN_AT, COL_DELAY, COL_RETRIES, COL_KEY,
       COL_UNIQUE, COL_REPLACE, NCOLS };
/* The dependency edges, parameters after the columns: the waiting item
 * (1-based), and an existing job or an earlier item (1-based), the other
 * NULL. NULL arrays when no item has dependencies. */
enum { EDGE_ORD = NCOLS, EDGE_JOB, EDGE_ITEM, NPARAMS };

static int add_edges(const pgq_add_item *items, size_t n, char *arr[NPARAMS],
                     char *err, size_t errlen)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        m += items[i].opts.n_after + items[i].opts.n_after_items;
    if (m == 0)
        return 0;
    int64_t *ord = malloc(m * sizeof *ord), *job = malloc(m * sizeof *job),
            *item = malloc(m * sizeof *item);
    bool *is_job = malloc(m * sizeof *is_job), *is_item = malloc(m * sizeof *is_item);
    int rc = -1;
    if (!ord || !job || !item || !is_job || !is_item) {
        seterr(err, errlen, "add: out of memory");
        goto out;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const pgq_add_opts *o = &items[i].opts;
        for (size_t a = 0; a < o->n_after; a++, k++) {
            ord[k] = (int64_t)i + 1;
            job[k] = o->after[a];
            item[k] = 0;
            is_job[k] = true;
            is_item[k] = false;
        }
        for (size_t a = 0; a < o->n_after_items; a++, k++) {
            ord[k] = (int64_t)i + 1;
            job[k] = 0;
            /* an index past any batch is sent as it is: pgq.enqueue names it */
            item[k] = o->after_items[a] >= (size_t)INT32_MAX ? INT32_MAX
                                                             : (int64_t)o->after_items[a] + 1;
            is_job[k] = false;
            is_item[k] = true;
        }
    }
    if (!(arr[EDGE_ORD] = db_int64_array(ord, m)) ||
        !(arr[EDGE_JOB] = db_int64_array_nullable(job, is_job, m)) ||
        !(arr[EDGE_ITEM] = db_int64_array_nullable(item, is_item, m))) {
        seterr(err, errlen, "add: out of memory");
        goto out;
    }
    rc = 0;
out:
    free(ord);
    free(job);
    free(item);
    free(is_job);
    free(is_item);
    return rc;
}

static int add_params(const pgq_add_item *items, size_t n, char *arr[NPARAMS],
                      char *err, size_t errlen)
{
    const char **cols = calloc(NCOLS * n, sizeof *cols);
    struct add_nums *nums = malloc(n * sizeof *nums);
    bool any[NCOLS] = { false };
    int rc = -1;
    if (!cols || !nums) {
        seterr(err, errlen, "add: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const pgq_add_opts *o = &items[i].opts;
        add_nums(o, &nums[i]);
        const char *v[NCOLS] = { items[i].type, items[i].payload, o->queue, nums[i].v[0],
                                 o->run_at, nums[i].v[1], nums[i].v[2], o->idempotency_key,
                                 nums[i].v[3], nums[i].v[4] };
        for (int k = 0; k < NCOLS; k++) {
            cols[k * n + i] = v[k];
            any[k] |= v[k] != NULL;
        }
    }
    for (int k = 0; k < NCOLS; k++) {
        if (any[k] && !(arr[k] = db_text_array(cols + k * n, n))) {
            seterr(err, errlen, "add: out of memory");
            goto out;
        }
    }
    rc = 0;
out:
    free(cols);
    free(nums);
    return rc;
}

int pgq_add_batch(pgq_conn *c, const pgq_add_item *items, size_t n, pgq_add_result *res,
                  char *err, size_t errlen)
{
    if (n == 1)
        return add_one(c, items, res, err, errlen);
    return add_batch(c, items, n, res, err, errlen);
}

/* Any number of jobs through pgq.enqueue, in one statement. */
static int add_batch(pgq_conn *c, const pgq_add_item *items, size_t n, pgq_add_result *res,
                     char *err, size_t errlen)
{
    char *arr[NPARAMS] = { 0 };
    int rc = -1;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char why[512];
        const char *bad = item_problem(&items[i], why, sizeof why);
        if (bad)
            return item_err(err, errlen, n, i, bad);
    }
    if (add_params(items, n, arr, err, errlen) < 0 || add_edges(items, n, arr, err, errlen) < 0)
        goto out;
    PGresult *r = db_run(c, STMT_ADD, NPARAMS, (const char *const *)arr, PGRES_TUPLES_OK, "add",
                         err, errlen);
    if (!r) {
        /* statement_too_complex: jsonb's parser recursed past
         * max_stack_depth on a deeply nested payload; PostgreSQL's own
         * words would not say which input was at fault */
        if (strcmp(c->sqlstate, "54001") == 0)
            seterr(err, errlen, "%s nests too deeply for PostgreSQL's jsonb (stack depth "
                   "limit exceeded)", n == 1 ? "the payload" : "a payload of the batch");
        else
            tidy_add_error(err, errlen, n);
        goto out;
    }
    if ((size_t)PQntuples(r) != n) {
        seterr(err, errlen, "add: expected %zu results, got %d", n, PQntuples(r));
        PQclear(r);
        goto out;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        size_t ord = (size_t)db_int64(r, i, 0, 0);
        if (ord < 1 || ord > n) {
            seterr(err, errlen, "add: result for unknown item %zu", ord);
            PQclear(r);
            goto out;
        }
        res[ord - 1].id = db_int64(r, i, 1, 0);
        res[ord - 1].duplicate = db_bool(r, i, 2);
        res[ord - 1].replaced = db_bool(r, i, 3);
    }
    PQclear(r);
    rc = 0;
out:
    for (int k = 0; k < NPARAMS; k++)
        free(arr[k]);
    return rc;
}

int pgq_add(pgq_conn *c, const char *type, const char *payload, const pgq_add_opts *opts,
            pgq_add_result *res, char *err, size_t errlen)
{
    pgq_add_item item = { type, payload, PGQ_ADD_OPTS_INIT };
    if (opts)
        item.opts = *opts;
    return add_one(c, &item, res, err, errlen);
}
