/* Promises 4, 5 and 6: leases and fencing, crash recovery by reaping, and
 * retries with backoff computed by PostgreSQL. The central test: a worker
 * whose lease expired, after its job was reaped and claimed by another,
 * changes nothing with its stale token and is told the lease is lost. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 3, 0);        /* no backoff: retries are due at once */
    tu_type("slow", "default", "", 2, 1000);  /* 1 s base backoff */
    tu_type("fragile", "default", "", 0, 0);  /* dead after the first failure */
}

static const char *const Q[] = { "default" };

static pgq_job *add_and_claim(pgq_conn *c, const char *type, int64_t ttl_ms)
{
    char err[512];
    pgq_add_result r;
    pgq_job *j = NULL;
    ck_assert_msg(pgq_add(c, type, "{}", NULL, &r, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_claim(c, Q, 1, "w1", ttl_ms, &j, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->id, r.id);
    return j;
}

START_TEST(stale_token_after_reap_and_reclaim_changes_nothing)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *old = add_and_claim(c, "t", 100);
    tu_reap_until(c, 1);   /* the lease runs out: attempt 1 fails as "lease expired" */

    pgq_job *fresh = NULL;
    ck_assert(pgq_claim(c, Q, 1, "w2", 60000, &fresh, err, sizeof err) == 0);
    ck_assert_ptr_nonnull(fresh);
    ck_assert_int_eq(fresh->id, old->id);
    ck_assert_int_eq(fresh->attempt, 2);
    ck_assert_str_ne(fresh->lease_token, old->lease_token);

    bool lost = false;
    ck_assert(pgq_complete(c, old->id, old->lease_token, NULL, &lost, err, sizeof err) == 0);
    ck_assert(lost);
    pgq_fail_result fr;
    ck_assert(pgq_fail(c, old->id, old->lease_token, "zombie", NULL, &fr, err, sizeof err) == 0);
    ck_assert(fr.lease_lost);
    lost = false;
    ck_assert(pgq_release(c, old->id, old->lease_token, &lost, err, sizeof err) == 0);
    ck_assert(lost);
    const char *toks[] = { old->lease_token, fresh->lease_token };
    int64_t ids[] = { old->id, fresh->id };
    bool hb[2];
    ck_assert(pgq_heartbeat(c, ids, toks, 2, 60000, hb, err, sizeof err) == 0);
    ck_assert(hb[0]);
    ck_assert(!hb[1]);

    /* The job is untouched: still running under the new lease. */
    const char *p[] = { fresh->lease_token };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'running'"
                            " AND lease_token = $1::uuid AND lease_owner = 'w2'"
                            " AND attempts = 2 AND last_error = 'lease expired'", 1, p), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE attempt = 1"
                            " AND outcome = 'lease_expired' AND error = 'lease expired'"
                            " AND worker = 'w1'", 0, NULL), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts", 0, NULL), 1);

    lost = true;
    ck_assert(pgq_complete(c, fresh->id, fresh->lease_token, NULL, &lost, err, sizeof err) == 0);
    ck_assert(!lost);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done'", 0, NULL), 1);
    pgq_job_free(old);
    pgq_job_free(fresh);
    pgq_disconnect(c);
}
END_TEST

START_TEST(heartbeat_keeps_lease_alive)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "t", 300);
    const char *tok[] = { j->lease_token };
    bool lost = true;
    ck_assert(pgq_heartbeat(c, &j->id, tok, 1, 60000, &lost, err, sizeof err) == 0);
    ck_assert(!lost);
    tu_sleep_ms(600);   /* past the original 300 ms lease */
    int reaped = -1;
    ck_assert(pgq_reap(c, 100, &reaped, err, sizeof err) == 0);
    ck_assert_int_eq(reaped, 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'running'", 0, NULL), 1);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(reaped_lease_counts_as_failure_and_dead_letters)
{
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "fragile", 50);
    tu_reap_until(c, 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'dead'"
                            " AND last_error = 'lease expired' AND finished_at IS NOT NULL"
                            " AND lease_token IS NULL", 0, NULL), 1);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(fail_schedules_retry_with_backoff)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "slow", 60000);
    pgq_attempt_info info = { 3, 0, 12, 3456 };
    pgq_fail_result fr;
    ck_assert(pgq_fail(c, j->id, j->lease_token, "boom: it's \"bad\"", &info, &fr, err,
                       sizeof err) == 0);
    ck_assert(!fr.lease_lost);
    ck_assert(!fr.dead);
    /* attempt 1: base 1 s, jitter +-25% */
    ck_assert_msg(fr.retry_in_s > 0.70 && fr.retry_in_s < 1.26, "retry in %f s", fr.retry_in_s);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'"
                            " AND run_at > now() AND attempts = 1"
                            " AND last_error = 'boom: it''s \"bad\"'", 0, NULL), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'failed'"
                            " AND exit_code = 3 AND cpu_ms = 12 AND max_rss_kb = 3456"
                            " AND duration_ms >= 0", 0, NULL), 1);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* max_retries = N allows N + 1 attempts, then dead with every failure kept. */
