/* The dashboard's model, checked against a seeded database: snapshots are
 * built with model_refresh_once (what the model thread runs each refresh)
 * and compared with what was seeded: counts per queue and state, running
 * jobs with their worker and lease, dead letters with their last errors,
 * pools with stale detection, throughput, health rows, a job's detail, the
 * filters, and read-only detection for a role without UPDATE. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "testutil.h"
#include "ui.h"

static void setup(void)
{
    tu_reset();
}

/* Add a job of type and run it through `fails` failed attempts, each with
 * error "<prefix> N" (a job with max_retries fails-1 ends dead). */
static int64_t add_failing(pgq_conn *c, const char *type, const char *queue, int fails,
                           const char *prefix)
{
    char err[512], msg[128];
    pgq_add_result res;
    ck_assert_msg(pgq_add(c, type, "{\"n\":1}", NULL, &res, err, sizeof err) == 0, "add: %s", err);
    for (int i = 1; i <= fails; i++) {
        const char *q[] = { queue };
        pgq_job *j = NULL;
        ck_assert_msg(pgq_claim(c, q, 1, "tester:1:w0", 30000, &j, err, sizeof err) == 0, "%s", err);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(j->id, res.id);
        snprintf(msg, sizeof msg, "%s %d", prefix, i);
        pgq_fail_result fr;
        pgq_attempt_info info = { 1, 0, 5, 1024 };
        ck_assert_msg(pgq_fail(c, j->id, j->lease_token, msg, &info, &fr, err, sizeof err) == 0,
                      "%s", err);
        pgq_job_free(j);
    }
    return res.id;
}

/* The seeded fleet: queue "mail" with 2 ready, 1 running, 2 dead (one with
 * two attempts), 1 done; queue "img" with 1 scheduled; two pools, one of
 * them silent for 5 minutes. */
static void seed(int64_t *running_id, int64_t *dead2_id)
{
    char err[512];
    tu_type("tui-mail", "mail", "", 1, 0);
    tu_type("tui-img", "img", "", 0, 0);
    pgq_conn *c = tu_connect();
    *dead2_id = add_failing(c, "tui-mail", "mail", 2, "smtp refused");
    add_failing(c, "tui-mail", "mail", 2, "smtp refused");
    pgq_add_result res;
    ck_assert(pgq_add(c, "tui-mail", "{\"n\":2}", NULL, &res, err, sizeof err) == 0);
    const char *q[] = { "mail" };
    pgq_job *j = NULL;
    ck_assert(pgq_claim(c, q, 1, "alpha:10:w3", 30000, &j, err, sizeof err) == 0 && j);
    *running_id = j->id;
    pgq_job_free(j);
    ck_assert(pgq_add(c, "tui-mail", "{\"n\":3}", NULL, &res, err, sizeof err) == 0);
    ck_assert(pgq_add(c, "tui-mail", "{\"n\":4}", NULL, &res, err, sizeof err) == 0);
    ck_assert(pgq_add(c, "tui-mail", "{\"n\":5}", NULL, &res, err, sizeof err) == 0);
    ck_assert(pgq_claim(c, q, 1, "alpha:10:w1", 30000, &j, err, sizeof err) == 0 && j);
    bool lost;
    ck_assert(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0 && !lost);
    pgq_job_free(j);
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.delay_ms = 3600000;
    ck_assert(pgq_add(c, "tui-img", "{\"n\":6}", &o, &res, err, sizeof err) == 0);
    const char *qs[] = { "mail", "img" };
    ck_assert(pgq_pool_register_row(c, "alpha:10:1", "alpha", 10, 4, qs, 2, err, sizeof err) == 0);
    ck_assert(pgq_pool_register_row(c, "beta:20:1", "beta", 20, 2, qs, 1, err, sizeof err) == 0);
    tu_exec("UPDATE pgq.workers SET last_heartbeat = now() - interval '5 minutes' WHERE host = 'beta'",
            0, NULL);
    pgq_disconnect(c);
}

static struct snapshot *snap(const struct model_query *q)
{
    char err[512];
    struct snapshot *s = NULL;
    pgq_conn *c = tu_connect();
    ck_assert_msg(model_refresh_once(c, q, &s, err, sizeof err) == 0, "refresh: %s", err);
    pgq_disconnect(c);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(atomic_load(&s->refs), 1);
    return s;
}

static const pgq_queue_stats *queue(const struct snapshot *s, const char *name)
{
    for (size_t i = 0; i < s->nqueues; i++)
        if (strcmp(s->queues[i].queue, name) == 0)
            return &s->queues[i];
    ck_abort_msg("queue %s not in the snapshot", name);
    return NULL;
}

