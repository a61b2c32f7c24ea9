/*
 * cron_db_test.c -- periodic jobs in the database (pgq.cron_register,
 * pgq.cron_fire, core/cron_jobs.c) and `pgq cron list`: many connections
 * firing one tick at once make one job; a tick already taken, an older
 * one or one the database's clock has not reached makes none; a new
 * schedule does not fire a past tick; the list shows each schedule with
 * its next run and last job. The pools themselves: pool_test.c, "cron".
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model.h"
#include "testutil.h"

Suite *cron_db_suite(void);

static const pgq_cron_def every_min = {
    .name = "report", .schedule = "@every 1m", .timezone = "UTC", .type = "report",
    .queue = NULL, .payload = "{\"pages\": 2}", .priority = PGQ_DEFAULT,
};

static void setup(void)
{
    tu_reset();
    tu_type("report", "reports", "pages:number", 3, 1000);
}

static void teardown(void)
{
    tu_check_invariants();
}

/* The database's current minute, as milliseconds. */
static int64_t db_minute_ms(void)
{
    return tu_int("SELECT (extract(epoch FROM date_trunc('minute', now())) * 1000)::bigint", 0,
                  NULL);
}

static pgq_cron_outcome fire(pgq_conn *c, const pgq_cron_def *d, int64_t tick, int64_t *id)
{
    char err[512];
    pgq_cron_outcome o;
    ck_assert_msg(pgq_cron_fire(c, d, tick, tick + 60000, "test", &o, id, err, sizeof err) == 0,
                  "fire: %s", err);
    return o;
}

struct racer {
    tu_barrier *start;
    int64_t tick;
    pgq_cron_outcome out;
    int64_t id;
    char err[512];
    int rc;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    pgq_conn *c = tu_connect();
    tu_barrier_wait(r->start);
    r->rc = pgq_cron_fire(c, &every_min, r->tick, r->tick + 60000, "racer", &r->out, &r->id,
                          r->err, sizeof r->err);
    pgq_disconnect(c);
    return NULL;
}

/* Sixteen connections fire the same tick at once: one job. */
START_TEST(concurrent_fires_make_one_job)
{
    enum { N = 16 };
    struct racer r[N];
    pthread_t th[N];
    tu_barrier *b = tu_barrier_new(N);
    int64_t tick = db_minute_ms();
    for (int i = 0; i < N; i++) {
        r[i] = (struct racer){ .start = b, .tick = tick };
        ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    int added = 0, taken = 0;
    int64_t id = -1;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ck_assert_msg(r[i].rc == 0, "racer %d: %s", i, r[i].err);
        if (r[i].out == PGQ_CRON_ADDED) {
            added++;
            id = r[i].id;
        }
        taken += r[i].out == PGQ_CRON_TAKEN;
    }
    tu_barrier_free(b);
    ck_assert_int_eq(added, 1);
    ck_assert_int_eq(taken, N - 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 1);
    const char *p[] = { tu_lld(id) };
    ck_assert_int_eq(tu_int("SELECT last_job FROM pgq.cron WHERE name = 'report'", 0, NULL), id);
    /* the job as the type's defaults and the section make it */
    char *row = tu_text("SELECT queue || ' ' || type || ' ' || payload::text || ' ' || cron || ' ' ||"
                        " (cron_tick = run_at) FROM pgq.jobs WHERE id = $1", 1, p);
    ck_assert_str_eq(row, "reports report {\"pages\": 2} report true");
    free(row);
}
END_TEST

START_TEST(taken_older_and_early_ticks_add_nothing)
{
    pgq_conn *c = tu_connect();
    int64_t id, tick = db_minute_ms();
    ck_assert_int_eq(fire(c, &every_min, tick, &id), PGQ_CRON_ADDED);
    ck_assert_int_eq(fire(c, &every_min, tick, &id), PGQ_CRON_TAKEN);
    ck_assert_int_eq(fire(c, &every_min, tick - 60000, &id), PGQ_CRON_TAKEN);   /* older */
    ck_assert_int_eq(fire(c, &every_min, tick + 3600000, &id), PGQ_CRON_EARLY);  /* the future */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 1);
    /* a payload the type's contract refuses: an error, and the tick is not spent */
    pgq_cron_def bad = every_min;
    bad.payload = "{\"pages\": \"two\"}";
    bad.name = "bad";
    char err[512];
    pgq_cron_outcome o;
    ck_assert_int_eq(pgq_cron_fire(c, &bad, tick, -1, "test", &o, &id, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "cron bad: add the job of its tick: ") && strstr(err, "pages"), "%s",
                  err);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.cron WHERE name = 'bad'", 0, NULL), 0);
    pgq_disconnect(c);
}
END_TEST

/* A new schedule starts after the current tick; registering again keeps
 * the fleet's last tick; a changed schedule starts afresh. */
START_TEST(register_starts_after_the_current_tick)
{
    pgq_conn *c = tu_connect();
    char err[512];
    int64_t last, id, tick = db_minute_ms();
    ck_assert_msg(pgq_cron_register(c, &every_min, tick, tick + 60000, "p1", &last, err,
                                    sizeof err) == 0, "%s", err);
    ck_assert_int_eq(last, tick);
    ck_assert_int_eq(fire(c, &every_min, tick, &id), PGQ_CRON_TAKEN);
    /* registered again (another pool, or after a restart) with an older
     * latest tick: the row keeps its own */
    ck_assert(pgq_cron_register(c, &every_min, tick - 600000, tick, "p2", &last, err,
                                sizeof err) == 0);
    ck_assert_int_eq(last, tick);
    /* a changed schedule starts from its own latest tick */
    tu_exec("UPDATE pgq.cron SET last_tick = last_tick - interval '1 hour'", 0, NULL);
    pgq_cron_def hourly = every_min;
    hourly.schedule = "@every 1h";
    ck_assert(pgq_cron_register(c, &hourly, tick - 1000, tick + 3600000, "p3", &last, err,
                                sizeof err) == 0);
    ck_assert_int_eq(last, tick - 1000);
    pgq_disconnect(c);
}
END_TEST

