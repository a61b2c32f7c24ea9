/* The job state machine as seen by producers and workers: enqueue, claim,
 * heartbeat, complete, fail, release and reap.
 *
 * Each transition is one statement (see db.c's table), and every transition
 * of a running job names the job's lease token in its WHERE clause: a
 * statement that matches no row means the lease was lost, and then nothing
 * changed. Retry backoff and dead-lettering are decided inside PostgreSQL
 * (pgq.end_attempts), never by sleeping workers.
 *
 * Every transition is a function of the state machine's one home,
 * migrations/004_state_machine.sql: one job is pgq.add, a batch one call of
 * pgq.enqueue, which validates the whole batch in one pass before storing
 * any of it. */
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
            if (strcmp(c->sqlstate, "22P02") == 0 || strcmp(c->sqlstate, "22P05") == 0)
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

static int add_params(const pgq_add_item *items, size_t n, char *arr[NCOLS],
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
    char *arr[NCOLS] = { 0 };
    int rc = -1;

    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char why[512];
        const char *bad = item_problem(&items[i], why, sizeof why);
        if (bad)
            return item_err(err, errlen, n, i, bad);
    }
    if (add_params(items, n, arr, err, errlen) < 0)
        goto out;
    PGresult *r = db_run(c, STMT_ADD, NCOLS, (const char *const *)arr, PGRES_TUPLES_OK, "add",
                         err, errlen);
    if (!r) {
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
    for (int k = 0; k < NCOLS; k++)
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

/* A claimed job from row `row` of a complete_claim result (columns: acked,
 * id, queue, type, payload, attempts, max_retries, priority, lease_token,
 * timeout_ms, ord). One allocation: the struct followed by its strings. */
static pgq_job *job_from_row(const PGresult *r, int row)
{
    size_t lq = strlen(PQgetvalue(r, row, 2)) + 1, lt = strlen(PQgetvalue(r, row, 3)) + 1,
           lp = strlen(PQgetvalue(r, row, 4)) + 1;
    pgq_job *j = malloc(sizeof *j + lq + lt + lp);
    if (!j)
        return NULL;
    char *p = (char *)(j + 1);
    memcpy(p, PQgetvalue(r, row, 2), lq);
    j->queue = p;
    memcpy(p + lq, PQgetvalue(r, row, 3), lt);
    j->type = p + lq;
    memcpy(p + lq + lt, PQgetvalue(r, row, 4), lp);
    j->payload = p + lq + lt;
    j->id = db_int64(r, row, 1, 0);
    j->attempt = (int)db_int64(r, row, 5, 1);
    j->max_retries = (int)db_int64(r, row, 6, 0);
    j->priority = (int)db_int64(r, row, 7, 0);
    snprintf(j->lease_token, sizeof j->lease_token, "%s", PQgetvalue(r, row, 8));
    j->timeout_ms = db_int64(r, row, 9, 60000);
    return j;
}

/* The acks' columns as array literals: ids, tokens, exit codes, signals,
 * cpu, rss (NULL where unknown). */
struct ack_arrays {
    char *v[6];
};

static void ack_arrays_free(struct ack_arrays *a)
{
    for (int i = 0; i < 6; i++)
        free(a->v[i]);
}

static int ack_arrays_fill(struct ack_arrays *a, const pgq_ack *acks, size_t n)
{
    memset(a, 0, sizeof *a);
    size_t cap = n ? n : 1;
    int64_t *num = malloc(cap * 5 * sizeof *num);
    bool *has = malloc(cap * 4 * sizeof *has);
    const char **tok = malloc(cap * sizeof *tok);
    if (!num || !has || !tok) {
        free(num);
        free(has);
        free(tok);
        return -1;
    }
    int64_t *ids = num, *ex = num + cap, *sig = num + 2 * cap, *cpu = num + 3 * cap,
            *rss = num + 4 * cap;
    bool *hex = has, *hsig = has + cap, *hcpu = has + 2 * cap, *hrss = has + 3 * cap;
    for (size_t i = 0; i < n; i++) {
        const pgq_attempt_info *in = acks[i].info;
        ids[i] = acks[i].id;
        tok[i] = acks[i].token;
        ex[i] = in ? in->exit_code : -1;
        sig[i] = in ? in->term_signal : 0;
        cpu[i] = in ? in->cpu_ms : -1;
        rss[i] = in ? in->max_rss_kb : -1;
        hex[i] = ex[i] >= 0;
        hsig[i] = sig[i] > 0;
        hcpu[i] = cpu[i] >= 0;
        hrss[i] = rss[i] >= 0;
    }
    a->v[0] = db_int64_array(ids, n);
    a->v[1] = db_text_array(tok, n);
    a->v[2] = db_int64_array_nullable(ex, hex, n);
    a->v[3] = db_int64_array_nullable(sig, hsig, n);
    a->v[4] = db_int64_array_nullable(cpu, hcpu, n);
    a->v[5] = db_int64_array_nullable(rss, hrss, n);
    free(num);
    free(has);
    free(tok);
    for (int i = 0; i < 6; i++)
        if (!a->v[i]) {
            ack_arrays_free(a);
            return -1;
        }
    return 0;
}

int pgq_complete_claim(pgq_conn *c, const pgq_ack *acks, size_t nacks, bool *lost,
                       const char *const *queues, size_t nqueues, const char *worker,
                       int64_t lease_ttl_ms, size_t max_jobs, pgq_job **jobs, size_t *njobs,
                       char *err, size_t errlen)
{
    return pgq_complete_claim_hinted(c, NULL, acks, nacks, lost, queues, nqueues, worker,
                                     lease_ttl_ms, max_jobs, jobs, njobs, err, errlen);
}

int pgq_complete_claim_hinted(pgq_conn *c, pgq_hints *hints, const pgq_ack *acks,
                              size_t nacks, bool *lost, const char *const *queues,
                              size_t nqueues, const char *worker, int64_t lease_ttl_ms,
                              size_t max_jobs, pgq_job **jobs, size_t *njobs, char *err,
                              size_t errlen)
{
    char ttl[24], lim[24];
    struct ack_arrays aa;
    if (njobs)
        *njobs = 0;
    if (max_jobs > 0 && (!jobs || !njobs))
        return seterr(err, errlen, "complete_claim: no room given for claimed jobs");
    if (max_jobs > 0 && nqueues == 0)
        return seterr(err, errlen, "claim: no queues given");
    if (max_jobs > 0 && lease_ttl_ms <= 0)
        return seterr(err, errlen, "claim: lease TTL must be positive");
    for (size_t i = 0; i < nqueues; i++) {
        char why[512];
        if (pgq_queue_name_check(queues[i], why, sizeof why) < 0)
            return seterr(err, errlen, "claim: %s", why);
    }
    if (max_jobs > INT32_MAX)
        return seterr(err, errlen, "claim: at most %d jobs per call", INT32_MAX);
    if (nacks > 0 && !lost)
        return seterr(err, errlen, "complete: no room given for the lease-lost flags");
    for (size_t i = 0; i < nacks; i++)
        if (!acks[i].token || strlen(acks[i].token) != PGQ_TOKEN_LEN)
            return seterr(err, errlen, "complete: job %" PRId64 ": malformed lease token",
                          acks[i].id);
    if (ack_arrays_fill(&aa, acks, nacks) < 0)
        return seterr(err, errlen, "complete_claim: out of memory");
    char *qarr = db_text_array(queues, nqueues);
    if (!qarr) {
        ack_arrays_free(&aa);
        return seterr(err, errlen, "complete_claim: out of memory");
    }
    struct hints_params hp;
    if (hints_claim_params(max_jobs > 0 ? hints : NULL, queues, nqueues, &hp) < 0) {
        free(qarr);
        ack_arrays_free(&aa);
        return seterr(err, errlen, "complete_claim: out of memory");
    }
    snprintf(ttl, sizeof ttl, "%" PRId64, lease_ttl_ms > 0 ? lease_ttl_ms : 1);
    snprintf(lim, sizeof lim, "%zu", max_jobs);
    const char *params[] = { aa.v[0], aa.v[1], aa.v[2], aa.v[3], aa.v[4], aa.v[5],
                             qarr, worker ? worker : "", ttl, lim,
                             hp.prio, hp.run_at, hp.id, hp.better ? hp.better : "false",
                             c->delete_done ? "false" : "true" };
    const char *what = max_jobs == 0 ? "complete" : nacks == 0 ? "claim" : "complete and claim";
    PGresult *r = db_run(c, STMT_COMPLETE_CLAIM, 15, params, PGRES_TUPLES_OK, what, err, errlen);
    free(qarr);
    ack_arrays_free(&aa);
    if (!r) {
        hints_params_free(&hp);
        pgq_hints_forget(max_jobs > 0 ? hints : NULL);
        return -1;
    }
    for (int row = 0; row < PQntuples(r); row++)
        if (PQgetisnull(r, row, 0))
            hints_claimed(&hp, PQgetvalue(r, row, 2),
                          (int)db_int64(r, row, 7, 0), db_int64(r, row, 11, 0),
                          db_int64(r, row, 1, 0));
    hints_params_free(&hp);

    for (size_t i = 0; i < nacks; i++)
        lost[i] = true;
    size_t got = 0;
    bool oom = false;
    for (int row = 0; row < PQntuples(r); row++) {
        if (!PQgetisnull(r, row, 0)) {
            int64_t id = db_int64(r, row, 0, 0);
            for (size_t i = 0; i < nacks; i++)
                if (acks[i].id == id)
                    lost[i] = false;
            continue;
        }
        /* ord is 1-based claim order; rows may come in any order. */
        int64_t ord = db_int64(r, row, 10, 0);
        pgq_job *j = oom ? NULL : job_from_row(r, row);
        if (!j || ord < 1 || (size_t)ord > max_jobs) {
            oom = true;
            free(j);
            continue;
        }
        jobs[ord - 1] = j;
        got++;
    }
    if (oom) {
        /* Give every claimed job straight back rather than let its lease
         * expire into a failed attempt. */
        char e[64];
        for (int row = 0; row < PQntuples(r); row++) {
            if (!PQgetisnull(r, row, 0))
                continue;
            bool l;
            int64_t ord = db_int64(r, row, 10, 0);
            if (ord >= 1 && (size_t)ord <= max_jobs && jobs[ord - 1]) {
                pgq_job_free(jobs[ord - 1]);
                jobs[ord - 1] = NULL;
            }
            (void)!pgq_release(c, db_int64(r, row, 1, 0), PQgetvalue(r, row, 8), &l, e,
                               sizeof e);
        }
        PQclear(r);
        return seterr(err, errlen, "claim: out of memory");
    }
    PQclear(r);
    if (njobs)
        *njobs = got;
    return 0;
}

int pgq_claim(pgq_conn *c, const char *const *queues, size_t nqueues, const char *worker,
              int64_t lease_ttl_ms, pgq_job **job, char *err, size_t errlen)
{
    size_t got;
    *job = NULL;
    return pgq_complete_claim(c, NULL, 0, NULL, queues, nqueues, worker, lease_ttl_ms, 1, job,
                              &got, err, errlen);
}

void pgq_job_free(pgq_job *job)
{
    free(job);
}

int pgq_heartbeat(pgq_conn *c, const int64_t *ids, const char *const *tokens, size_t n,
                  int64_t lease_ttl_ms, bool *lost, char *err, size_t errlen)
{
    char ttl[24];
    if (n == 0)
        return 0;
    char *idarr = db_int64_array(ids, n), *tokarr = db_text_array(tokens, n);
    if (!idarr || !tokarr) {
        free(idarr);
        free(tokarr);
        return seterr(err, errlen, "heartbeat: out of memory");
    }
    snprintf(ttl, sizeof ttl, "%" PRId64, lease_ttl_ms);
    const char *params[] = { idarr, tokarr, ttl };
    PGresult *r = db_run(c, STMT_HEARTBEAT, 3, params, PGRES_TUPLES_OK, "heartbeat", err, errlen);
    free(idarr);
    free(tokarr);
    if (!r)
        return -1;
    /* Match on id and token: the same job may be listed under a stale
     * token and a live one (a lease lost and the job claimed again). */
    for (size_t i = 0; i < n; i++) {
        lost[i] = true;
        for (int row = 0; row < PQntuples(r); row++)
            if (db_int64(r, row, 0, 0) == ids[i] &&
                strcasecmp(PQgetvalue(r, row, 1), tokens[i]) == 0)
                lost[i] = false;
    }
    PQclear(r);
    return 0;
}

/* Text params for the attempt info columns; NULL where unknown. */
struct info_params {
    char buf[4][24];
    const char *v[4];
};

static void info_params(const pgq_attempt_info *info, struct info_params *p)
{
    memset(p->v, 0, sizeof p->v);
    if (!info)
        return;
    if (info->exit_code >= 0) {
        snprintf(p->buf[0], sizeof p->buf[0], "%d", info->exit_code);
        p->v[0] = p->buf[0];
    }
    if (info->term_signal > 0) {
        snprintf(p->buf[1], sizeof p->buf[1], "%d", info->term_signal);
        p->v[1] = p->buf[1];
    }
    if (info->cpu_ms >= 0) {
        snprintf(p->buf[2], sizeof p->buf[2], "%" PRId64, info->cpu_ms);
        p->v[2] = p->buf[2];
    }
    if (info->max_rss_kb >= 0) {
        snprintf(p->buf[3], sizeof p->buf[3], "%" PRId64, info->max_rss_kb);
        p->v[3] = p->buf[3];
    }
}

int pgq_complete(pgq_conn *c, int64_t id, const char *token, const pgq_attempt_info *info,
                 bool *lease_lost, char *err, size_t errlen)
{
    pgq_ack a = { id, token, info };
    return pgq_complete_claim(c, &a, 1, lease_lost, NULL, 0, NULL, 0, 0, NULL, NULL, err,
                              errlen);
}

/* Error text comes from handlers (a stderr tail may be cut mid-character,
 * or not be UTF-8 at all) and PostgreSQL rejects invalid UTF-8: replace
 * each bad byte with '?' rather than lose the failure. Caller frees. */
static char *valid_utf8(const char *in)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *s = (const unsigned char *)in, *e = s + n; s < e;) {
        size_t k = utf8_char_len(s, (size_t)(e - s));
        if (k == 0) {
            *o++ = '?';
            s++;
        } else {
            memcpy(o, s, k);
            o += k;
            s += k;
        }
    }
    *o = '\0';
    return out;
}