START_TEST(snapshot_counts_lists_and_pools)
{
    int64_t running_id, dead2;
    seed(&running_id, &dead2);
    struct model_query q = { .parts = MODEL_ALL };
    struct snapshot *s = snap(&q);

    ck_assert(!s->read_only);
    ck_assert_int_eq(s->nqueues, 2);
    const pgq_queue_stats *m = queue(s, "mail");
    ck_assert_int_eq(m->ready, 2);
    ck_assert_int_eq(m->running, 1);
    ck_assert_int_eq(m->dead, 2);
    ck_assert_int_eq(m->done_last_hour, 1);
    ck_assert_int_eq(queue(s, "img")->scheduled, 1);
    ck_assert_int_eq(s->total.dead, 2);
    ck_assert_int_eq(s->total.ready, 2);

    /* throughput: the one done job, finished just now */
    int64_t sum = 0;
    for (int i = 0; i < MODEL_TPUT_BUCKETS; i++)
        sum += s->tput[i];
    ck_assert_int_eq(sum, 1);
    ck_assert_int_eq(s->tput[0] + s->tput[1], 1);

    ck_assert_int_eq(s->nrunning, 1);
    ck_assert_int_eq(s->running_total, 1);
    ck_assert_int_eq(s->running[0].id, running_id);
    ck_assert_str_eq(s->running[0].owner, "alpha:10:w3");
    ck_assert_str_eq(s->running[0].type, "tui-mail");
    ck_assert(s->running[0].lease_left_s > 0 && s->running[0].lease_left_s <= 30);
    ck_assert_int_eq(s->running[0].attempts, 1);

    ck_assert_int_eq(s->ndead, 2);
    ck_assert_int_eq(s->dead_total, 2);
    for (size_t i = 0; i < s->ndead; i++) {
        ck_assert_str_eq(s->dead[i].error, "smtp refused 2");
        ck_assert_int_eq(s->dead[i].attempts, 2);
        ck_assert_str_eq(s->dead[i].queue, "mail");
    }
    ck_assert_int_ge(snapshot_find(s->dead, s->ndead, dead2), 0);

    ck_assert_int_eq(s->njobs, 7);
    ck_assert_int_eq(s->jobs_total, 7);
    ck_assert_int_eq(s->jobs[0].id, 7);   /* newest first */
    ck_assert(s->jobs[0].scheduled);

    ck_assert_int_eq(s->npools, 2);
    ck_assert_int_eq(s->nstale, 1);
    for (size_t i = 0; i < s->npools; i++) {
        const struct snap_pool *p = &s->pools[i];
        bool beta = strcmp(p->host, "beta") == 0;
        ck_assert_int_eq(p->stale, beta);
        ck_assert_int_eq(p->pid, beta ? 20 : 10);
        ck_assert_int_eq(p->workers, beta ? 2 : 4);
        if (beta)
            ck_assert(p->beat_age_s >= 299);
        else
            ck_assert_str_eq(p->queues, "mail,img");
    }
    snapshot_release(s);
}
END_TEST

START_TEST(snapshot_health_rows)
{
    struct model_query q = { .parts = MODEL_HEALTH };
    struct snapshot *s = snap(&q);
    ck_assert_int_gt(s->db_bytes, 0);
    ck_assert_int_ge(s->ntables, 6);
    bool jobs = false;
    for (size_t i = 0; i < s->ntables; i++) {
        if (strcmp(s->tables[i].name, "jobs") == 0) {
            jobs = true;
            ck_assert_int_gt(s->tables[i].bytes, 0);
        }
    }
    ck_assert(jobs);
    /* Only the parts asked for: no lists. */
    ck_assert_int_eq(s->nrunning + s->ndead + s->njobs + s->npools, 0);
    snapshot_release(s);
}
END_TEST

/* An open transaction holding a snapshot and a session waiting for a lock
 * on pgq.jobs show on the Health screen. */
