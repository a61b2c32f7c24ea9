/* Operating the queue: requeue, cancel, prune, stats and a job's detail.
 * These are the statements behind the pgq CLI and the dashboard. The state
 * changes are functions of the state machine's one home
 * (migrations/state_machine.sql): conditional on the current state, so
 * two operators acting at once cannot move a job twice, and each action
 * that moved anything is written to pgq.actions in the same statement. */
#include "db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run a state-changing statement over ids ($1) with `who` ($2) and mark
 * done[i] for each id the statement returned. */
static int over_ids(pgq_conn *c, const char *sql, const char *what, const int64_t *ids,
                    size_t n, const char *who, bool *done, int64_t *count,
                    char *err, size_t errlen)
{
    if (count)
        *count = 0;
    if (n == 0)
        return 0;
    char *arr = db_int64_array(ids, n);
    if (!arr)
        return seterr(err, errlen, "%s: out of memory", what);
    const char *params[] = { arr, who };
    PGresult *r = db_query(c, sql, 2, params, PGRES_TUPLES_OK, what, err, errlen);
    free(arr);
    if (!r)
        return -1;
    for (size_t i = 0; done && i < n; i++) {
        done[i] = false;
        for (int row = 0; row < PQntuples(r); row++)
            if (db_int64(r, row, 0, 0) == ids[i])
                done[i] = true;
    }
    if (count)
        *count = PQntuples(r);
    PQclear(r);
    return 0;
}

int pgq_requeue(pgq_conn *c, const int64_t *ids, size_t n, const char *who, bool *done,
                int64_t *count, char *err, size_t errlen)
{
    return over_ids(c, "SELECT id FROM pgq.requeue($1::bigint[], $2)", "requeue", ids, n, who,
                    done, count, err, errlen);
}

int pgq_cancel(pgq_conn *c, const int64_t *ids, size_t n, const char *who, bool *done,
               int64_t *count, char *err, size_t errlen)
{
    return over_ids(c, "SELECT id FROM pgq.cancel($1::bigint[], $2)", "cancel", ids, n, who,
                    done, count, err, errlen);
}

int pgq_pause(pgq_conn *c, const char *const *queues, size_t n, bool pause, const char *who,
              bool *changed, char *err, size_t errlen)
{
    const char *what = pause ? "pause" : "resume";
    for (size_t i = 0; i < n; i++) {
        char why[512];
        if (pgq_queue_name_check(queues[i], why, sizeof why) < 0)
            return seterr(err, errlen, "%s: queue %zu: %s", what, i + 1, why);
    }
    char *arr = db_text_array(queues, n);
    if (!arr)
        return seterr(err, errlen, "%s: out of memory", what);
    const char *params[] = { arr, who ? who : "" };
    PGresult *r = db_query(c, pause ? "SELECT queue FROM pgq.pause($1::text[], $2)"
                                    : "SELECT queue FROM pgq.resume($1::text[], $2)",
                           2, params, PGRES_TUPLES_OK, what, err, errlen);
    free(arr);
    if (!r)
        return -1;
    for (size_t i = 0; changed && i < n; i++) {
        changed[i] = false;
        for (int row = 0; row < PQntuples(r); row++)
            changed[i] |= strcmp(PQgetvalue(r, row, 0), queues[i]) == 0;
    }
    PQclear(r);
    return 0;
}

int pgq_requeue_matching(pgq_conn *c, const char *state, const char *queue, const char *type,
                         const char *who, int64_t *count, char *err, size_t errlen)
{
    if (!state || (strcmp(state, "dead") != 0 && strcmp(state, "cancelled") != 0))
        return seterr(err, errlen, "requeue: state must be dead or cancelled, not \"%s\"",
                      state ? state : "");
    const char *params[] = { state, queue, type, who };
    PGresult *r = db_query(c, "SELECT pgq.requeue_matching($1, $2, $3, $4)", 4, params,
                           PGRES_TUPLES_OK, "requeue", err, errlen);
    if (!r)
        return -1;
    if (count)
        *count = db_int64(r, 0, 0, 0);
    PQclear(r);
    return 0;
}

int pgq_prune(pgq_conn *c, int64_t keep_done_ms, int64_t keep_dead_ms, int limit,
              int64_t *deleted, char *err, size_t errlen)
{
    return pgq_prune_round(c, keep_done_ms, keep_dead_ms, limit, NULL, 0, deleted, err,
                           errlen);
}

