/* Promise 3: claiming. Many threads claiming at once never get the same
 * job and leave none behind; order is priority, then run_at, then id;
 * scheduled jobs wait for their time; a worker claims only its queues. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 3, 1000);
}

/* Enqueue n jobs of type t in batches of 1000. */
static void fill(pgq_conn *c, int n, const char *queue)
{
    char err[512];
    pgq_add_item *items = calloc(1000, sizeof *items);
    pgq_add_result *res = calloc(1000, sizeof *res);
    for (int done = 0; done < n;) {
        int k = n - done < 1000 ? n - done : 1000;
        for (int i = 0; i < k; i++)
            items[i] = (pgq_add_item){ "t", "{}", PGQ_ADD_OPTS_INIT };
        for (int i = 0; i < k; i++)
            items[i].opts.queue = queue;
        ck_assert_msg(pgq_add_batch(c, items, (size_t)k, res, err, sizeof err) == 0, "%s", err);
        done += k;
    }
    free(items);
    free(res);
}

#define THREADS 8
#define JOBS 10000

struct claimer {
    atomic_int *seen;   /* claims per job id */
    int claimed;
    int rc;
    char err[512];
};

static void *claim_all(void *arg)
{
    struct claimer *w = arg;
    pgq_conn *c = NULL;
    const char *q[] = { "default" };
    char name[32];
    snprintf(name, sizeof name, "w%p", arg);
    w->rc = pgq_connect(tu_db_url(), &c, w->err, sizeof w->err);
    while (w->rc == 0) {
        pgq_job *j = NULL;
        bool lost;
        w->rc = pgq_claim(c, q, 1, name, 60000, &j, w->err, sizeof w->err);
        if (w->rc < 0 || !j)
            break;
        if (j->id >= 1 && j->id <= JOBS)
            atomic_fetch_add(&w->seen[j->id], 1);
        w->claimed++;
        w->rc = pgq_complete(c, j->id, j->lease_token, NULL, &lost, w->err, sizeof w->err);
        if (w->rc == 0 && lost) {
            snprintf(w->err, sizeof w->err, "job %lld: lease lost on complete", (long long)j->id);
            w->rc = -1;
        }
        pgq_job_free(j);
    }
    pgq_disconnect(c);
    return NULL;
}

START_TEST(eight_threads_claim_each_job_once)
{
    pgq_conn *c = tu_connect();
    fill(c, JOBS, NULL);
    ck_assert_int_eq(tu_int("SELECT max(id) FROM pgq.jobs", 0, NULL), JOBS);
    atomic_int *seen = calloc(JOBS + 1, sizeof *seen);
    struct claimer w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct claimer){ .seen = seen };
        pthread_create(&th[i], NULL, claim_all, &w[i]);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(w[i].rc == 0, "thread %d: %s", i, w[i].err);
        total += w[i].claimed;
    }
    ck_assert_int_eq(total, JOBS);
    for (int id = 1; id <= JOBS; id++)
        ck_assert_msg(atomic_load(&seen[id]) == 1, "job %d claimed %d times", id,
                      atomic_load(&seen[id]));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done'", 0, NULL), JOBS);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state <> 'done'", 0, NULL), 0);
    /* done at the first attempt, in-process: the attempt lives on the job
     * row (lease_owner, started_at, finished_at), no history row */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts", 0, NULL), 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE lease_owner IS NULL"
                            " OR started_at IS NULL OR finished_at < started_at", 0, NULL), 0);
    free(seen);
    pgq_disconnect(c);
}
END_TEST

static int64_t add_one(pgq_conn *c, const char *queue, int priority, int64_t delay_ms,
                       const char *run_at)
{
    char err[512];
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    pgq_add_result r;
    o.queue = queue;
    o.priority = priority;
    o.delay_ms = delay_ms;
    o.run_at = run_at;
    ck_assert_msg(pgq_add(c, "t", "{}", &o, &r, err, sizeof err) == 0, "%s", err);
    return r.id;
}

static int64_t claim_id(pgq_conn *c, const char *const *queues, size_t n)
{
    char err[512];
    pgq_job *j = NULL;
    ck_assert_msg(pgq_claim(c, queues, n, "w", 60000, &j, err, sizeof err) == 0, "%s", err);
    int64_t id = j ? j->id : 0;
    pgq_job_free(j);
    return id;
}

/* Five jobs over queues "default" and "b"; want[] gets their ids in claim
 * order: priority, then run_at, then id. */