START_TEST(snapshot_health_shows_old_xact_and_lock_wait)
{
    PGconn *holder = PQconnectdb(tu_db_url());
    PGconn *waiter = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(holder) == CONNECTION_OK && PQstatus(waiter) == CONNECTION_OK);
    PQclear(PQexec(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    /* SHARE: the dashboard's own reads still pass, writers wait */
    PQclear(PQexec(holder, "LOCK TABLE pgq.jobs IN SHARE MODE"));
    PQclear(PQexec(holder, "SELECT count(*) FROM pgq.jobs"));   /* takes the snapshot */
    ck_assert(PQsendQuery(waiter, "UPDATE pgq.jobs SET priority = priority WHERE false") == 1);
    int hpid = PQbackendPID(holder), wpid = PQbackendPID(waiter);

    struct model_query q = { .parts = MODEL_HEALTH };
    bool xact = false, lock = false;
    for (int tries = 0; tries < 100 && !(xact && lock); tries++) {
        struct snapshot *s = snap(&q);
        for (size_t i = 0; i < s->nxacts; i++)
            xact |= s->xacts[i].pid == hpid;
        for (size_t i = 0; i < s->nlocks; i++) {
            if (s->locks[i].pid == wpid) {
                lock = true;
                ck_assert_str_eq(s->locks[i].rel, "pgq.jobs");
                ck_assert_str_eq(s->locks[i].mode, "RowExclusiveLock");
                char want[16];
                snprintf(want, sizeof want, "%d", hpid);
                ck_assert_str_eq(s->locks[i].blockers, want);
            }
        }
        snapshot_release(s);
    }
    ck_assert_msg(xact, "the open transaction is not listed");
    ck_assert_msg(lock, "the lock wait is not listed");
    PQclear(PQexec(holder, "ROLLBACK"));
    PGresult *r;
    while ((r = PQgetResult(waiter)))
        PQclear(r);
    PQfinish(holder);
    PQfinish(waiter);
}
END_TEST

START_TEST(snapshot_filters_and_detail)
{
    int64_t running_id, dead2;
    seed(&running_id, &dead2);
    struct model_query q = { .parts = MODEL_ALL, .detail_id = dead2 };

    /* text: case-insensitive substring of the error, literal % */
    snprintf(q.filter.text, sizeof q.filter.text, "SMTP REFUSED");
    struct snapshot *s = snap(&q);
    ck_assert_int_eq(s->dead_total, 2);
    ck_assert_int_eq(s->nrunning, 0);
    ck_assert(s->detail);
    ck_assert_int_eq(s->detail->id, dead2);
    ck_assert_int_eq(s->detail->nattempts, 2);
    ck_assert_str_eq(s->detail->attempts_v[0].error, "smtp refused 1");
    ck_assert_str_eq(s->detail->attempts_v[1].error, "smtp refused 2");
    ck_assert_int_eq(s->detail->attempts_v[0].cpu_ms, 5);
    snapshot_release(s);

    snprintf(q.filter.text, sizeof q.filter.text, "%%");
    s = snap(&q);
    ck_assert_int_eq(s->dead_total, 0);
    ck_assert_int_eq(s->jobs_total, 0);
    snapshot_release(s);

    memset(&q.filter, 0, sizeof q.filter);
    snprintf(q.filter.queue, sizeof q.filter.queue, "img");
    s = snap(&q);
    ck_assert_int_eq(s->dead_total, 0);
    ck_assert_int_eq(s->jobs_total, 1);
    ck_assert_int_eq(s->nrunning, 0);
    snapshot_release(s);

    memset(&q.filter, 0, sizeof q.filter);
    snprintf(q.filter.state, sizeof q.filter.state, "scheduled");
    s = snap(&q);
    ck_assert_int_eq(s->jobs_total, 1);
    ck_assert_str_eq(s->jobs[0].type, "tui-img");
    snapshot_release(s);

    snprintf(q.filter.state, sizeof q.filter.state, "ready");
    snprintf(q.filter.type, sizeof q.filter.type, "tui-mail");
    s = snap(&q);
    ck_assert_int_eq(s->jobs_total, 2);
    snapshot_release(s);

    /* a job that does not exist: no detail, no error */
    q.detail_id = 999999;
    s = snap(&q);
    ck_assert_ptr_null(s->detail);
    snapshot_release(s);
}
END_TEST

START_TEST(snapshot_read_only_role)
{
    if (tu_int("SELECT rolsuper::int FROM pg_roles WHERE rolname = current_user", 0, NULL) != 1)
        return;   /* cannot create a role here */
    tu_exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgq_tui_ro') THEN"
            " CREATE ROLE pgq_tui_ro LOGIN; END IF; END$$", 0, NULL);
    /* a viewer (README, "Roles and grants"): reads, may not act */
    tu_exec("DO $$BEGIN IF NOT pg_has_role('pgq_tui_ro', 'pgq_viewer', 'MEMBER') THEN"
            " GRANT pgq_viewer TO pgq_tui_ro; END IF; END$$", 0, NULL);
    char *url = tu_text("SELECT $1::text || CASE WHEN $1 LIKE '%?%' THEN '&' ELSE '?' END"
                        " || 'user=pgq_tui_ro'", 1, (const char *[]){ tu_db_url() });
    char err[512];
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect(url, &c, err, sizeof err) == 0, "connect as pgq_tui_ro: %s", err);
    struct model_query q = { .parts = MODEL_ALL };
    struct snapshot *s = NULL;
    ck_assert_msg(model_refresh_once(c, &q, &s, err, sizeof err) == 0, "%s", err);
    ck_assert(s->read_only);
    ck_assert_str_eq(s->user, "pgq_tui_ro");
    snapshot_release(s);
    pgq_disconnect(c);
    free(url);
}
END_TEST