START_TEST(max_retries_then_dead_with_history)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_result r;
    ck_assert(pgq_add(c, "slow", "{}", NULL, &r, err, sizeof err) == 0);   /* max_retries 2 */
    for (int attempt = 1; attempt <= 3; attempt++) {
        tu_exec("UPDATE pgq.jobs SET run_at = now() WHERE state = 'ready'", 0, NULL);
        pgq_job *j = NULL;
        ck_assert(pgq_claim(c, Q, 1, "w", 60000, &j, err, sizeof err) == 0);
        ck_assert_ptr_nonnull(j);
        ck_assert_int_eq(j->attempt, attempt);
        char msg[32];
        snprintf(msg, sizeof msg, "failure %d", attempt);
        pgq_fail_result fr;
        ck_assert(pgq_fail(c, j->id, j->lease_token, msg, NULL, &fr, err, sizeof err) == 0);
        ck_assert_int_eq(fr.dead, attempt == 3);
        pgq_job_free(j);
    }
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'dead'"
                            " AND attempts = 3 AND last_error = 'failure 3'", 0, NULL), 1);
    char *hist = tu_text("SELECT string_agg(outcome || ':' || error, ',' ORDER BY attempt)"
                         " FROM pgq.job_attempts", 0, NULL);
    ck_assert_str_eq(hist, "failed:failure 1,failed:failure 2,failed:failure 3");
    free(hist);
    pgq_disconnect(c);
}
END_TEST

START_TEST(zero_retries_dead_after_first_failure)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "fragile", 60000);
    pgq_fail_result fr;
    ck_assert(pgq_fail(c, j->id, j->lease_token, "once", NULL, &fr, err, sizeof err) == 0);
    ck_assert(fr.dead);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(backoff_doubles_with_jitter_and_cap)
{
    /* 200 samples per attempt: within base*2^(a-1) +-25%, never above the
     * cap, spread over the cap's last quarter once there: jitter always. */
    for (int a = 1; a <= 40; a++) {
        char as[8];
        snprintf(as, sizeof as, "%d", a);
        const char *p[] = { as };
        long long lo = tu_int("SELECT min(pgq.backoff_ms($1, 1000, 600000))"
                              " FROM generate_series(1, 200)", 1, p);
        long long hi = tu_int("SELECT max(pgq.backoff_ms($1, 1000, 600000))"
                              " FROM generate_series(1, 200)", 1, p);
        double nominal = 1000.0 * pow(2, a - 1);
        double want_lo = fmin(0.75 * 600000, 0.75 * nominal), want_hi = fmin(600000, 1.25 * nominal);
        ck_assert_msg(lo >= (long long)want_lo - 1 && hi <= (long long)want_hi + 1,
                      "attempt %d: %lld..%lld outside %.0f..%.0f", a, lo, hi, want_lo, want_hi);
        ck_assert_msg(hi > lo, "attempt %d: no jitter", a);
    }
    /* a configured cap beyond a year is held to a year: run_at cannot overflow */
    ck_assert_int_le(tu_int("SELECT pgq.backoff_ms(100, 1000, 9000000000000000000)", 0, NULL),
                     31536000000LL);
}
END_TEST

START_TEST(invalid_utf8_error_text_is_kept)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "t", 60000);
    pgq_fail_result fr;
    /* a stderr tail cut inside a two-byte character, and a stray 0xff */
    ck_assert_msg(pgq_fail(c, j->id, j->lease_token, "caf\xc3\xa9 \xff end \xc3", NULL, &fr,
                           err, sizeof err) == 0, "%s", err);
    char *e = tu_text("SELECT last_error FROM pgq.jobs", 0, NULL);
    ck_assert_str_eq(e, "caf\xc3\xa9 ? end ?");
    free(e);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(strictly_invalid_utf8_error_text_is_kept)
{
    /* Forms the old core/jobs.c check let through and PostgreSQL refuses,
     * which made the failure itself fail: overlong, surrogate, > U+10FFFF. */
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "t", 60000);
    pgq_fail_result fr;
    const char *why = "a\xe0\x80\xaf b\xed\xa0\x80 c\xf4\x90\x80\x80";
    ck_assert_msg(pgq_fail(c, j->id, j->lease_token, why, NULL, &fr, err, sizeof err) == 0, "%s",
                  err);
    char *e = tu_text("SELECT last_error FROM pgq.jobs", 0, NULL);
    ck_assert_str_eq(e, "a??? b??? c????");
    free(e);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(release_gives_back_without_spending_attempt)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "t", 60000);
    bool lost = true;
    ck_assert(pgq_release(c, j->id, j->lease_token, &lost, err, sizeof err) == 0);
    ck_assert(!lost);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'"
                            " AND attempts = 0 AND lease_token IS NULL", 0, NULL), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'released'",
                            0, NULL), 1);
    pgq_job *again = NULL;
    ck_assert(pgq_claim(c, Q, 1, "w", 60000, &again, err, sizeof err) == 0);
    ck_assert_ptr_nonnull(again);
    ck_assert_int_eq(again->attempt, 1);
    pgq_job_free(again);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* keep_done = 0 (pgq_conn_set_keep_done false): the completion deletes the
 * job, its history (a failed attempt, here) and its effects in the same
 * statement, also when exec figures come with it; a stale token deletes
 * nothing; a connection left at the default keeps the done job. */
