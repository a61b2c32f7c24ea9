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
#include <stdio.h>
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

/* Impossible moves, each after the moves that lead to its start (a job
 * given as 'a' or 'b', none as '-'). */
static const struct bad_move {
    const char *why;
    struct { enum slot_state to; char job; } path[4];
    size_t n;
} bad_moves[] = {
    { "finishing a job never run", { { SLOT_IDLE, '-' }, { SLOT_FINISHING, 'a' } }, 2 },
    { "a second job while running",
      { { SLOT_IDLE, '-' }, { SLOT_RUNNING, 'a' }, { SLOT_RUNNING, 'b' } }, 3 },
    { "finishing another job than the one held",
      { { SLOT_IDLE, '-' }, { SLOT_RUNNING, 'a' }, { SLOT_FINISHING, 'b' } }, 3 },
    { "running without a job", { { SLOT_IDLE, '-' }, { SLOT_RUNNING, '-' } }, 2 },
    { "idle still holding a job",
      { { SLOT_IDLE, '-' }, { SLOT_RUNNING, 'a' }, { SLOT_FINISHING, 'a' }, { SLOT_IDLE, 'a' } },
      4 },
    { "leaving exited", { { SLOT_IDLE, '-' }, { SLOT_EXITED, '-' }, { SLOT_IDLE, '-' } }, 3 },
};

/* The last move of bad_moves[_i] must kill the process with SIGABRT: the
 * test passes only if it does (and fails if the moves before it do). */
START_TEST(impossible_move_aborts)
{
    const struct bad_move *m = &bad_moves[_i];
    fresh();
    for (size_t k = 0; k < m->n; k++) {
        pgq_job *j = m->path[k].job == 'a' ? &job_a : m->path[k].job == 'b' ? &job_b : NULL;
        if (k + 1 == m->n)
            fprintf(stderr, "slot_test: expecting an abort: %s\n", m->why);
        slot_set(&slot, m->path[k].to, j);
    }
}
END_TEST

Suite *slot_suite(void)
{
    Suite *s = suite_create("slot");
    TCase *tc = tcase_create("transitions");
    tcase_add_test(tc, table_allows_exactly_the_pool_moves);
    tcase_add_test(tc, transitions_keep_counts_job_and_flags);
    tcase_add_test(tc, abandoned_absorbs_the_thread_left_behind);
    tcase_add_loop_test_raise_signal(tc, impossible_move_aborts, SIGABRT, 0,
                                     (int)(sizeof bad_moves / sizeof bad_moves[0]));
    suite_add_tcase(s, tc);
    return s;
}