/* pgq cron list: every schedule, its next run and its last job. */
START_TEST(cron_list_shows_next_run_and_last_job)
{
    pgq_conn *c = tu_connect();
    int64_t id, tick = db_minute_ms();
    ck_assert_int_eq(fire(c, &every_min, tick, &id), PGQ_CRON_ADDED);
    pgq_disconnect(c);
    const char *ini = tu_fmt("/tmp/pgq-cron-list-%d.ini", (int)getpid());
    tu_write_file(ini, "[job report]\nhandler = exec /bin/true\nrequire = pages:number\n\n"
                       "[cron report]\nschedule = @every 1m\ntype = report\npayload = {\"pages\": 2}\n\n"
                       "[cron nightly]\nschedule = 30 2 * * *\ntype = report\n"
                       "payload = {\"pages\": 9}\ntimezone = Europe/Berlin\n");
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    const char *env[] = { tu_fmt("DATABASE_URL=%s", tu_db_url()), NULL };
    tu_run r = tu_run_cmd(NULL, env, NULL, pgq, (const char *const[]){ pgq, "cron", "list", "-c",
                                                                       ini, NULL }, 60);
    ck_assert_msg(r.code == 0, "pgq cron list: %d %s", r.code, r.err);
    char next[32], want[512];
    time_t nt = (time_t)((tick + 60000) / 1000);
    struct tm tm;
    /* the next run is computed from the file's section: the minute after now
     * (or the one after it, if a minute began since the fire) */
    strftime(next, sizeof next, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&nt, &tm));
    snprintf(want, sizeof want,
             "NAME     SCHEDULE    TIMEZONE       TYPE    NEXT RUN              LAST JOB\n"
             "nightly  30 2 * * *  Europe/Berlin  report  ");
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "got:\n%s", r.out);
    ck_assert_msg(strstr(r.out, "  - (no pool has it yet)\n"), "got:\n%s", r.out);
    snprintf(want, sizeof want, "report   @every 1m   UTC            report  %s  %lld ready\n",
             next, (long long)id);
    ck_assert_msg(strstr(r.out, want) || (strstr(r.out, "report   @every 1m   UTC            report  ")
                                          && strstr(r.out, tu_fmt("  %lld ready\n", (long long)id))),
                  "got:\n%s\nwant:\n%s", r.out, want);
    ck_assert_int_eq(tu_count_lines(r.out), 3);
    tu_run_free(&r);

    /* --json, without the file: what the database knows */
    r = tu_run_cmd(NULL, env, NULL, pgq, (const char *const[]){ pgq, "cron", "list", "--json",
                                                                NULL }, 60);
    ck_assert_msg(r.code == 0, "pgq cron list --json: %d %s", r.code, r.err);
    snprintf(want, sizeof want, "{\"schedules\":[{\"name\":\"report\",\"schedule\":\"@every 1m\","
             "\"timezone\":\"UTC\",\"type\":\"report\",\"queue\":null,\"next_run\":\"%s\","
             "\"last_tick\":\"", next);
    ck_assert_msg(strncmp(r.out, want, strlen(want)) == 0, "got:\n%s\nwant:\n%s", r.out, want);
    ck_assert_msg(strstr(r.out, tu_fmt("\"last_job\":{\"id\":%lld,\"state\":\"ready\"},"
                                       "\"registered\":true}]}\n", (long long)id)), "got:\n%s", r.out);
    tu_run_free(&r);

    /* usage */
    r = tu_run_cmd(NULL, env, NULL, pgq, (const char *const[]){ pgq, "cron", "show", NULL }, 60);
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.err, "pgq cron: unknown subcommand \"show\" (list)\n");
    tu_run_free(&r);
    unlink(ini);
}
END_TEST

/* The dashboard's model has the schedules, with the last job. */
START_TEST(dashboard_snapshot_has_the_schedules)
{
    pgq_conn *c = tu_connect();
    char err[512];
    int64_t id, tick = db_minute_ms();
    ck_assert_int_eq(fire(c, &every_min, tick, &id), PGQ_CRON_ADDED);
    struct model_query q = { .parts = MODEL_ALL };
    struct snapshot *snap;
    ck_assert_msg(model_refresh_once(c, &q, &snap, err, sizeof err) == 0, "refresh: %s", err);
    ck_assert_uint_eq(snap->ncrons, 1);
    ck_assert_str_eq(snap->crons[0].name, "report");
    ck_assert_str_eq(snap->crons[0].schedule, "@every 1m");
    ck_assert_int_eq(snap->crons[0].last_job, id);
    ck_assert_str_eq(snap->crons[0].last_state, "ready");
    ck_assert(snap->crons[0].has_next);
    ck_assert(snap->crons[0].next_in_s <= 60.5);
    snapshot_release(snap);
    pgq_disconnect(c);
}
END_TEST

Suite *cron_db_suite(void)
{
    Suite *s = suite_create("cron_db");
    TCase *tc = tcase_create("cron_db");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, concurrent_fires_make_one_job);
    tcase_add_test(tc, taken_older_and_early_ticks_add_nothing);
    tcase_add_test(tc, register_starts_after_the_current_tick);
    tcase_add_test(tc, cron_list_shows_next_run_and_last_job);
    tcase_add_test(tc, dashboard_snapshot_has_the_schedules);
    suite_add_tcase(s, tc);
    return s;
}