START_TEST(completion_without_keep_done_deletes_the_job)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "t", 60000);
    int64_t id = j->id;
    char stale[PGQ_TOKEN_LEN + 1];
    snprintf(stale, sizeof stale, "%s", j->lease_token);
    pgq_fail_result fr;
    ck_assert(pgq_fail(c, j->id, j->lease_token, "first", NULL, &fr, err, sizeof err) == 0);
    ck_assert(!fr.dead);
    pgq_job_free(j);
    ck_assert(pgq_claim(c, Q, 1, "w2", 60000, &j, err, sizeof err) == 0 && j && j->id == id);
    ck_assert_int_eq(pgq_once_begin(c, j->id, j->lease_token, "mail", err, sizeof err),
                     PGQ_ONCE_RAN);
    ck_assert(pgq_once_end(c, j->id, j->lease_token, "mail", true, err, sizeof err) == 0);

    pgq_conn_set_keep_done(c, false);
    bool lost = false;
    ck_assert(pgq_complete(c, id, stale, NULL, &lost, err, sizeof err) == 0);
    ck_assert(lost);
    const char *p[] = { tu_lld(id) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1", 1, p), 1);
    pgq_attempt_info info = { 0, 0, 12, 3400 };   /* exec figures: no history row for it */
    ck_assert_msg(pgq_complete(c, id, j->lease_token, &info, &lost, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(!lost);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1", 1, p), 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1", 1, p), 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE job_id = $1", 1, p), 0);
    pgq_job_free(j);

    pgq_conn_set_keep_done(c, true);
    j = add_and_claim(c, "t", 60000);
    ck_assert(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0 && !lost);
    const char *q[] = { tu_lld(j->id) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND state = 'done'", 1,
                            q), 1);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* A job whose worker died (its lease expired and was reaped) is retried at
 * once in its old place, ahead of the jobs queued after it, with no
 * backoff: type "slow" has a 1 s base backoff, which would put it behind
 * the 200 jobs added meanwhile. */
START_TEST(reaped_job_is_retried_in_its_place)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_job *j = add_and_claim(c, "slow", 50);
    int64_t id = j->id;
    pgq_add_item items[200];
    pgq_add_result res[200];
    for (int i = 0; i < 200; i++)
        items[i] = (pgq_add_item){ "slow", "{}", PGQ_ADD_OPTS_INIT };
    ck_assert_msg(pgq_add_batch(c, items, 200, res, err, sizeof err) == 0, "%s", err);
    pgq_job_free(j);
    tu_reap_until(c, 1);
    ck_assert(pgq_claim(c, Q, 1, "w2", 60000, &j, err, sizeof err) == 0 && j);
    ck_assert_msg(j->id == id, "claimed job %lld first, not the reaped job %lld",
                  (long long)j->id, (long long)id);
    ck_assert_int_eq(j->attempt, 2);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* Until the backend of pg waits for a lock (a condition, not a time). */
static void wait_for_lock(PGconn *pg, const char *what)
{
    const char *pid = tu_lld(PQbackendPID(pg));
    int64_t until = tu_now_ms() + 10000;
    while (tu_int("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int"
                  " AND wait_event_type = 'Lock'", 1, (const char *[]){ pid }) == 0) {
        ck_assert_msg(tu_now_ms() < until, "%s never waited for a lock", what);
        tu_sleep_ms(2);
    }
}

static PGresult *result_of(PGconn *pg)
{
    PGresult *r = PQgetResult(pg), *extra;
    while ((extra = PQgetResult(pg)) != NULL)
        PQclear(extra);
    return r;
}

/* The heartbeat's renewal and a batch of acks of the same two leases, each
 * given the ids in the opposite order of the other, with the higher id
 * held elsewhere for a moment (a third session here): the one given the
 * ids high-to-low waits first. Both now lock in id order, so the second
 * waits behind the first and neither fails. Before, the acks locked in the
 * order given and the renewal in the table's order, and with the acks
 * given high-to-low the two deadlocked: one failed with "deadlock
 * detected" after deadlock_timeout (seen in the exec benchmark). */
static void renewal_and_acks(bool acks_first)
{
    pgq_conn *c = tu_connect();
    pgq_job *lo = add_and_claim(c, "t", 60000);
    pgq_job *hi = add_and_claim(c, "t", 60000);
    ck_assert(lo->id < hi->id);
    PGconn *holder = PQconnectdb(tu_db_url()), *renew = PQconnectdb(tu_db_url()),
           *acks = PQconnectdb(tu_db_url());
    ck_assert(PQstatus(holder) == CONNECTION_OK && PQstatus(renew) == CONNECTION_OK &&
              PQstatus(acks) == CONNECTION_OK);
    PQclear(tu_query(holder, "BEGIN", 0, NULL));
    PQclear(tu_query(holder, "SELECT 1 FROM pgq.jobs WHERE id = $1 FOR NO KEY UPDATE", 1,
                     (const char *[]){ tu_lld(hi->id) }));

    char down_ids[64], down_toks[128], up_ids[64], up_toks[128];
    snprintf(down_ids, sizeof down_ids, "{%lld,%lld}", (long long)hi->id, (long long)lo->id);
    snprintf(down_toks, sizeof down_toks, "{%s,%s}", hi->lease_token, lo->lease_token);
    snprintf(up_ids, sizeof up_ids, "{%lld,%lld}", (long long)lo->id, (long long)hi->id);
    snprintf(up_toks, sizeof up_toks, "{%s,%s}", lo->lease_token, hi->lease_token);
    static const char renew_sql[] = "SELECT count(*) FROM pgq.renew($1::bigint[], $2::uuid[], 60000)";
    static const char acks_sql[] =
        "SELECT count(*) FROM pgq.end_attempts('done', $1::bigint[], $2::uuid[])";
    PGconn *first = acks_first ? acks : renew, *second = acks_first ? renew : acks;
    ck_assert(PQsendQueryParams(first, acks_first ? acks_sql : renew_sql, 2, NULL,
                                (const char *[]){ down_ids, down_toks }, NULL, NULL, 0) == 1);
    wait_for_lock(first, "the first");
    ck_assert(PQsendQueryParams(second, acks_first ? renew_sql : acks_sql, 2, NULL,
                                (const char *[]){ up_ids, up_toks }, NULL, NULL, 0) == 1);
    wait_for_lock(second, "the second");
    PQclear(tu_query(holder, "COMMIT", 0, NULL));

    PGresult *rr = result_of(renew), *ra = result_of(acks);
    ck_assert_msg(PQresultStatus(rr) == PGRES_TUPLES_OK, "renewal: %s", PQresultErrorMessage(rr));
    ck_assert_msg(PQresultStatus(ra) == PGRES_TUPLES_OK, "acks: %s", PQresultErrorMessage(ra));
    /* Acks first: the renewal finds both leases gone. Renewal first: it
     * renews both, and the acks end both. */
    ck_assert_str_eq(PQgetvalue(rr, 0, 0), acks_first ? "0" : "2");
    ck_assert_str_eq(PQgetvalue(ra, 0, 0), "2");
    PQclear(rr);
    PQclear(ra);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done'", 0, NULL), 2);
    PQfinish(holder);
    PQfinish(renew);
    PQfinish(acks);
    pgq_job_free(lo);
    pgq_job_free(hi);
    pgq_disconnect(c);
}

START_TEST(renewal_and_acks_lock_in_one_order)
{
    renewal_and_acks(true);
    tu_exec("DELETE FROM pgq.jobs", 0, NULL);
    renewal_and_acks(false);
}
END_TEST

Suite *lease_suite(void)
{
    Suite *s = suite_create("lease");
    TCase *tc = tcase_create("lease");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, stale_token_after_reap_and_reclaim_changes_nothing);
    tcase_add_test(tc, heartbeat_keeps_lease_alive);
    tcase_add_test(tc, reaped_lease_counts_as_failure_and_dead_letters);
    tcase_add_test(tc, fail_schedules_retry_with_backoff);
    tcase_add_test(tc, max_retries_then_dead_with_history);
    tcase_add_test(tc, zero_retries_dead_after_first_failure);
    tcase_add_test(tc, backoff_doubles_with_jitter_and_cap);
    tcase_add_test(tc, release_gives_back_without_spending_attempt);
    tcase_add_test(tc, invalid_utf8_error_text_is_kept);
    tcase_add_test(tc, strictly_invalid_utf8_error_text_is_kept);
    tcase_add_test(tc, completion_without_keep_done_deletes_the_job);
    tcase_add_test(tc, reaped_job_is_retried_in_its_place);
    tcase_add_test(tc, renewal_and_acks_lock_in_one_order);
    suite_add_tcase(s, tc);
    return s;
}
