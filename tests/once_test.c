/* Promise 7: run_once. The effect runs at most once per (job, key): it is
 * skipped on retry once done, retried after a clean failure, refused
 * without the lease, and, when the worker is SIGKILLed inside fn, reported
 * "in doubt" to the next attempt and not run again. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 5, 0);   /* no backoff: a failed job is due again at once */
}

static const char *const Q[] = { "default" };

static int runs;

static int count_run(void *arg, char *err, size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    runs++;
    return 0;
}

static int fail_run(void *arg, char *err, size_t errlen)
{
    (void)arg;
    runs++;
    snprintf(err, errlen, "smtp said no");
    return -1;
}

static pgq_job *claim(pgq_conn *c, int64_t ttl_ms)
{
    char err[512];
    pgq_job *j = NULL;
    ck_assert_msg(pgq_claim(c, Q, 1, "w", ttl_ms, &j, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_nonnull(j);
    return j;
}

static void add(pgq_conn *c)
{
    char err[512];
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, "t", "{}", NULL, &r, err, sizeof err) == 0, "%s", err);
}

static void fail_job(pgq_conn *c, pgq_job *j)
{
    char err[512];
    pgq_fail_result fr;
    ck_assert(pgq_fail(c, j->id, j->lease_token, "retry me", NULL, &fr, err, sizeof err) == 0);
    ck_assert(!fr.lease_lost);
    pgq_job_free(j);
}

START_TEST(done_effect_is_skipped_on_retry)
{
    char err[512];
    pgq_conn *c = tu_connect();
    add(c);
    runs = 0;
    pgq_job *j = claim(c, 60000);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_RAN);
    ck_assert_int_eq(runs, 1);
    /* the same key again within the attempt is skipped as well */
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_SKIPPED);
    fail_job(c, j);
    j = claim(c, 60000);
    ck_assert_int_eq(j->attempt, 2);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_SKIPPED);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "sms", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_RAN);
    ck_assert_int_eq(runs, 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE state = 'done'", 0, NULL), 2);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(clean_failure_removes_record_so_retry_runs)
{
    char err[512];
    pgq_conn *c = tu_connect();
    add(c);
    runs = 0;
    pgq_job *j = claim(c, 60000);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "charge", fail_run, NULL, err,
                                  sizeof err), PGQ_ONCE_FAILED);
    ck_assert_str_eq(err, "run_once charge: smtp said no");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects", 0, NULL), 0);
    fail_job(c, j);
    j = claim(c, 60000);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "charge", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_RAN);
    ck_assert_int_eq(runs, 2);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(lost_lease_does_not_run)
{
    char err[512];
    pgq_conn *c = tu_connect();
    add(c);
    runs = 0;
    pgq_job *j = claim(c, 50);
    tu_reap_until(c, 1);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_LEASE_LOST);
    ck_assert_int_eq(runs, 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects", 0, NULL), 0);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* A zombie (its lease expired and the job was claimed again) that comes
 * back inside fn can neither forget its effect record (fn failed cleanly)
 * nor mark it done: the next attempt already found it in doubt, and the
 * operator must keep seeing that. Found by the chaos suite: a pool resumed
 * after SIGSTOP deleted the record of a job another pool had completed as
 * in doubt, leaving a done job with no trace of its effect. */
START_TEST(zombie_cannot_forget_or_finish_its_effect)
{
    char err[512];
    pgq_conn *c = tu_connect();
    add(c);
    pgq_job *a = claim(c, 1000);
    const char *pa[] = { tu_lld(a->id), a->lease_token };
    ck_assert_int_eq(tu_int("SELECT inserted::int FROM pgq.effect_begin($1, $2, 'email')", 2,
                            pa), 1);
    tu_reap_until(c, 1);
    pgq_job *b = claim(c, 60000);
    ck_assert_int_eq(pgq_run_once(c, b->id, b->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_IN_DOUBT);
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(tu_int("SELECT pgq.effect_forget($1, $2, 'email')::int", 2, pa), 0);
        ck_assert_int_eq(tu_int("SELECT pgq.effect_done($1, $2, 'email')::int", 2, pa), 0);
        ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects_in_doubt WHERE key = "
                                "'email'", 0, NULL), 1);
        if (round == 0) {   /* and once the job is done */
            bool lost = true;
            ck_assert_msg(pgq_complete(c, b->id, b->lease_token, NULL, &lost, err,
                                       sizeof err) == 0, "%s", err);
            ck_assert(!lost);
        }
    }
    pgq_job_free(a);
    pgq_job_free(b);
    pgq_disconnect(c);
}
END_TEST