/* Claim one job of queue for owner; its id. */
static int64_t claim_as(pgq_conn *c, const char *queue, const char *owner, pgq_job **out)
{
    char err[512];
    const char *q[] = { queue };
    pgq_job *j = NULL;
    ck_assert_msg(pgq_claim(c, q, 1, owner, 30000, &j, err, sizeof err) == 0 && j, "claim: %s",
                  err);
    int64_t id = j->id;
    if (out)
        *out = j;
    else
        pgq_job_free(j);
    return id;
}

/* The header's running count and the pools' in-flight jobs come from the
 * same rows in the same snapshot: they agree, whatever the pools last
 * reported in their heartbeat (the header said running 1 while the pool
 * row said IN-FL 0 before). Running jobs of no registered pool are counted
 * apart. */
START_TEST(pool_in_flight_agrees_with_running)
{
    char err[512];
    tu_type("tui-w", "work", "", 1, 0);
    pgq_conn *c = tu_connect();
    pgq_add_result res;
    for (int i = 0; i < 4; i++)
        ck_assert(pgq_add(c, "tui-w", "{}", NULL, &res, err, sizeof err) == 0);
    const char *qs[] = { "work" };
    ck_assert(pgq_pool_register_row(c, "tp:1:1", "tp", 1, 4, qs, 1, err, sizeof err) == 0);
    claim_as(c, "work", "tp:1:1/w0", NULL);
    claim_as(c, "work", "tp:1:1/w3", NULL);
    claim_as(c, "work", "gone:2:2/w0", NULL);
    /* the pool's own report is stale: it says nothing is in flight */
    ck_assert_int_eq(tu_int("SELECT in_flight FROM pgq.workers WHERE name = 'tp:1:1'", 0, NULL), 0);
    pgq_disconnect(c);

    struct model_query q = { .parts = MODEL_OVERVIEW };
    struct snapshot *s = snap(&q);
    ck_assert_int_eq(s->npools, 1);
    ck_assert_int_eq(s->pools[0].in_flight, 2);
    ck_assert_int_eq(s->running_orphans, 1);
    ck_assert_int_eq(s->total.running, 3);
    ck_assert_int_eq(s->total.running, s->pools[0].in_flight + s->running_orphans);
    snapshot_release(s);
}
END_TEST

/* A done job's row does not show an earlier attempt's error as if it were
 * current; a retrying and a dead job's rows do. */
START_TEST(done_job_row_has_no_stale_error)
{
    char err[512];
    tu_type("tui-e", "err", "", 3, 0);
    pgq_conn *c = tu_connect();
    int64_t done_id = add_failing(c, "tui-e", "err", 1, "flaky");
    tu_exec("UPDATE pgq.jobs SET run_at = now() WHERE id = $1", 1,
            (const char *[]){ tu_fmt("%lld", (long long)done_id) });
    pgq_job *j = NULL;
    ck_assert_int_eq(claim_as(c, "err", "tester:1:w0", &j), done_id);
    bool lost;
    ck_assert(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0 && !lost);
    pgq_job_free(j);
    int64_t retry_id = add_failing(c, "tui-e", "err", 1, "again");
    pgq_disconnect(c);
    char *le = tu_text("SELECT last_error FROM pgq.jobs WHERE id = $1", 1,
                       (const char *[]){ tu_fmt("%lld", (long long)done_id) });
    ck_assert_str_eq(le, "flaky 1");
    free(le);

    struct model_query q = { .parts = MODEL_JOBS, .detail_id = done_id };
    struct snapshot *s = snap(&q);
    int di = snapshot_find(s->jobs, s->njobs, done_id);
    int ri = snapshot_find(s->jobs, s->njobs, retry_id);
    ck_assert(di >= 0 && ri >= 0);
    ck_assert_str_eq(s->jobs[di].state, "done");
    ck_assert_str_eq(s->jobs[di].error, "");
    ck_assert_str_eq(s->jobs[ri].error, "again 1");
    /* the history keeps it, as the earlier attempt's */
    ck_assert(s->detail && s->detail->nattempts == 2);
    ck_assert_str_eq(s->detail->attempts_v[0].error, "flaky 1");
    snapshot_release(s);
}
END_TEST

/* The filter prompt: words and free text; an unknown state is named with
 * the states there are (it said "no job matches" before). */
