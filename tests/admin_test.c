/* Promise 8 and the operator side: requeue (one, many, by filter, and
 * concurrently from several operators without double moves), cancel,
 * retention pruning, stats and a job's detail. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 0, 0);
}

static void make_jobs(int n, const char *queue, const char *state)
{
    char ns[16];
    snprintf(ns, sizeof ns, "%d", n);
    const char *p[] = { ns, queue, state };
    /* As the state machine leaves them: a dead job has spent its retries. */
    tu_exec("INSERT INTO pgq.jobs (queue, type, state, attempts, max_retries, finished_at,"
            "  last_error)"
            " SELECT $2, 't', $3, CASE WHEN $3 = 'ready' THEN 0 ELSE 1 END, 0,"
            "  CASE WHEN $3 IN ('dead', 'done', 'cancelled') THEN now() END,"
            "  CASE WHEN $3 = 'dead' THEN 'it broke' END"
            " FROM generate_series(1, $1::int)", 3, p);
    /* a history row per dead job, which requeue must keep */
    tu_exec("INSERT INTO pgq.job_attempts (job_id, attempt, outcome, error)"
            " SELECT id, 1, 'failed', 'it broke' FROM pgq.jobs j WHERE state = 'dead'"
            " AND NOT EXISTS (SELECT 1 FROM pgq.job_attempts a WHERE a.job_id = j.id)", 0, NULL);
}

START_TEST(requeue_ids_moves_dead_keeps_history)
{
    char err[512];
    make_jobs(2, "default", "dead");
    make_jobs(1, "default", "ready");
    pgq_conn *c = tu_connect();
    int64_t ids[] = { 1, 2, 3, 999 };
    bool done[4];
    int64_t count;
    ck_assert(pgq_requeue(c, ids, 4, "test", done, &count, err, sizeof err) == 0);
    ck_assert_int_eq(count, 2);
    ck_assert(done[0] && done[1] && !done[2] && !done[3]);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id IN (1, 2) AND state = 'ready'"
                            " AND attempts = 0 AND finished_at IS NULL AND run_at <= now()",
                            0, NULL), 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts", 0, NULL), 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action = 'requeue'"
                            " AND job_count = 2 AND job_ids = '{1,2}' AND detail = 'test'"
                            " AND db_user = current_user", 0, NULL), 1);
    pgq_disconnect(c);
}
END_TEST

#define OPERATORS 8

struct op {
    tu_barrier *start;
    int64_t moved;
    int rc;
    char err[512];
};

static void *requeue_all(void *arg)
{
    struct op *o = arg;
    pgq_conn *c = NULL;
    o->rc = pgq_connect(tu_db_url(), &c, o->err, sizeof o->err);
    tu_barrier_wait(o->start);
    if (o->rc == 0)
        o->rc = pgq_requeue_matching(c, "dead", NULL, "t", "op", &o->moved, o->err,
                                     sizeof o->err);
    pgq_disconnect(c);
    return NULL;
}

START_TEST(concurrent_requeue_moves_each_job_once)
{
    make_jobs(500, "default", "dead");
    struct op ops[OPERATORS];
    pthread_t th[OPERATORS];
    tu_barrier *b = tu_barrier_new(OPERATORS);
    for (int i = 0; i < OPERATORS; i++) {
        ops[i] = (struct op){ .start = b };
        pthread_create(&th[i], NULL, requeue_all, &ops[i]);
    }
    int64_t total = 0;
    for (int i = 0; i < OPERATORS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(ops[i].rc == 0, "operator %d: %s", i, ops[i].err);
        total += ops[i].moved;
    }
    ck_assert_int_eq(total, 500);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'", 0, NULL), 500);
    ck_assert_int_eq(tu_int("SELECT coalesce(sum(job_count), 0) FROM pgq.actions", 0, NULL), 500);
    tu_barrier_free(b);
}
END_TEST