int pgq_prune_round(pgq_conn *c, int64_t keep_done_ms, int64_t keep_dead_ms, int limit,
                    char *upto, size_t uptolen, int64_t *deleted, char *err, size_t errlen)
{
    char a[24], b[24], l[16];
    snprintf(a, sizeof a, "%" PRId64, keep_done_ms);
    snprintf(b, sizeof b, "%" PRId64, keep_dead_ms);
    snprintf(l, sizeof l, "%d", limit > 0 ? limit : 10000);
    const char *params[] = { a, b, l, upto && *upto ? upto : NULL };
    PGresult *r = db_query(c, "SELECT deleted, pgq.position_us(done_upto) FROM pgq.prune("
                              "$1::bigint, $2::bigint, $3::int, pgq.from_position_us($4::bigint))",
                           4, params, PGRES_TUPLES_OK, "prune", err, errlen);
    if (!r)
        return -1;
    if (deleted)
        *deleted = db_int64(r, 0, 0, 0);
    /* Where this round's done jobs ended: the next round starts there. */
    if (upto && uptolen && !PQgetisnull(r, 0, 1))
        snprintf(upto, uptolen, "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    return 0;
}

static pgq_count_kind count_kind(const PGresult *r, int row, int col)
{
    const char *k = PQgetvalue(r, row, col);
    return k[0] == '~' ? PGQ_COUNT_ESTIMATE : k[0] == '+' ? PGQ_COUNT_AT_LEAST : PGQ_COUNT_EXACT;
}

bool pgq_queue_unserved(const pgq_queue_stats *q)
{
    return q->ready > 0 && q->pools == 0 && !q->paused;
}

int pgq_stats(pgq_conn *c, pgq_queue_stats **out, size_t *n, char *err, size_t errlen)
{
    return pgq_stats_capped(c, PGQ_STATS_CAP, 60, out, n, err, errlen);
}

/* The figures come from pgq.queue_stats (migration 011), which says how
 * each is found and what it costs. */
int pgq_stats_capped(pgq_conn *c, int cap, double stale_s, pgq_queue_stats **out, size_t *n,
                     char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT queue, ready, ready_is, scheduled, retrying, future_is, running, dead, dead_is,"
        " cancelled, cancelled_is, done, done_is, done_1h, done_1h_is, done_5m, done_5m_window_s,"
        " failed_5m, failed_5m_window_s, oldest_ready_s, paused, pools, waiting, waiting_is"
        " FROM pgq.queue_stats($1::int, $2::float8)";
    if (cap <= 0)
        return seterr(err, errlen, "stats: the cap must be positive (got %d)", cap);
    char caps[16], stales[32];
    snprintf(caps, sizeof caps, "%d", cap);
    snprintf(stales, sizeof stales, "%.3f", stale_s > 0 ? stale_s : 60);
    const char *params[] = { caps, stales };
    PGresult *r = db_query(c, sql, 2, params, PGRES_TUPLES_OK, "stats", err, errlen);
    if (!r)
        return -1;
    size_t rows = (size_t)PQntuples(r);
    pgq_queue_stats *s = calloc(rows + 1, sizeof *s);
    if (!s) {
        PQclear(r);
        return seterr(err, errlen, "stats: out of memory");
    }
    for (int i = 0; i < (int)rows; i++) {
        pgq_queue_stats *q = &s[i];
        snprintf(q->queue, sizeof q->queue, "%s", PQgetvalue(r, i, 0));
        q->ready = db_int64(r, i, 1, 0);
        q->ready_is = count_kind(r, i, 2);
        q->scheduled = db_int64(r, i, 3, 0);
        q->retrying = db_int64(r, i, 4, 0);
        q->future_is = count_kind(r, i, 5);
        q->running = db_int64(r, i, 6, 0);
        q->dead = db_int64(r, i, 7, 0);
        q->dead_is = count_kind(r, i, 8);
        q->cancelled = db_int64(r, i, 9, 0);
        q->cancelled_is = count_kind(r, i, 10);
        q->done = db_int64(r, i, 11, 0);
        q->done_is = count_kind(r, i, 12);
        q->done_last_hour = db_int64(r, i, 13, 0);
        q->done_last_hour_is = count_kind(r, i, 14);
        q->done_5m = db_int64(r, i, 15, 0);
        q->done_5m_window_s = strtod(PQgetvalue(r, i, 16), NULL);
        q->failed_5m = db_int64(r, i, 17, 0);
        q->failed_5m_window_s = strtod(PQgetvalue(r, i, 18), NULL);
        q->oldest_ready_s = strtod(PQgetvalue(r, i, 19), NULL);
        q->paused = db_bool(r, i, 20);
        q->pools = (int)db_int64(r, i, 21, 0);
        q->waiting = db_int64(r, i, 22, 0);
        q->waiting_is = count_kind(r, i, 23);
    }
    PQclear(r);
    *out = s;
    *n = rows;
    return 0;
}

/* The three results a detail points into; freed together. */
struct detail_priv {
    PGresult *job, *attempts, *effects, *deps;
};

static const char *str_or_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

int pgq_job_describe(pgq_conn *c, int64_t id, pgq_job_detail **out, char *err, size_t errlen)
{
    static const char job_sql[] =
        "SELECT id, queue, type, state, jsonb_pretty(payload), run_at::text, idempotency_key,"
        " lease_owner, lease_expires_at::text, last_error, created_at::text, started_at::text,"
        " finished_at::text, priority, attempts, max_retries, r.result, r.result_note,"
        " j.waiting_for"
        " FROM pgq.jobs j LEFT JOIN LATERAL (SELECT x.result, x.result_note FROM pgq.job_results x"
        "  WHERE x.job_id = j.id ORDER BY x.attempt DESC LIMIT 1) r ON true WHERE j.id = $1";
    /* A job done at its first attempt has no history row (the job row
     * holds that attempt, see migrations 003 and 017): show it from there,
     * with an exec handler's CPU time and RSS (its exit code was 0). */
    static const char att_sql[] =
        "SELECT attempt, outcome, worker, error, started_at::text, finished_at::text,"
        " duration_ms, exit_code, term_signal, cpu_ms, max_rss_kb FROM ("
        "  SELECT id AS ord, attempt, outcome, worker, error, started_at, finished_at,"
        "   duration_ms, exit_code, term_signal, cpu_ms, max_rss_kb"
        "   FROM pgq.job_attempts WHERE job_id = $1"
        "  UNION ALL"
        "  SELECT 9223372036854775807, j.attempts, 'done', j.lease_owner, NULL, j.started_at,"
        "   j.finished_at, extract(epoch FROM j.finished_at - j.started_at) * 1000,"
        "   CASE WHEN j.cpu_ms IS NOT NULL OR j.max_rss_kb IS NOT NULL THEN 0 END, NULL,"
        "   j.cpu_ms, j.max_rss_kb"
        "   FROM pgq.jobs j WHERE j.id = $1 AND j.state = 'done' AND NOT EXISTS ("
        "    SELECT 1 FROM pgq.job_attempts a WHERE a.job_id = j.id AND a.outcome = 'done'"
        "     AND a.attempt = j.attempts)) x ORDER BY ord";
    /* In doubt through the view, which compares the lease tokens with its
     * owner's rights: a viewer may not read tokens (migrations/grants.sql). */
    static const char eff_sql[] =
        "SELECT e.key, e.state, e.started_at::text, e.finished_at::text, e.attempt,"
        " EXISTS (SELECT 1 FROM pgq.effects_in_doubt d WHERE d.job_id = e.job_id AND d.key = e.key)"
        " FROM pgq.effects e WHERE e.job_id = $1"
        " ORDER BY e.started_at, e.key";
    /* Parents (kind 0) then children (kind 1), each by id; children cut
     * at PGQ_DETAIL_CHILDREN (a fan-out may have any number), with the
     * total. */
    static const char deps_sql[] =
        "SELECT kind, id, state, total FROM ("
        "  SELECT 0 AS kind, d.parent_id AS id, coalesce(p.state, 'gone') AS state, 0::bigint AS total"
        "   FROM pgq.job_deps d LEFT JOIN pgq.jobs p ON p.id = d.parent_id WHERE d.child_id = $1"
        "  UNION ALL"
        "  (SELECT 1, d.child_id, c.state, count(*) OVER ()"
        "   FROM pgq.job_deps d JOIN pgq.jobs c ON c.id = d.child_id WHERE d.parent_id = $1"
        "   ORDER BY d.child_id LIMIT $2)) x ORDER BY kind, id";
    char ids[24], lim[16];
    snprintf(ids, sizeof ids, "%" PRId64, id);
    snprintf(lim, sizeof lim, "%d", PGQ_DETAIL_CHILDREN);
    const char *dparams[] = { ids, lim };
    const char *params[] = { ids };
    struct detail_priv *p = calloc(1, sizeof *p);
    pgq_job_detail *d = calloc(1, sizeof *d);

    *out = NULL;
    if (!p || !d) {
        free(p);
        free(d);
        return seterr(err, errlen, "job %s: out of memory", ids);
    }
    d->priv_ = p;
    p->job = db_query(c, job_sql, 1, params, PGRES_TUPLES_OK, "job", err, errlen);
    if (!p->job)
        goto fail;
    if (PQntuples(p->job) == 0) {
        pgq_job_detail_free(d);
        return 0;
    }
    p->attempts = db_query(c, att_sql, 1, params, PGRES_TUPLES_OK, "job attempts", err, errlen);
    if (!p->attempts)
        goto fail;
    p->effects = db_query(c, eff_sql, 1, params, PGRES_TUPLES_OK, "job effects", err, errlen);
    if (!p->effects)
        goto fail;
    p->deps = db_query(c, deps_sql, 2, dparams, PGRES_TUPLES_OK, "job dependencies", err, errlen);
    if (!p->deps)
        goto fail;
    PGresult *j = p->job;
    d->id = id;
    d->queue = PQgetvalue(j, 0, 1);
    d->type = PQgetvalue(j, 0, 2);
    d->state = PQgetvalue(j, 0, 3);
    d->payload_pretty = PQgetvalue(j, 0, 4);
    d->run_at = PQgetvalue(j, 0, 5);
    d->idempotency_key = str_or_null(j, 0, 6);
    d->lease_owner = str_or_null(j, 0, 7);
    d->lease_expires_at = str_or_null(j, 0, 8);
    d->last_error = str_or_null(j, 0, 9);
    d->created_at = PQgetvalue(j, 0, 10);
    d->started_at = str_or_null(j, 0, 11);
    d->finished_at = str_or_null(j, 0, 12);
    d->priority = (int)db_int64(j, 0, 13, 0);
    d->attempts = (int)db_int64(j, 0, 14, 0);
    d->max_retries = (int)db_int64(j, 0, 15, 0);
    d->result = str_or_null(j, 0, 16);
    d->result_note = str_or_null(j, 0, 17);
    d->waiting_for = (int)db_int64(j, 0, 18, 0);

    d->nattempts = (size_t)PQntuples(p->attempts);
    d->attempts_v = calloc(d->nattempts + 1, sizeof *d->attempts_v);
    d->neffects = (size_t)PQntuples(p->effects);
    d->effects = calloc(d->neffects + 1, sizeof *d->effects);
    size_t ndeps = (size_t)PQntuples(p->deps);
    d->parents = calloc(ndeps + 1, sizeof *d->parents);
    d->children = calloc(ndeps + 1, sizeof *d->children);
    if (!d->attempts_v || !d->effects || !d->parents || !d->children) {
        seterr(err, errlen, "job %s: out of memory", ids);
        goto fail;
    }
    for (int i = 0; i < (int)d->nattempts; i++) {
        pgq_attempt_row *a = &d->attempts_v[i];
        PGresult *r = p->attempts;
        a->attempt = (int)db_int64(r, i, 0, 0);
        a->outcome = PQgetvalue(r, i, 1);
        a->worker = str_or_null(r, i, 2);
        a->error = str_or_null(r, i, 3);
        a->started_at = str_or_null(r, i, 4);
        a->finished_at = PQgetvalue(r, i, 5);
        a->duration_ms = db_double(r, i, 6, -1);
        a->exit_code = (int)db_int64(r, i, 7, -1);
        a->term_signal = (int)db_int64(r, i, 8, 0);
        a->cpu_ms = db_int64(r, i, 9, -1);
        a->max_rss_kb = db_int64(r, i, 10, -1);
    }
    for (int i = 0; i < (int)d->neffects; i++) {
        pgq_effect_row *e = &d->effects[i];
        PGresult *r = p->effects;
        e->key = PQgetvalue(r, i, 0);
        e->state = PQgetvalue(r, i, 1);
        e->started_at = PQgetvalue(r, i, 2);
        e->finished_at = str_or_null(r, i, 3);
        e->attempt = (int)db_int64(r, i, 4, 0);
        e->in_doubt = db_bool(r, i, 5);
    }
    for (int i = 0; i < (int)ndeps; i++) {
        PGresult *r = p->deps;
        bool child = db_int64(r, i, 0, 0) == 1;
        pgq_dep_row *row = child ? &d->children[d->nchildren++] : &d->parents[d->nparents++];
        row->id = db_int64(r, i, 1, 0);
        row->state = PQgetvalue(r, i, 2);
        if (child)
            d->nchildren_total = (size_t)db_int64(r, i, 3, 0);
    }
    *out = d;
    return 0;
fail:
    pgq_job_detail_free(d);
    return -1;
}

void pgq_job_detail_free(pgq_job_detail *d)
{
    if (!d)
        return;
    struct detail_priv *p = d->priv_;
    if (p) {
        PQclear(p->job);
        PQclear(p->attempts);
        PQclear(p->effects);
        PQclear(p->deps);
        free(p);
    }
    free(d->attempts_v);
    free(d->effects);
    free(d->parents);
    free(d->children);
    free(d);
}