START_TEST(filter_parse_words_and_bad_state)
{
    struct model_filter f;
    char err[200] = "";
    ck_assert_int_eq(filter_parse("queue:mail smtp state:dead type:tui-mail refused", &f, err,
                                  sizeof err), 0);
    ck_assert_str_eq(f.queue, "mail");
    ck_assert_str_eq(f.type, "tui-mail");
    ck_assert_str_eq(f.state, "dead");
    ck_assert_str_eq(f.text, "smtp refused");
    ck_assert_int_eq(filter_parse("INV-3 state:bogus", &f, err, sizeof err), -1);
    ck_assert_str_eq(err, "unknown state \"bogus\": waiting, ready, scheduled, running, done, "
                          "dead, cancelled");
    ck_assert_int_eq(filter_parse("", &f, err, sizeof err), 0);
    ck_assert(!f.queue[0] && !f.type[0] && !f.state[0] && !f.text[0]);
}
END_TEST

/* Rows 100, 99, ... (newest first), as a list shows them. */
static struct snap_job *rows_from(int64_t newest, size_t n)
{
    struct snap_job *r = calloc(n, sizeof *r);
    for (size_t i = 0; i < n; i++)
        r[i].id = newest - (int64_t)i;
    return r;
}

/* Where the cursor goes when new jobs arrive (follow.c): at the head it
 * stays at the head, so new jobs never scroll off the top; moved down it
 * stays on its job, with the head still in view while that job is on the
 * page; scrolled down, the window moves with the job. */
START_TEST(list_cursor_follows_head_or_job)
{
    const int page = 10;
    struct snap_job *a = rows_from(100, 30);   /* 100 .. 71 */
    struct snap_job *b = rows_from(103, 33);   /* three new jobs on top */
    struct list_pos p = { 0, 0, 0 };
    list_follow(&p, a, 30, page);
    ck_assert(p.cursor == 0 && p.top == 0 && p.sel_id == 100);
    list_follow(&p, b, 33, page);
    ck_assert_int_eq(p.cursor, 0);
    ck_assert_int_eq(p.top, 0);
    ck_assert_int_eq(p.sel_id, 103);           /* the newest, not the old 100 */

    /* moved down to job 98 (row 2 of a): it stays on 98, the head in view */
    p = (struct list_pos){ 98, 2, 0 };
    list_follow(&p, b, 33, page);
    ck_assert_int_eq(p.sel_id, 98);
    ck_assert_int_eq(p.cursor, 5);
    ck_assert_int_eq(p.top, 0);

    /* near the bottom of the page: the window moves only as far as needed */
    p = (struct list_pos){ 92, 8, 0 };
    list_follow(&p, b, 33, page);
    ck_assert_int_eq(p.cursor, 11);
    ck_assert_int_eq(p.top, 2);

    /* scrolled down: the rows on screen hold still */
    p = (struct list_pos){ 85, 15, 12 };
    list_follow(&p, b, 33, page);
    ck_assert_int_eq(p.cursor, 18);
    ck_assert_int_eq(p.top, 15);

    /* the chosen job left the list: same row */
    p = (struct list_pos){ 5, 4, 0 };
    list_follow(&p, b, 33, page);
    ck_assert_int_eq(p.cursor, 4);
    ck_assert_int_eq(p.sel_id, 99);

    /* an empty list */
    list_follow(&p, b, 0, page);
    ck_assert(p.cursor == 0 && p.top == 0 && p.sel_id == 0);
    free(a);
    free(b);
}
END_TEST

static const pgq_queue_stats *find_q(const pgq_queue_stats *s, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s[i].queue, name) == 0)
            return &s[i];
    ck_abort_msg("queue %s not in the stats", name);
    return NULL;
}

/* Counts through capped ranges: exact up to the cap, marked above it
 * (never a silent wrong number); running always exact; recent throughput
 * and failures per queue; a queue with due jobs and no live pool is
 * unserved, a paused one is not. */