static void add_ordered(pgq_conn *c, int64_t want[5])
{
    int64_t late = add_one(c, "default", 0, 0, "2000-01-01 00:00:02+00");
    int64_t early = add_one(c, "default", 0, 0, "2000-01-01 00:00:01+00");
    int64_t low = add_one(c, "b", -1, 0, NULL);
    int64_t same1 = add_one(c, "b", 5, 0, "2000-01-01 00:00:00+00");
    int64_t same2 = add_one(c, "default", 5, 0, "2000-01-01 00:00:00+00");
    int64_t order[5] = { low, early, late, same1, same2 };
    memcpy(want, order, sizeof order);
}

START_TEST(claim_order_priority_run_at_id)
{
    pgq_conn *c = tu_connect();
    const char *q[] = { "default", "b" };
    int64_t want[5];
    add_ordered(c, want);
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(claim_id(c, q, 2), want[i]);
    ck_assert_int_eq(claim_id(c, q, 2), 0);
    pgq_disconnect(c);
}
END_TEST

/* The same order when one call claims several (batch = N), a scheduled job
 * left alone, and each claimed job with its own lease token. */
START_TEST(batch_claim_keeps_the_order)
{
    char err[512];
    pgq_conn *c = tu_connect();
    const char *q[] = { "default", "b" };
    int64_t want[5];
    add_ordered(c, want);
    add_one(c, "default", -5, 3600 * 1000, NULL);   /* best priority, an hour ahead */
    pgq_job *jobs[8] = { 0 };
    size_t got = 0;
    ck_assert_msg(pgq_complete_claim(c, NULL, 0, NULL, q, 2, "w", 60000, 8, jobs, &got, err,
                                     sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(got, 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_int_eq(jobs[i]->id, want[i]);
        for (size_t k = 0; k < i; k++)
            ck_assert_str_ne(jobs[i]->lease_token, jobs[k]->lease_token);
    }
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'running'", 0, NULL), 5);
    for (size_t i = 0; i < got; i++)
        pgq_job_free(jobs[i]);

    /* A later priority step that wants exactly one more job (the one-job
     * statement) still numbers it after the ones already claimed. */
    int64_t a = add_one(c, "b", 7, 0, "2000-01-01 00:00:00+00");
    int64_t b = add_one(c, "b", 7, 0, "2000-01-01 00:00:01+00");
    int64_t z = add_one(c, "b", 8, 0, NULL);
    memset(jobs, 0, sizeof jobs);
    ck_assert_msg(pgq_complete_claim(c, NULL, 0, NULL, q, 2, "w", 60000, 3, jobs, &got, err,
                                     sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(got, 3);
    int64_t want2[] = { a, b, z };
    for (size_t i = 0; i < 3; i++) {
        ck_assert_ptr_nonnull(jobs[i]);
        ck_assert_int_eq(jobs[i]->id, want2[i]);
        pgq_job_free(jobs[i]);
    }
    pgq_disconnect(c);
}
END_TEST

/* Type "t" limited to `concurrency` running jobs fleet-wide. */
static void limit_t(int concurrency)
{
    char n[16];
    snprintf(n, sizeof n, "%d", concurrency);
    const char *p[] = { n };
    tu_exec("INSERT INTO pgq.job_types (type, concurrency) VALUES ('t', $1::int)"
            " ON CONFLICT (type) DO UPDATE SET concurrency = excluded.concurrency", 1, p);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.type_limits WHERE type = 't'", 0, NULL), 1);
}

/* One call: the acks given (none: NULL), then a claim of up to 8 jobs of
 * queues q into jobs[]; returns how many it claimed. */
static size_t claim_up_to_8(pgq_conn *c, const pgq_ack *ack, const char *const *q, size_t nq,
                            pgq_job *jobs[8])
{
    char err[512];
    size_t got = 0;
    bool lost = false;
    memset(jobs, 0, 8 * sizeof *jobs);
    ck_assert_msg(pgq_complete_claim(c, ack, ack ? 1 : 0, ack ? &lost : NULL, q, nq, "w", 60000,
                                     8, jobs, &got, err, sizeof err) == 0, "%s", err);
    ck_assert(!lost);
    return got;
}

/* The same order with limits in the fleet, which lease their picks with a
 * statement of their own (migrations/state_machine.sql): a type whose
 * concurrency limit admits them all; each job is marked as limited. */
START_TEST(batch_claim_with_limits_keeps_the_order)
{
    pgq_conn *c = tu_connect();
    const char *q[] = { "default", "b" };
    limit_t(100);
    int64_t want[5];
    add_ordered(c, want);
    pgq_job *jobs[8];
    ck_assert_uint_eq(claim_up_to_8(c, NULL, q, 2, jobs), 5);
    for (size_t i = 0; i < 5; i++) {
        ck_assert_ptr_nonnull(jobs[i]);
        ck_assert_int_eq(jobs[i]->id, want[i]);
        pgq_job_free(jobs[i]);
    }
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'running' AND limited",
                            0, NULL), 5);
    pgq_disconnect(c);
}
END_TEST

/* A claim of several that picks more jobs of a limited type than it has
 * room for takes the earliest in claim order: here the job added second
 * is due first, and one slot is left. (Until migration 019 the lease-out
 * admitted them in the order its UPDATE reached the rows: by id.) The
 * one refused stays ready and is taken by the next claim once there is
 * room again. */
START_TEST(limit_admits_in_claim_order)
{
    pgq_conn *c = tu_connect();
    const char *q[] = { "default" };
    limit_t(1);
    int64_t late = add_one(c, "default", 0, 0, "2000-01-01 00:00:02+00");
    int64_t early = add_one(c, "default", 0, 0, "2000-01-01 00:00:01+00");
    pgq_job *jobs[8];
    ck_assert_uint_eq(claim_up_to_8(c, NULL, q, 1, jobs), 1);
    ck_assert_int_eq(jobs[0]->id, early);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'", 0, NULL), 1);

    /* Its success makes room; the next claim (the same call) takes the other. */
    pgq_job *first = jobs[0];
    pgq_ack ack = { .id = first->id, .token = first->lease_token };
    ck_assert_uint_eq(claim_up_to_8(c, &ack, q, 1, jobs), 1);
    pgq_job_free(first);
    ck_assert_int_eq(jobs[0]->id, late);
    pgq_job_free(jobs[0]);
    pgq_disconnect(c);
}
END_TEST

START_TEST(scheduled_jobs_wait_and_queues_filter)
{
    pgq_conn *c = tu_connect();
    const char *def[] = { "default" }, *other[] = { "other" };
    add_one(c, "default", PGQ_DEFAULT, 3600 * 1000, NULL);
    int64_t o = add_one(c, "other", PGQ_DEFAULT, 0, NULL);
    ck_assert_int_eq(claim_id(c, def, 1), 0);     /* scheduled an hour ahead */
    ck_assert_int_eq(claim_id(c, other, 1), o);
    tu_exec("UPDATE pgq.jobs SET run_at = now() - interval '1 second' WHERE state = 'ready'",
            0, NULL);
    ck_assert_int_ne(claim_id(c, def, 1), 0);
    pgq_disconnect(c);
}
END_TEST

START_TEST(claim_sets_fresh_lease)
{
    char err[512];
    pgq_conn *c = tu_connect();
    const char *q[] = { "default" };
    add_one(c, "default", PGQ_DEFAULT, 0, NULL);
    pgq_job *j = NULL;
    ck_assert(pgq_claim(c, q, 1, "host:1:w0", 30000, &j, err, sizeof err) == 0);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->attempt, 1);
    ck_assert_int_eq((int)strlen(j->lease_token), PGQ_TOKEN_LEN);
    const char *p[] = { j->lease_token };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'running'"
                            " AND lease_token = $1::uuid AND lease_owner = 'host:1:w0'"
                            " AND lease_expires_at BETWEEN now() + interval '25 s'"
                            "   AND now() + interval '31 s'", 1, p), 1);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* Future jobs at a better priority must not hide due ones at a worse
 * priority (the claim walks priorities, it does not stop at the first). */