START_TEST(requeue_matching_filters_queue_and_state)
{
    char err[512];
    make_jobs(3, "a", "dead");
    make_jobs(2, "b", "dead");
    make_jobs(4, "a", "cancelled");
    pgq_conn *c = tu_connect();
    int64_t n = -1;
    ck_assert(pgq_requeue_matching(c, "dead", "a", NULL, "t", &n, err, sizeof err) == 0);
    ck_assert_int_eq(n, 3);
    ck_assert(pgq_requeue_matching(c, "dead", "a", NULL, "t", &n, err, sizeof err) == 0);
    ck_assert_int_eq(n, 0);
    ck_assert(pgq_requeue_matching(c, "cancelled", NULL, NULL, "t", &n, err, sizeof err) == 0);
    ck_assert_int_eq(n, 4);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE queue = 'b' AND state = 'dead'",
                            0, NULL), 2);
    ck_assert_int_eq(pgq_requeue_matching(c, "done", NULL, NULL, "t", &n, err, sizeof err), -1);
    ck_assert_str_eq(err, "requeue: state must be dead or cancelled, not \"done\"");
    pgq_disconnect(c);
}
END_TEST

START_TEST(cancel_only_ready)
{
    char err[512];
    make_jobs(1, "default", "ready");
    make_jobs(1, "default", "done");
    pgq_conn *c = tu_connect();
    int64_t ids[] = { 1, 2 };
    bool done[2];
    int64_t n;
    ck_assert(pgq_cancel(c, ids, 2, "t", done, &n, err, sizeof err) == 0);
    ck_assert(done[0] && !done[1]);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = 1 AND state = 'cancelled'",
                            0, NULL), 1);
    const char *q[] = { "default" };
    pgq_job *j = NULL;
    ck_assert(pgq_claim(c, q, 1, "w", 1000, &j, err, sizeof err) == 0);
    ck_assert_ptr_null(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(prune_respects_retention)
{
    char err[512];
    make_jobs(3, "default", "done");
    make_jobs(2, "default", "dead");
    make_jobs(1, "default", "ready");
    tu_exec("UPDATE pgq.jobs SET finished_at = now() - interval '2 days' WHERE id IN (1, 4)",
            0, NULL);
    pgq_conn *c = tu_connect();
    int64_t n = -1;
    ck_assert(pgq_prune(c, 86400000, 30LL * 86400000, 1000, &n, err, sizeof err) == 0);
    ck_assert_int_eq(n, 1);   /* only the old done job; dead ones keep 30 days */
    ck_assert(pgq_prune(c, 0, 86400000, 1000, &n, err, sizeof err) == 0);
    ck_assert_int_eq(n, 3);   /* keep_done 0: all done jobs; the 2-day-old dead one */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE job_id = 4", 0, NULL), 0);
    pgq_disconnect(c);
}
END_TEST

/* A pass of rounds, each starting where the one before ended, deletes
 * every old done job exactly once, ties of finished_at across a round's
 * edge included, and leaves the young ones. */
START_TEST(prune_rounds_continue_where_they_ended)
{
    char err[512];
    make_jobs(25, "default", "done");
    make_jobs(3, "default", "done");
    /* 25 old ones in 5 groups of equal finish times; 3 young ones */
    tu_exec("UPDATE pgq.jobs SET finished_at = now() - interval '2 days'"
            " + (id / 5) * interval '1 second' WHERE id <= 25", 0, NULL);
    pgq_conn *c = tu_connect();
    char upto[64] = "";
    int64_t total = 0, n = 0;
    int rounds = 0;
    do {
        ck_assert_msg(pgq_prune_round(c, 86400000, 86400000, 7, upto, sizeof upto, &n, err,
                                      sizeof err) == 0, "%s", err);
        total += n;
        ck_assert_int_lt(++rounds, 10);
        if (n)
            ck_assert_msg(*upto, "round %d deleted %lld jobs but says nothing of where it ended",
                          rounds, (long long)n);
    } while (n == 7);
    ck_assert_int_eq(total, 25);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 3);
    pgq_disconnect(c);
}
END_TEST