START_TEST(stats_caps_marks_and_unserved)
{
    char err[512];
    tu_type("tui-s", "big", "", 0, 0);
    pgq_conn *c = tu_connect();
    add_failing(c, "tui-s", "big", 1, "boom");   /* max_retries 0: dead */
    pgq_add_result res;
    for (int i = 0; i < 6; i++)
        ck_assert(pgq_add(c, "tui-s", "{}", NULL, &res, err, sizeof err) == 0);
    for (int i = 0; i < 3; i++) {
        pgq_job *j = NULL;
        claim_as(c, "big", "tester:1:w0", &j);
        bool lost;
        ck_assert(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0);
        pgq_job_free(j);
    }
    claim_as(c, "big", "tester:1:w1", NULL);      /* 2 ready left, 1 running */

    pgq_queue_stats *s;
    size_t n;
    ck_assert_msg(pgq_stats_capped(c, 100, 60, &s, &n, err, sizeof err) == 0, "%s", err);
    const pgq_queue_stats *q = find_q(s, n, "big");
    ck_assert_int_eq(q->ready, 2);
    ck_assert_int_eq(q->ready_is, PGQ_COUNT_EXACT);
    ck_assert_int_eq(q->running, 1);
    ck_assert_int_eq(q->done, 3);
    ck_assert_int_eq(q->done_is, PGQ_COUNT_EXACT);
    ck_assert_int_eq(q->dead, 1);
    ck_assert_int_eq(q->done_last_hour, 3);
    ck_assert_int_eq(q->done_5m, 3);
    ck_assert_int_eq(q->failed_5m, 1);
    ck_assert(q->done_5m_window_s == 300 && q->failed_5m_window_s == 300);
    ck_assert(q->oldest_ready_s >= 0);
    ck_assert_int_eq(q->pools, 0);
    ck_assert(pgq_queue_unserved(q));
    free(s);

    /* a cap of 1: every count above it is marked; the estimates are the
     * planner's, from the statistics ANALYZE gathers */
    tu_exec("ANALYZE pgq.jobs", 0, NULL);
    ck_assert(pgq_stats_capped(c, 1, 60, &s, &n, err, sizeof err) == 0);
    q = find_q(s, n, "big");
    ck_assert_int_ne(q->ready_is, PGQ_COUNT_EXACT);
    ck_assert_int_ge(q->ready, 2);
    ck_assert_int_ne(q->done_is, PGQ_COUNT_EXACT);
    ck_assert_int_ge(q->done, 2);
    ck_assert_int_eq(q->done_last_hour_is, PGQ_COUNT_AT_LEAST);
    ck_assert_int_eq(q->done_last_hour, 1);
    ck_assert_int_eq(q->dead, 1);                 /* exactly one: within the cap */
    ck_assert_int_eq(q->dead_is, PGQ_COUNT_EXACT);
    ck_assert_int_eq(q->running, 1);
    ck_assert_int_eq(q->failed_5m, 1);
    free(s);
    ck_assert_int_eq(pgq_stats_capped(c, 0, 60, &s, &n, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cap"), "%s", err);

    /* a live pool that claims from it serves it; a silent one does not */
    const char *qs[] = { "other", "big" };
    ck_assert(pgq_pool_register_row(c, "sv:1:1", "sv", 1, 2, qs, 2, err, sizeof err) == 0);
    ck_assert(pgq_stats(c, &s, &n, err, sizeof err) == 0);
    q = find_q(s, n, "big");
    ck_assert_int_eq(q->pools, 1);
    ck_assert(!pgq_queue_unserved(q));
    free(s);
    tu_exec("UPDATE pgq.workers SET last_heartbeat = now() - interval '2 minutes'", 0, NULL);
    ck_assert(pgq_stats(c, &s, &n, err, sizeof err) == 0);
    ck_assert(pgq_queue_unserved(find_q(s, n, "big")));
    free(s);
    /* paused: not unserved (nobody is meant to claim) */
    const char *pq[] = { "big" };
    ck_assert(pgq_pause(c, pq, 1, true, "test", NULL, err, sizeof err) == 0);
    ck_assert(pgq_stats(c, &s, &n, err, sizeof err) == 0);
    q = find_q(s, n, "big");
    ck_assert(q->paused && !pgq_queue_unserved(q));
    free(s);
    pgq_disconnect(c);
}
END_TEST

/* Counts reused from an earlier snapshot (what the model thread does
 * between counts): ready and done stay as counted, the figures that stay
 * exact are read anew (running, the oldest due job, paused, live pools),
 * and a queue that was not counted and has running jobs forces a count. The model's rule for
 * how often to count: every refresh while a count is cheap, else at most
 * once per 100 times its cost, at least every 10 s. */
START_TEST(counts_reused_with_exact_figures_fresh)
{
    int64_t running_id, dead2;
    seed(&running_id, &dead2);
    char err[512];
    struct model_query q = { .parts = MODEL_OVERVIEW };
    pgq_conn *c = tu_connect();
    struct snapshot *s1 = NULL, *s2 = NULL, *s3 = NULL;
    ck_assert_msg(model_refresh_once(c, &q, &s1, err, sizeof err) == 0, "%s", err);
    ck_assert(!s1->counts_reused);
    ck_assert_int_eq(queue(s1, "mail")->ready, 2);
    ck_assert_int_eq(queue(s1, "mail")->running, 1);
    ck_assert(!queue(s1, "mail")->paused);

    /* two more ready jobs, one of them running, mail paused */
    pgq_add_result res;
    ck_assert(pgq_add(c, "tui-mail", "{\"n\":7}", NULL, &res, err, sizeof err) == 0);
    ck_assert(pgq_add(c, "tui-mail", "{\"n\":8}", NULL, &res, err, sizeof err) == 0);
    const char *qm[] = { "mail" };
    pgq_job *j = NULL;
    ck_assert(pgq_claim(c, qm, 1, "alpha:10:w2", 30000, &j, err, sizeof err) == 0 && j);
    pgq_job_free(j);
    bool changed;
    ck_assert(pgq_pause(c, qm, 1, true, "tui test", &changed, err, sizeof err) == 0 && changed);
    ck_assert_msg(model_refresh_reusing(c, &q, s1, &s2, err, sizeof err) == 0, "%s", err);
    ck_assert(s2->counts_reused);
    ck_assert(s2->counts_taken == s1->counts_taken);
    const pgq_queue_stats *m2 = queue(s2, "mail");
    ck_assert_int_eq(m2->ready, 2);          /* as counted */
    ck_assert_int_eq(m2->running, 2);        /* read anew */
    ck_assert_int_eq(s2->total.running, 2);  /* and the header's agrees with the pools' */
    int in_flight = 0;
    for (size_t i = 0; i < s2->npools; i++)
        in_flight += s2->pools[i].in_flight;
    ck_assert_int_eq(in_flight + (int)s2->running_orphans, 2);
    ck_assert(m2->paused);
    ck_assert(m2->oldest_ready_s >= 0);
    ck_assert_int_eq(m2->pools, 1);          /* beta is stale */
    ck_assert_int_eq(memcmp(s2->tput, s1->tput, sizeof s1->tput), 0);

    /* a queue the counts did not list has running jobs now: counted */
    tu_type("tui-new", "fresh", "", 0, 0);
    ck_assert(pgq_add(c, "tui-new", "{}", NULL, &res, err, sizeof err) == 0);
    ck_assert(pgq_add(c, "tui-new", "{}", NULL, &res, err, sizeof err) == 0);
    const char *qf[] = { "fresh" };
    ck_assert(pgq_claim(c, qf, 1, "alpha:10:w0", 30000, &j, err, sizeof err) == 0 && j);
    pgq_job_free(j);
    ck_assert_msg(model_refresh_reusing(c, &q, s2, &s3, err, sizeof err) == 0, "%s", err);
    ck_assert(!s3->counts_reused);
    ck_assert_int_eq(queue(s3, "fresh")->ready, 1);
    ck_assert_int_eq(queue(s3, "fresh")->running, 1);
    ck_assert_int_eq(queue(s3, "mail")->ready, 3);
    snapshot_release(s1);
    snapshot_release(s2);
    snapshot_release(s3);
    pgq_disconnect(c);

    ck_assert(model_count_every_s(0.004, 1.0) == 1.0);
    ck_assert(model_count_every_s(0.04, 1.0) > 3.999 && model_count_every_s(0.04, 1.0) < 4.001);
    ck_assert(model_count_every_s(0.5, 1.0) == MODEL_COUNT_MAX_S);
    ck_assert(model_count_every_s(0.04, 30.0) == 30.0);
}
END_TEST

/* The running model: a snapshot appears, and a queued requeue runs and
 * reports its outcome in a later snapshot. */
START_TEST(model_thread_publishes_and_acts)
{
    int64_t running_id, dead2;
    seed(&running_id, &dead2);
    char err[512];
    struct model *m = NULL;
    ck_assert_msg(model_start(tu_db_url(), "tui test", 100, &m, err, sizeof err) == 0, "%s", err);
    struct model_query q = { .parts = MODEL_DEAD };
    model_set_query(m, &q, true);
    struct snapshot *s = NULL;
    for (int i = 0; i < 200; i++) {
        s = model_acquire(m);
        if (s && (s->q.parts & MODEL_DEAD) && s->ndead == 2)
            break;
        snapshot_release(s);
        s = NULL;
        nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    }
    ck_assert_msg(s, "no snapshot with the dead letters");
    snapshot_release(s);

    struct model_action a = { .kind = MODEL_REQUEUE_MATCHING };
    ck_assert_int_eq(model_request(m, &a), 0);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        s = model_acquire(m);
        seen = s && strcmp(s->msg, "requeued 2 dead jobs") == 0 && s->ndead == 0;
        snapshot_release(s);
        if (!seen)
            nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    }
    ck_assert_msg(seen, "the requeue's outcome never showed");

    /* pause and resume a queue (the Overview's p) */
    struct model_action pa = { .kind = MODEL_PAUSE };
    snprintf(pa.queue, sizeof pa.queue, "mail");
    ck_assert_int_eq(model_request(m, &pa), 0);
    seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        s = model_acquire(m);
        seen = s && strcmp(s->msg, "queue mail paused: no pool claims from it") == 0;
        snapshot_release(s);
        if (!seen)
            nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
    }
    ck_assert_msg(seen, "the pause's outcome never showed");
    ck_assert_int_eq(tu_int("SELECT paused::int FROM pgq.queues WHERE queue = 'mail'", 0, NULL), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action = 'pause'"
                            " AND detail LIKE '%tui test%'", 0, NULL), 1);
    struct model_status st;
    model_status(m, &st);
    ck_assert(st.have_snapshot && st.connected && st.error[0] == '\0');
    model_stop(m);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'dead'", 0, NULL), 0);
    ck_assert_int_eq(tu_int("SELECT job_count FROM pgq.actions WHERE detail = 'tui test'", 0, NULL), 2);
}
END_TEST

