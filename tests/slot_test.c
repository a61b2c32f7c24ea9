/*
 * slot_test.c -- unit tests for pool/slot.c, the worker slot's state
 * machine: the table of transitions (every one the pool makes is allowed,
 * the impossible ones are refused), what a transition keeps right (the
 * per-state counts, the job held, the handler's flags), and that an
 * impossible transition aborts the process loudly instead of going on.
 * No database, no threads: a slot on a pool struct of its own.
 */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "pool_int.h"

Suite *slot_suite(void);

static pgq_pool pool;
static struct slot slot;
static pgq_job job_a = { .id = 1, .lease_token = "a" }, job_b = { .id = 2, .lease_token = "b" };

static void fresh(void)
{
    memset(&pool, 0, sizeof pool);
    memset(&slot, 0, sizeof slot);
    pool.nslots = 1;
    pool.nstate[SLOT_NEW] = 1;
    slot.pool = &pool;
    snprintf(slot.who, sizeof slot.who, "worker[0]");
}

/* Every transition the pool makes, and nothing else. */
START_TEST(table_allows_exactly_the_pool_moves)
{
    static const struct { enum slot_state from, to; } moves[] = {
        { SLOT_NEW, SLOT_IDLE },           { SLOT_IDLE, SLOT_NEW },
        { SLOT_IDLE, SLOT_RUNNING },       { SLOT_IDLE, SLOT_EXITED },
        { SLOT_IDLE, SLOT_ABANDONED },     { SLOT_RUNNING, SLOT_LOST },
        { SLOT_RUNNING, SLOT_FINISHING },  { SLOT_RUNNING, SLOT_ABANDONED },
        { SLOT_LOST, SLOT_FINISHING },     { SLOT_LOST, SLOT_IDLE },
        { SLOT_LOST, SLOT_ABANDONED },     { SLOT_FINISHING, SLOT_IDLE },
        { SLOT_FINISHING, SLOT_RUNNING },  { SLOT_FINISHING, SLOT_ABANDONED },
    };
    size_t n = sizeof moves / sizeof moves[0], allowed = 0;
    for (int f = 0; f < SLOT__COUNT; f++)
        for (int t = 0; t < SLOT__COUNT; t++) {
            bool listed = false;
            for (size_t i = 0; i < n; i++)
                listed |= moves[i].from == (enum slot_state)f && moves[i].to == (enum slot_state)t;
            ck_assert_msg(slot_transition_ok(f, t) == listed, "%s -> %s: %s", slot_state_name(f),
                          slot_state_name(t), listed ? "refused" : "allowed");
            allowed += listed;
        }
    ck_assert_uint_eq(allowed, n);
    ck_assert(!slot_transition_ok(SLOT_IDLE, SLOT__COUNT));
    ck_assert(!slot_transition_ok((enum slot_state)-1, SLOT_IDLE));
    ck_assert_str_eq(slot_state_name(SLOT__COUNT), "invalid");
}
END_TEST

/* A job's life through a slot: the counts follow, the job is held exactly
 * while RUNNING .. FINISHING, the lost flags are set on LOST and cleared
 * when the next job starts. */
START_TEST(transitions_keep_counts_job_and_flags)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    ck_assert_int_eq(pool.nstate[SLOT_NEW], 0);
    ck_assert_int_eq(pool.nstate[SLOT_IDLE], 1);
    ck_assert_int_eq(slot_busy(&pool), 1);
    ck_assert_int_eq(slot_holding(&pool), 0);
    slot_set(&slot, SLOT_RUNNING, &job_a);
    ck_assert_ptr_eq(slot.job, &job_a);
    ck_assert_int_eq(slot_holding(&pool), 1);
    slot_set(&slot, SLOT_LOST, &job_a);
    ck_assert(atomic_load(&slot.lease_lost) && atomic_load(&slot.cancel));
    slot_set(&slot, SLOT_FINISHING, &job_a);
    slot_set(&slot, SLOT_RUNNING, &job_b);   /* the completion claimed the next */
    ck_assert(!atomic_load(&slot.lease_lost) && !atomic_load(&slot.cancel));
    ck_assert_ptr_eq(slot.job, &job_b);
    slot_set(&slot, SLOT_FINISHING, &job_b);
    slot_set(&slot, SLOT_IDLE, NULL);
    ck_assert_ptr_null(slot.job);
    slot_set(&slot, SLOT_EXITED, NULL);
    ck_assert_int_eq(pool.nstate[SLOT_EXITED], 1);
    ck_assert_int_eq(slot_busy(&pool), 0);
    int total = 0;
    for (int i = 0; i < SLOT__COUNT; i++)
        total += pool.nstate[i];
    ck_assert_int_eq(total, 1);
}
END_TEST

/* ABANDONED: the thread left behind still moves its job along; the state
 * stays and the counts do not move. */
START_TEST(abandoned_absorbs_the_thread_left_behind)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    slot_set(&slot, SLOT_RUNNING, &job_a);
    slot_set(&slot, SLOT_ABANDONED, NULL);
    slot_set(&slot, SLOT_FINISHING, &job_a);
    ck_assert_int_eq(slot.state, SLOT_ABANDONED);
    ck_assert_ptr_eq(slot.job, &job_a);
    slot_set(&slot, SLOT_EXITED, NULL);
    ck_assert_int_eq(slot.state, SLOT_ABANDONED);
    ck_assert_int_eq(pool.nstate[SLOT_ABANDONED], 1);
    ck_assert_int_eq(slot_busy(&pool), 0);
}
END_TEST

/* Impossible transitions abort (these tests pass only if the process dies
 * of SIGABRT). */
START_TEST(finishing_without_running_aborts)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    slot_set(&slot, SLOT_FINISHING, &job_a);   /* never ran */
}
END_TEST

START_TEST(second_job_while_running_aborts)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    slot_set(&slot, SLOT_RUNNING, &job_a);
    slot_set(&slot, SLOT_RUNNING, &job_b);     /* two jobs on one connection */
}
END_TEST

START_TEST(finishing_another_job_aborts)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    slot_set(&slot, SLOT_RUNNING, &job_a);
    slot_set(&slot, SLOT_FINISHING, &job_b);   /* not the job it holds */
}
END_TEST

START_TEST(running_without_a_job_aborts)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    slot_set(&slot, SLOT_RUNNING, NULL);
}
END_TEST

START_TEST(leaving_exited_aborts)
{
    fresh();
    slot_set(&slot, SLOT_IDLE, NULL);
    slot_set(&slot, SLOT_EXITED, NULL);
    slot_set(&slot, SLOT_IDLE, NULL);
}
END_TEST

Suite *slot_suite(void)
{
    Suite *s = suite_create("slot");
    TCase *tc = tcase_create("transitions");
    tcase_add_test(tc, table_allows_exactly_the_pool_moves);
    tcase_add_test(tc, transitions_keep_counts_job_and_flags);
    tcase_add_test(tc, abandoned_absorbs_the_thread_left_behind);
    tcase_add_test_raise_signal(tc, finishing_without_running_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, second_job_while_running_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, finishing_another_job_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, running_without_a_job_aborts, SIGABRT);
    tcase_add_test_raise_signal(tc, leaving_exited_aborts, SIGABRT);
    suite_add_tcase(s, tc);
    return s;
}