struct pruner {
    int64_t deleted;
    int rc;
    char err[512];
};

static void *prune_dead(void *arg)
{
    struct pruner *pr = arg;
    pgq_conn *c = NULL;
    pr->rc = pgq_connect(tu_db_url(), &c, pr->err, sizeof pr->err);
    if (pr->rc == 0)
        pr->rc = pgq_prune(c, 0, 0, 1000, &pr->deleted, pr->err, sizeof pr->err);
    pgq_disconnect(c);
    return NULL;
}

/* A dead job requeued while prune runs must survive: prune waits on the
 * requeue's row lock, then re-checks the row and keeps it. */
START_TEST(prune_keeps_job_requeued_concurrently)
{
    make_jobs(1, "default", "dead");
    tu_exec("UPDATE pgq.jobs SET finished_at = now() - interval '40 days'", 0, NULL);
    PGconn *op = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(op), CONNECTION_OK);
    PQclear(PQexec(op, "BEGIN"));
    PGresult *r = PQexec(op, "UPDATE pgq.jobs SET state = 'ready', finished_at = NULL, "
                             "attempts = 0 WHERE id = 1");
    ck_assert_int_eq(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    struct pruner pr = { 0 };
    pthread_t th;
    pthread_create(&th, NULL, prune_dead, &pr);
    /* wait until prune is blocked on our row lock */
    for (int i = 0; i < 3000; i++) {
        if (tu_int("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                   " AND query LIKE '%DELETE FROM pgq.jobs%'", 0, NULL) > 0)
            break;
        usleep(10000);
    }
    PQclear(PQexec(op, "COMMIT"));
    pthread_join(th, NULL);
    PQfinish(op);
    ck_assert_msg(pr.rc == 0, "%s", pr.err);
    ck_assert_int_eq(pr.deleted, 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'", 0, NULL), 1);
}
END_TEST

START_TEST(stats_count_per_queue_and_state)
{
    char err[512];
    make_jobs(2, "a", "ready");
    make_jobs(1, "a", "dead");
    make_jobs(3, "b", "done");
    tu_exec("INSERT INTO pgq.jobs (queue, type, run_at) VALUES ('b', 't', now() + interval '1h')",
            0, NULL);
    tu_exec("INSERT INTO pgq.jobs (queue, type, run_at, attempts)"
            " VALUES ('b', 't', now() + interval '1h', 1)", 0, NULL);
    pgq_conn *c = tu_connect();
    pgq_queue_stats *s;
    size_t n;
    ck_assert(pgq_stats(c, &s, &n, err, sizeof err) == 0);
    ck_assert_int_eq((int)n, 2);
    ck_assert_str_eq(s[0].queue, "a");
    ck_assert_int_eq(s[0].ready, 2);
    ck_assert_int_eq(s[0].dead, 1);
    ck_assert_str_eq(s[1].queue, "b");
    ck_assert_int_eq(s[1].done, 3);
    ck_assert_int_eq(s[1].done_last_hour, 3);
    ck_assert_int_eq(s[1].scheduled, 1);
    ck_assert_int_eq(s[1].retrying, 1);
    ck_assert_int_eq(s[1].ready, 0);
    free(s);
    pgq_disconnect(c);
}
END_TEST

Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("admin");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, requeue_ids_moves_dead_keeps_history);
    tcase_add_test(tc, prune_rounds_continue_where_they_ended);
    tcase_add_test(tc, concurrent_requeue_moves_each_job_once);
    tcase_add_test(tc, requeue_matching_filters_queue_and_state);
    tcase_add_test(tc, cancel_only_ready);
    tcase_add_test(tc, prune_respects_retention);
    tcase_add_test(tc, prune_keeps_job_requeued_concurrently);
    tcase_add_test(tc, stats_count_per_queue_and_state);
    suite_add_tcase(s, tc);
    return s;
}
