/* Completing and claiming (pgq_complete, pgq_claim,
 * pgq_complete_claim[_hinted]): a worker's end of its jobs and the claim of
 * its next in one statement, pgq.complete_claim of
 * migrations/state_machine.sql; a plain complete is that statement
 * with nothing to claim, a plain claim with nothing to acknowledge. The
 * claim is FOR UPDATE SKIP LOCKED in priority, run_at, id order with a
 * fresh lease token per job, and every acknowledged job is fenced by its
 * token (a lost lease is reported, and changes nothing). Claim hints
 * (hints.c) tell the claim where in the index to start. */
#include "db.h"
#include "utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A claimed job from row `row` of a complete_claim result (columns: acked,
 * id, queue, type, payload, attempts, max_retries, priority, lease_token,
 * timeout_ms, ord, run_at, state). One allocation: the struct followed by its strings. */
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
    j->run_at_us = db_int64(r, row, 11, 0);
    return j;
}

/* The acks' columns as array literals: ids, tokens, exit codes, signals,
 * cpu, rss (NULL where unknown), then results and their notes (the whole
 * column NULL when no ack has one: the hot path passes no result). */
#define ACK_COLS 8

struct ack_arrays {
    char *v[ACK_COLS];
};

static void ack_arrays_free(struct ack_arrays *a)
{
    for (int i = 0; i < ACK_COLS; i++)
        free(a->v[i]);
}

/* The acks' results (notes: their notes) as a text array, or NULL (and
 * 0) when no ack has one. -1 when out of memory. */
static int ack_texts(const pgq_ack *acks, size_t n, bool notes, char **out)
{
    const char **v = NULL;
    bool any = false;
    *out = NULL;
    for (size_t i = 0; i < n; i++)
        any |= (notes ? acks[i].result_note : acks[i].result) != NULL;
    if (!any)
        return 0;
    if (!(v = malloc(n * sizeof *v)))
        return -1;
    for (size_t i = 0; i < n; i++)
        v[i] = notes ? acks[i].result_note : acks[i].result;
    *out = db_text_array(v, n);
    free(v);
    return *out ? 0 : -1;
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
    if (ack_texts(acks, n, false, &a->v[6]) < 0 ||
        ack_texts(acks, n, true, &a->v[7]) < 0) {
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
    return pgq_complete_claim_snoozed(c, hints, acks, nacks, lost, NULL, queues, nqueues, worker,
                                      lease_ttl_ms, max_jobs, jobs, njobs, err, errlen);
}

int pgq_complete_claim_snoozed(pgq_conn *c, pgq_hints *hints, const pgq_ack *acks,
                               size_t nacks, bool *lost, bool *snoozed,
                               const char *const *queues, size_t nqueues, const char *worker,
                               int64_t lease_ttl_ms, size_t max_jobs, pgq_job **jobs,
                               size_t *njobs, char *err, size_t errlen)
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
    for (size_t i = 0; i < nacks; i++) {
        size_t bad;
        if (!acks[i].token || strlen(acks[i].token) != PGQ_TOKEN_LEN)
            return seterr(err, errlen, "complete: job %" PRId64 ": malformed lease token",
                          acks[i].id);
        /* Checked here, naming the job: PostgreSQL would refuse the whole
         * statement, every other ack of the batch with it. */
        if (acks[i].result && !utf8_valid(acks[i].result, strlen(acks[i].result), &bad, NULL))
            return seterr(err, errlen, "complete: job %" PRId64 ": result is not valid UTF-8 "
                          "at byte offset %zu", acks[i].id, bad);
        if (acks[i].result_note &&
            !utf8_valid(acks[i].result_note, strlen(acks[i].result_note), &bad, NULL))
            return seterr(err, errlen, "complete: job %" PRId64 ": result note is not valid "
                          "UTF-8 at byte offset %zu", acks[i].id, bad);
    }
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
                             c->delete_done ? "false" : "true", aa.v[6], aa.v[7] };
    const char *what = max_jobs == 0 ? "complete" : nacks == 0 ? "claim" : "complete and claim";
    PGresult *r = db_run(c, STMT_COMPLETE_CLAIM, 17, params, PGRES_TUPLES_OK, what, err, errlen);
    free(qarr);
    ack_arrays_free(&aa);
    if (!r) {
        hints_params_free(&hp);
        pgq_hints_forget(max_jobs > 0 ? hints : NULL);
        return -1;
    }
    /* A claimed job without a position (one claimed after a job of a type
     * at its limit, which the claim stepped over) moves no hint. */
    for (int row = 0; row < PQntuples(r); row++)
        if (PQgetisnull(r, row, 0) && !PQgetisnull(r, row, 11))
            hints_claimed(&hp, PQgetvalue(r, row, 2),
                          (int)db_int64(r, row, 7, 0), db_int64(r, row, 11, 0),
                          db_int64(r, row, 1, 0));
    hints_params_free(&hp);

    for (size_t i = 0; i < nacks; i++) {
        lost[i] = true;
        if (snoozed)
            snoozed[i] = false;
    }
    size_t got = 0;
    bool oom = false;
    for (int row = 0; row < PQntuples(r); row++) {
        if (!PQgetisnull(r, row, 0)) {
            /* A held done ack comes back in its job's new state: "ready"
             * only when the done end applied a snooze. */
            int64_t id = db_int64(r, row, 0, 0);
            bool again = !PQgetisnull(r, row, 12) && strcmp(PQgetvalue(r, row, 12), "ready") == 0;
            for (size_t i = 0; i < nacks; i++)
                if (acks[i].id == id) {
                    lost[i] = false;
                    if (snoozed)
                        snoozed[i] = again;
                }
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

int pgq_complete(pgq_conn *c, int64_t id, const char *token, const pgq_attempt_info *info,
                 bool *lease_lost, char *err, size_t errlen)
{
    pgq_ack a = { id, token, info, NULL, NULL };
    return pgq_complete_claim(c, &a, 1, lease_lost, NULL, 0, NULL, 0, 0, NULL, NULL, err,
                              errlen);
}