/* Child: claim, then run_once whose fn reports on the pipe and hangs. */
struct hang_arg {
    int fd;
    const char *marker;
};

static int hang(void *arg, char *err, size_t errlen)
{
    struct hang_arg *h = arg;
    (void)err;
    (void)errlen;
    FILE *f = fopen(h->marker, "a");   /* the side effect: a line in a file */
    if (f) {
        fputs("sent\n", f);
        fclose(f);
    }
    if (write(h->fd, "x", 1) != 1)
        _exit(3);
    for (;;)
        pause();
    return 0;
}

START_TEST(sigkill_inside_fn_leaves_effect_in_doubt)
{
    char err[512], marker[] = "/tmp/pgq-once-XXXXXX";
    int mfd = mkstemp(marker);
    ck_assert_int_ge(mfd, 0);
    close(mfd);
    pgq_conn *c = tu_connect();
    add(c);

    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        pgq_conn *cc = NULL;
        pgq_job *j = NULL;
        struct hang_arg h = { fds[1], marker };
        if (pgq_connect(tu_db_url(), &cc, err, sizeof err) < 0 ||
            pgq_claim(cc, Q, 1, "doomed", 500, &j, err, sizeof err) < 0 || !j)
            _exit(2);
        pgq_run_once(cc, j->id, j->lease_token, "email", hang, &h, err, sizeof err);
        _exit(4);   /* not reached: hang() never returns */
    }
    close(fds[1]);
    char ch;
    ck_assert_int_eq(read(fds[0], &ch, 1), 1);   /* fn is running */
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    tu_check_invariants();
    close(fds[0]);
    ck_assert_int_eq(tu_file_lines(marker), 1);

    tu_reap_until(c, 1);   /* the dead worker's lease expires */
    runs = 0;
    pgq_job *j = claim(c, 60000);
    ck_assert_int_eq(j->attempt, 2);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_IN_DOUBT);
    ck_assert_int_eq(runs, 0);
    ck_assert_int_eq(tu_file_lines(marker), 1);
    /* operators see it */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects_in_doubt WHERE key = 'email'",
                            0, NULL), 1);
    pgq_job_detail *d = NULL;
    ck_assert(pgq_job_describe(c, j->id, &d, err, sizeof err) == 0);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq((int)d->neffects, 1);
    ck_assert(d->effects[0].in_doubt);
    ck_assert_int_eq((int)d->nattempts, 1);
    ck_assert_str_eq(d->attempts_v[0].outcome, "lease_expired");
    ck_assert_str_eq(d->attempts_v[0].worker, "doomed");
    pgq_job_detail_free(d);
    /* and it stays in doubt on every later attempt */
    fail_job(c, j);
    j = claim(c, 60000);
    ck_assert_int_eq(pgq_run_once(c, j->id, j->lease_token, "email", count_run, NULL, err,
                                  sizeof err), PGQ_ONCE_IN_DOUBT);
    ck_assert_int_eq(runs, 0);
    pgq_job_free(j);
    unlink(marker);
    pgq_disconnect(c);
}
END_TEST

Suite *once_suite(void)
{
    Suite *s = suite_create("once");
    TCase *tc = tcase_create("once");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, done_effect_is_skipped_on_retry);
    tcase_add_test(tc, clean_failure_removes_record_so_retry_runs);
    tcase_add_test(tc, lost_lease_does_not_run);
    tcase_add_test(tc, zombie_cannot_forget_or_finish_its_effect);
    tcase_add_test(tc, sigkill_inside_fn_leaves_effect_in_doubt);
    suite_add_tcase(s, tc);
    return s;
}
