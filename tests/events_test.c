/* Pool events (pgq_pool_on_event) with an in-process pool: a mixed run --
 * jobs that succeed, fail once and then succeed, die, lose their lease to
 * the reaper, are cancelled by an operator while running, and are released
 * at shutdown -- reports every attempt's start and its outcome exactly
 * once, in that order, and a DONE only once the job is done in the
 * database (read from the callback, on another connection). Run in each
 * claim mode: adaptive (no batch key: successes acknowledged together),
 * batch = 1 (each completion claims the next) and batch = 4. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgq_pool.h"
#include "testutil.h"

#define WAIT_MS 60000
#define MAX_EVENTS 256

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
    nanosleep(&(struct timespec){ ms / 1000, (long)(ms % 1000) * 1000000L }, NULL);
}

#define WAIT_FOR(cond)                                                                       \
    ({                                                                                       \
        int64_t end_ = mono_ms() + WAIT_MS;                                                  \
        bool ok_;                                                                            \
        while (!(ok_ = (cond)) && mono_ms() < end_)                                          \
            nap(20);                                                                         \
        ok_;                                                                                 \
    })

struct seen {
    enum pgq_event_kind kind;
    int64_t id;
    int attempt;
    char type[32];
    char error[128];
    bool has_error;
    bool durable;           /* DONE: the job was done in the database when told */
    bool named;             /* the worker is "worker[N]" and the queue is set */
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct seen events[MAX_EVENTS];
static int nevents;
static PGconn *checker;     /* the callbacks' own connection (under mu) */

static atomic_bool lost_running, cancel_running, slow_running;

static void on_event(const pgq_event *ev, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    if (nevents < MAX_EVENTS) {
        struct seen *s = &events[nevents++];
        s->kind = ev->kind;
        s->id = ev->job_id;
        s->attempt = ev->attempt;
        snprintf(s->type, sizeof s->type, "%s", ev->type);
        s->has_error = ev->error != NULL;
        snprintf(s->error, sizeof s->error, "%s", ev->error ? ev->error : "");
        s->named = strncmp(ev->worker, "worker[", 7) == 0 && strcmp(ev->queue, "default") == 0;
        if (ev->kind == PGQ_EVENT_DONE) {
            const char *p[] = { tu_lld(ev->job_id) };
            PGresult *r = PQexecParams(checker, "SELECT state FROM pgq.jobs WHERE id = $1", 1,
                                       NULL, p, NULL, NULL, 0);
            s->durable = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
                         strcmp(PQgetvalue(r, 0, 0), "done") == 0;
            PQclear(r);
        }
    }
    pthread_mutex_unlock(&mu);
}

static int count_kind(enum pgq_event_kind k)
{
    pthread_mutex_lock(&mu);
    int n = 0;
    for (int i = 0; i < nevents; i++)
        n += events[i].kind == k;
    pthread_mutex_unlock(&mu);
    return n;
}

static int count_outcomes(void)
{
    pthread_mutex_lock(&mu);
    int n = 0;
    for (int i = 0; i < nevents; i++)
        n += events[i].kind != PGQ_EVENT_STARTED;
    pthread_mutex_unlock(&mu);
    return n;
}

/* The job's events attempt by attempt, each attempt's in the order they
 * came: "started:1 failed:1 started:2 done:2". (Attempts of one job may
 * overlap: a reaped attempt's handler may still be stopping while the
 * retry runs on another worker.) */
static const char *story(int64_t id)
{
    static char out[512];
    size_t off = 0;
    out[0] = '\0';
    pthread_mutex_lock(&mu);
    for (int a = 1; a <= 10; a++)
        for (int i = 0; i < nevents && off < sizeof out; i++)
            if (events[i].id == id && events[i].attempt == a)
                off += (size_t)snprintf(out + off, sizeof out - off, "%s%s:%d", off ? " " : "",
                                        pgq_event_kind_name(events[i].kind), a);
    pthread_mutex_unlock(&mu);
    return out;
}

/* ---- handlers ----------------------------------------------------------- */

static int h_ok(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)ctx, (void)arg, (void)err, (void)errlen;
    return 0;
}

static int h_flaky(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (pgq_ctx_job(ctx)->attempt == 1) {
        snprintf(err, errlen, "flaky: first try fails");
        return -1;
    }
    return 0;
}