/* A database that is not there: no snapshot, an error in the status, and
 * stopping is still prompt. */
START_TEST(model_thread_reports_unreachable_database)
{
    char err[512];
    struct model *m = NULL;
    ck_assert(model_start("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", "t", 100, &m,
                          err, sizeof err) == 0);
    struct model_status st = { 0 };
    for (int i = 0; i < 200 && !st.error[0]; i++) {
        nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
        model_status(m, &st);
    }
    ck_assert_msg(st.error[0], "no error reported");
    ck_assert(!st.have_snapshot && !st.connected);
    ck_assert_ptr_null(model_acquire(m));
    model_stop(m);
}
END_TEST

/* Dependencies: waiting jobs are counted per queue and in all, and a
 * job's detail lists its parents and children with their states. */
START_TEST(snapshot_counts_waiting_and_shows_dependencies)
{
    char err[512];
    tu_type("tui-img", "img", "", 0, 0);
    pgq_conn *c = tu_connect();
    pgq_add_result p, k;
    ck_assert(pgq_add(c, "tui-img", "{}", NULL, &p, err, sizeof err) == 0);
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.after = &p.id;
    o.n_after = 1;
    ck_assert_msg(pgq_add(c, "tui-img", "{}", &o, &k, err, sizeof err) == 0, "%s", err);
    pgq_disconnect(c);

    struct model_query q = { .parts = MODEL_ALL, .detail_id = k.id };
    struct snapshot *s = snap(&q);
    ck_assert_int_eq(queue(s, "img")->waiting, 1);
    ck_assert_int_eq(queue(s, "img")->ready, 1);
    ck_assert_int_eq(s->total.waiting, 1);
    ck_assert_ptr_nonnull(s->detail);
    ck_assert_str_eq(s->detail->state, "waiting");
    ck_assert_int_eq(s->detail->waiting_for, 1);
    ck_assert_int_eq((int)s->detail->nparents, 1);
    ck_assert_int_eq(s->detail->parents[0].id, p.id);
    ck_assert_str_eq(s->detail->parents[0].state, "ready");
    snapshot_release(s);
    q.detail_id = p.id;
    s = snap(&q);
    ck_assert_int_eq((int)s->detail->nchildren_total, 1);
    ck_assert_int_eq(s->detail->children[0].id, k.id);
    snapshot_release(s);
}
END_TEST

Suite *tui_model_suite(void)
{
    Suite *s = suite_create("tui_model");
    TCase *tc = tcase_create("snapshots");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, snapshot_counts_lists_and_pools);
    tcase_add_test(tc, snapshot_health_rows);
    tcase_add_test(tc, snapshot_health_shows_old_xact_and_lock_wait);
    tcase_add_test(tc, snapshot_filters_and_detail);
    tcase_add_test(tc, snapshot_counts_waiting_and_shows_dependencies);
    tcase_add_test(tc, snapshot_read_only_role);
    tcase_add_test(tc, pool_in_flight_agrees_with_running);
    tcase_add_test(tc, done_job_row_has_no_stale_error);
    tcase_add_test(tc, filter_parse_words_and_bad_state);
    tcase_add_test(tc, list_cursor_follows_head_or_job);
    tcase_add_test(tc, stats_caps_marks_and_unserved);
    tcase_add_test(tc, counts_reused_with_exact_figures_fresh);
    tcase_add_test(tc, model_thread_publishes_and_acts);
    tcase_add_test(tc, model_thread_reports_unreachable_database);
    suite_add_tcase(s, tc);
    return s;
}