START_TEST(future_jobs_do_not_hide_due_ones)
{
    pgq_conn *c = tu_connect();
    const char *q[] = { "default", "b" };
    tu_exec("INSERT INTO pgq.jobs (queue, type, priority, run_at)"
            " SELECT 'default', 't', p % 3 - 5, now() + interval '1 hour'"
            " FROM generate_series(1, 3000) p", 0, NULL);
    int64_t due = add_one(c, "b", 7, 0, NULL);
    int64_t later = add_one(c, "default", 9, 0, NULL);
    ck_assert_int_eq(claim_id(c, q, 2), due);
    ck_assert_int_eq(claim_id(c, q, 2), later);
    ck_assert_int_eq(claim_id(c, q, 2), 0);
    pgq_disconnect(c);
}
END_TEST

Suite *claim_suite(void)
{
    Suite *s = suite_create("claim");
    TCase *tc = tcase_create("claim");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, eight_threads_claim_each_job_once);
    tcase_add_test(tc, claim_order_priority_run_at_id);
    tcase_add_test(tc, batch_claim_keeps_the_order);
    tcase_add_test(tc, batch_claim_with_limits_keeps_the_order);
    tcase_add_test(tc, limit_admits_in_claim_order);
    tcase_add_test(tc, scheduled_jobs_wait_and_queues_filter);
    tcase_add_test(tc, claim_sets_fresh_lease);
    tcase_add_test(tc, future_jobs_do_not_hide_due_ones);
    suite_add_tcase(s, tc);
    return s;
}