/* Snoozes its first run (10 ms), then is done: attempt 1 both times. */
static atomic_bool napped;
static int h_nap(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (!atomic_exchange(&napped, true) &&
        pgq_ctx_snooze(ctx, 10, err, errlen) != PGQ_SNOOZE_ASKED)
        return -1;
    return 0;
}

static int h_doomed(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)ctx, (void)arg;
    snprintf(err, errlen, "doomed: always fails");
    return -1;
}

/* Flag that it runs, then wait (bounded) for the pool to cancel it. */
static int wait_cancelled(pgq_ctx *ctx, atomic_bool *running, char *err, size_t errlen)
{
    atomic_store(running, true);
    int64_t end = mono_ms() + WAIT_MS;
    while (!pgq_ctx_cancelled(ctx) && mono_ms() < end)
        nap(10);
    snprintf(err, errlen, "stopped");
    return -1;
}

/* First attempt: runs until its lease is lost; the retry succeeds. */
static int h_lost(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    if (pgq_ctx_job(ctx)->attempt > 1)
        return 0;
    return wait_cancelled(ctx, &lost_running, err, errlen);
}

static int h_cancel(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    return wait_cancelled(ctx, &cancel_running, err, errlen);
}

static int h_slow(pgq_ctx *ctx, void *arg, char *err, size_t errlen)
{
    (void)arg;
    return wait_cancelled(ctx, &slow_running, err, errlen);
}

static int64_t add(pgq_conn *c, const char *type)
{
    char err[512];
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, type, "{}", &o, &r, err, sizeof err) == 0, "add %s: %s", type, err);
    return r.id;
}

static void setup(void)
{
    tu_reset();
    nevents = 0;
    atomic_store(&lost_running, false);
    atomic_store(&cancel_running, false);
    atomic_store(&slow_running, false);
    atomic_store(&napped, false);
    checker = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(checker), CONNECTION_OK);
}

static void teardown(void)
{
    tu_check_invariants();
    PQfinish(checker);
}

static const int modes[] = { 0, 1, 4 };   /* batch: none (adaptive), strict, 4 */