int pgq_fail(pgq_conn *c, int64_t id, const char *token, const char *error,
             const pgq_attempt_info *info, pgq_fail_result *res, char *err, size_t errlen)
{
    char ids[24];
    struct info_params ip;
    char *text = valid_utf8(error && *error ? error : "failed");
    if (!text)
        return seterr(err, errlen, "fail: out of memory");
    snprintf(ids, sizeof ids, "%" PRId64, id);
    info_params(info, &ip);
    const char *params[] = { ids, token, text, ip.v[0], ip.v[1], ip.v[2], ip.v[3] };
    PGresult *r = db_run(c, STMT_FAIL, 7, params, PGRES_TUPLES_OK, "fail", err, errlen);
    free(text);
    if (!r)
        return -1;
    memset(res, 0, sizeof *res);
    if (PQntuples(r) == 0) {
        res->lease_lost = true;
    } else {
        res->dead = strcmp(PQgetvalue(r, 0, 0), "dead") == 0;
        res->retry_in_s = res->dead ? 0 : db_double(r, 0, 1, 0);
    }
    PQclear(r);
    return 0;
}

int pgq_release(pgq_conn *c, int64_t id, const char *token, bool *lease_lost,
                char *err, size_t errlen)
{
    char ids[24];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    const char *params[] = { ids, token };
    PGresult *r = db_run(c, STMT_RELEASE, 2, params, PGRES_TUPLES_OK, "release", err, errlen);
    if (!r)
        return -1;
    *lease_lost = PQntuples(r) == 0;
    PQclear(r);
    return 0;
}

int pgq_reap(pgq_conn *c, int limit, int *reaped, char *err, size_t errlen)
{
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit > 0 ? limit : 1000);
    const char *params[] = { lim };
    PGresult *r = db_run(c, STMT_REAP, 1, params, PGRES_TUPLES_OK, "reap", err, errlen);
    if (!r)
        return -1;
    if (reaped)
        *reaped = PQntuples(r);
    PQclear(r);
    return 0;
}