START_TEST(every_outcome_is_reported_once)
{
    char err[1024];
    int batch = modes[_i];
    char path[] = "/tmp/pgq-events-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    tu_write_file(path, tu_fmt("[pool]\nworkers = 4\n%slease_ttl = 2s\nheartbeat = 200ms\n"
                               "poll = 100ms\nshutdown_timeout = 300ms\n\n"
                               "[job ok]\nhandler = callback ok\n\n"
                               "[job flaky]\nhandler = callback flaky\nbackoff_base = 0s\n\n"
                               "[job doomed]\nhandler = callback doomed\nmax_retries = 0\n\n"
                               "[job lost]\nhandler = callback lost\nbackoff_base = 0s\n\n"
                               "[job cancel]\nhandler = callback cancel\n\n"
                               "[job nap]\nhandler = callback nap\n\n"
                               "[job slow]\nhandler = callback slow\n",
                               batch ? tu_fmt("batch = %d\n", batch) : ""));
    pgq_cfg *cfg;
    pgq_pool *pool;
    ck_assert_msg(pgq_cfg_load(path, &cfg, err, sizeof err) == 0, "%s", err);
    unlink(path);
    ck_assert_msg(pgq_pool_new(cfg, tu_db_url(), &pool, err, sizeof err) == 0, "%s", err);
    static const struct { const char *name; pgq_handler_fn fn; } cbs[] = {
        { "ok", h_ok }, { "flaky", h_flaky }, { "doomed", h_doomed },
        { "lost", h_lost }, { "cancel", h_cancel }, { "slow", h_slow }, { "nap", h_nap },
    };
    for (size_t i = 0; i < sizeof cbs / sizeof cbs[0]; i++)
        ck_assert(pgq_pool_on(pool, cbs[i].name, cbs[i].fn, NULL, err, sizeof err) == 0);
    ck_assert_msg(pgq_pool_on_event(pool, on_event, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_pool_start(pool, err, sizeof err) == 0, "%s", err);
    /* Registration is closed once started (threads read the list unlocked). */
    ck_assert_int_eq(pgq_pool_on_event(pool, on_event, NULL, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "before pgq_pool_start"), "%s", err);

    pgq_conn *c = tu_connect();
    int64_t ok[3], flaky, doomed, lost, cancel, slow, napper;
    for (int i = 0; i < 3; i++)
        ok[i] = add(c, "ok");
    flaky = add(c, "flaky");
    doomed = add(c, "doomed");
    lost = add(c, "lost");
    cancel = add(c, "cancel");
    napper = add(c, "nap");

    /* The lease of "lost" expires (as if its pool had frozen) and is reaped. */
    ck_assert_msg(WAIT_FOR(atomic_load(&lost_running)), "the lost job did not start");
    const char *p[] = { tu_lld(lost) };
    tu_exec("UPDATE pgq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
            1, p);
    tu_reap_until(c, 1);
    /* An operator cancels "cancel" while it runs. */
    ck_assert_msg(WAIT_FOR(atomic_load(&cancel_running)), "the cancel job did not start");
    int64_t ids[] = { cancel }, moved = 0;
    bool done = false;
    ck_assert_msg(pgq_cancel(c, ids, 1, "events test", &done, &moved, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(done);

    /* ok x3, flaky failed + done, doomed dead, lost lease_lost + done, cancel cancelled,
     * nap snoozed + done. */
    const int want = 3 + 2 + 1 + 2 + 1 + 2;
    ck_assert_msg(WAIT_FOR(count_outcomes() >= want), "%d outcomes of %d", count_outcomes(),
                  want);
    /* "slow" runs into the shutdown deadline and is released. */
    slow = add(c, "slow");
    ck_assert_msg(WAIT_FOR(atomic_load(&slow_running)), "the slow job did not start");
    pgq_pool_stop(pool);
    ck_assert_int_eq(pgq_pool_wait(pool), 0);
    int total = nevents;
    pgq_pool_free(pool);

    for (int i = 0; i < 3; i++)
        ck_assert_str_eq(story(ok[i]), "started:1 done:1");
    ck_assert_str_eq(story(flaky), "started:1 failed:1 started:2 done:2");
    ck_assert_str_eq(story(doomed), "started:1 dead:1");
    ck_assert_str_eq(story(lost), "started:1 lease_lost:1 started:2 done:2");
    ck_assert_str_eq(story(cancel), "started:1 cancelled:1");
    ck_assert_str_eq(story(slow), "started:1 released:1");
    ck_assert_str_eq(story(napper), "started:1 snoozed:1 started:1 done:1");
    ck_assert_int_eq(total, 2 * 3 + 4 + 2 + 4 + 2 + 2 + 4);
    ck_assert_int_eq(count_kind(PGQ_EVENT_DONE), 6);
    ck_assert_int_eq(count_kind(PGQ_EVENT_SNOOZED), 1);
    for (int i = 0; i < total; i++) {
        const struct seen *s = &events[i];
        ck_assert_msg(s->named, "event %d (%s of job %lld): worker or queue missing", i,
                      pgq_event_kind_name(s->kind), (long long)s->id);
        if (s->kind == PGQ_EVENT_DONE)
            ck_assert_msg(s->durable, "job %lld: DONE reported before it was committed",
                          (long long)s->id);
        if (s->kind == PGQ_EVENT_FAILED)
            ck_assert_str_eq(s->error, "flaky: first try fails");
        if (s->kind == PGQ_EVENT_DEAD)
            ck_assert_str_eq(s->error, "doomed: always fails");
        if (s->kind == PGQ_EVENT_CANCELLED)
            ck_assert_str_eq(s->error, "cancelled by events test");
        if (s->kind == PGQ_EVENT_LEASE_LOST)
            ck_assert_msg(s->has_error && *s->error, "lease lost without a reason");
        if (s->kind == PGQ_EVENT_STARTED || s->kind == PGQ_EVENT_DONE ||
            s->kind == PGQ_EVENT_RELEASED)
            ck_assert_msg(!s->has_error, "%s with an error: %s", pgq_event_kind_name(s->kind),
                          s->error);
    }
    /* The database agrees. */
    char *states = tu_text("SELECT string_agg(state, ',' ORDER BY id) FROM pgq.jobs", 0, NULL);
    ck_assert_str_eq(states, "done,done,done,done,dead,done,cancelled,done,ready");
    free(states);
    pgq_disconnect(c);
}
END_TEST

/* An exec handler's `pgq snooze` is recorded on the job through SQL, by
 * another process: the pool learns of it from the completion, which says
 * that it applied a snooze, and reports SNOOZED, then DONE for the run
 * after (the handler snoozes once: a marker file per job). */
START_TEST(exec_snooze_is_reported)
{
    char err[1024];
    int batch = modes[_i];
    char dir[] = "/tmp/pgq-events-exec-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char script[128], ini[128];
    snprintf(script, sizeof script, "%s/nap.sh", dir);
    snprintf(ini, sizeof ini, "%s/pool.ini", dir);
    tu_write_file(script, tu_fmt("#!/bin/sh\nif [ ! -e '%s/s-'\"$PGQ_JOB_ID\" ]; then\n"
                                 "  : > '%s/s-'\"$PGQ_JOB_ID\"\n  '%s/pgq' snooze 10ms || exit 1\n"
                                 "fi\nexit 0\n", dir, dir, tu_bin_dir()));
    ck_assert_int_eq(chmod(script, 0755), 0);
    tu_write_file(ini, tu_fmt("[pool]\nworkers = 2\n%slease_ttl = 5s\nheartbeat = 200ms\n"
                              "poll = 100ms\nshutdown_timeout = 2s\n\n"
                              "[job xnap]\nhandler = exec %s\n\n[job xok]\nhandler = exec /bin/true\n",
                              batch ? tu_fmt("batch = %d\n", batch) : "", script));
    pgq_cfg *cfg;
    pgq_pool *pool;
    ck_assert_msg(pgq_cfg_load(ini, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_pool_new(cfg, tu_db_url(), &pool, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_pool_on_event(pool, on_event, NULL, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_pool_start(pool, err, sizeof err) == 0, "%s", err);
    pgq_conn *c = tu_connect();
    int64_t napper = add(c, "xnap"), ok = add(c, "xok");
    /* xnap: snoozed + done; xok: done */
    ck_assert_msg(WAIT_FOR(count_outcomes() >= 3), "%d outcomes of 3", count_outcomes());
    pgq_pool_stop(pool);
    ck_assert_int_eq(pgq_pool_wait(pool), 0);
    pgq_pool_free(pool);

    ck_assert_str_eq(story(napper), "started:1 snoozed:1 started:1 done:1");
    ck_assert_str_eq(story(ok), "started:1 done:1");
    ck_assert_int_eq(count_kind(PGQ_EVENT_SNOOZED), 1);
    for (int i = 0; i < nevents; i++)
        if (events[i].kind == PGQ_EVENT_DONE)
            ck_assert_msg(events[i].durable, "job %lld: DONE reported before it was done",
                          (long long)events[i].id);
    char *states = tu_text("SELECT string_agg(state || ':' || attempts || ':' || snoozes, ','"
                           " ORDER BY id) FROM pgq.jobs", 0, NULL);
    ck_assert_str_eq(states, "done:1:1,done:1:0");
    free(states);
    pgq_disconnect(c);
    unlink(script);
    unlink(ini);
    unlink(tu_fmt("%s/s-%lld", dir, (long long)napper));
    rmdir(dir);
}
END_TEST

START_TEST(kind_names)
{
    ck_assert_str_eq(pgq_event_kind_name(PGQ_EVENT_STARTED), "started");
    ck_assert_str_eq(pgq_event_kind_name(PGQ_EVENT_LEASE_LOST), "lease_lost");
    ck_assert_str_eq(pgq_event_kind_name(PGQ_EVENT_SNOOZED), "snoozed");
    ck_assert_str_eq(pgq_event_kind_name(PGQ_EVENT_RELEASED), "released");
    ck_assert_str_eq(pgq_event_kind_name(PGQ_EVENT__COUNT), "unknown");
    ck_assert_str_eq(pgq_event_kind_name((enum pgq_event_kind)-1), "unknown");
}
END_TEST

Suite *events_suite(void)
{
    Suite *s = suite_create("events");
    TCase *tc = tcase_create("events");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_loop_test(tc, every_outcome_is_reported_once, 0,
                        (int)(sizeof modes / sizeof modes[0]));
    tcase_add_loop_test(tc, exec_snooze_is_reported, 0, sizeof modes / sizeof modes[0]);
    tcase_add_test(tc, kind_names);
    suite_add_tcase(s, tc);
    return s;
}
