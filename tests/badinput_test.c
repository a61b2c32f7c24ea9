/* The bad-input catalogue (issue 15): every kind of bad input a producer
 * can give, through the library (pgq_add), SQL (pgq.add) and the CLI
 * (pgq add), each with its asserted clear error and nothing stored. Then
 * the bad environments: missing and unreadable config files, a database
 * without the schema and one newer than this pgq. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

struct bad {
    const char *what;
    const char *type, *payload, *queue, *run_at, *key;
    int priority;             /* PGQ_DEFAULT: none */
    long long delay_ms;       /* -1: none */
    const char *want;         /* in the library's and the CLI's message */
    const char *want_sql;     /* in SQL's (NULL: the same) */
};

static char *repeat(char ch, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, ch, n);
    s[n] = '\0';
    return s;
}

static char *nested(size_t depth)
{
    size_t len = strlen("{\"n\": 1, \"a\": }") + 2 * depth;
    char *s = malloc(len + 1);
    size_t o = (size_t)sprintf(s, "{\"n\": 1, \"a\": ");
    memset(s + o, '[', depth);
    memset(s + o + depth, ']', depth);
    strcpy(s + o + 2 * depth, "}");
    return s;
}

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "n:number", 3, 0);
}

static long long njobs(void)
{
    return tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL);
}

static void through_library(const struct bad *b)
{
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.queue = b->queue;
    o.run_at = b->run_at;
    o.idempotency_key = b->key;
    o.priority = b->priority;
    if (b->delay_ms >= 0)
        o.delay_ms = b->delay_ms;
    pgq_add_result res;
    char err[1024] = "";
    int rc = pgq_add(c, b->type, b->payload, &o, &res, err, sizeof err);
    ck_assert_msg(rc == -1, "%s: the library took it (job %lld)", b->what, (long long)res.id);
    ck_assert_msg(strstr(err, b->want), "%s: library said [%s], want [%s]", b->what, err,
                  b->want);
    pgq_disconnect(c);
    ck_assert_msg(njobs() == 0, "%s: a job was stored by the library", b->what);
}

static void through_sql(const struct bad *b)
{
    char prio[16], delay[24];
    snprintf(prio, sizeof prio, "%d", b->priority);
    snprintf(delay, sizeof delay, "%lld", b->delay_ms);
    const char *p[] = { b->type, b->payload, b->queue,
                        b->priority == PGQ_DEFAULT ? NULL : prio, b->run_at, b->key,
                        b->delay_ms >= 0 ? delay : NULL };
    PGresult *r = PQexecParams(tu_pg(), "SELECT * FROM pgq.add($1, $2::jsonb, queue => $3, "
                               "priority => $4::int, run_at => $5::timestamptz, "
                               "idempotency_key => $6, delay_ms => $7::bigint)", 7, NULL, p,
                               NULL, NULL, 0);
    const char *want = b->want_sql ? b->want_sql : b->want;
    ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s: SQL took it", b->what);
    ck_assert_msg(strstr(PQresultErrorMessage(r), want), "%s: SQL said [%s], want [%s]", b->what,
                  PQresultErrorMessage(r), want);
    PQclear(r);
    ck_assert_msg(njobs() == 0, "%s: a job was stored through SQL", b->what);
}

static void through_cli(const struct bad *b)
{
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    const char *argv[24] = { pgq, "--db", tu_db_url(), "add", b->type };
    int n = 5;
    char pf[64] = "";
    /* payloads through a file: an argument cannot hold every byte (NUL) or
     * size */
    snprintf(pf, sizeof pf, "/tmp/pgq-badinput.%d.json", (int)getpid());
    FILE *f = fopen(pf, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(b->payload, f);
    fclose(f);
    argv[n++] = "--payload-file";
    argv[n++] = pf;
    char prio[16], delay[24];
    if (b->queue) {
        argv[n++] = "--queue";
        argv[n++] = b->queue;
    }
    if (b->priority != PGQ_DEFAULT) {
        snprintf(prio, sizeof prio, "%d", b->priority);
        argv[n++] = "--priority";
        argv[n++] = prio;
    }
    if (b->run_at) {
        argv[n++] = "--run-at";
        argv[n++] = b->run_at;
    }
    if (b->delay_ms >= 0) {
        snprintf(delay, sizeof delay, "%lldms", b->delay_ms);
        argv[n++] = "--delay";
        argv[n++] = delay;
    }
    if (b->key) {
        argv[n++] = "--idempotency-key";
        argv[n++] = b->key;
    }
    argv[n] = NULL;
    tu_run r = tu_run_cmd(NULL, NULL, NULL, pgq, argv, 60);
    unlink(pf);
    ck_assert_msg(r.code != 0, "%s: the CLI took it: %s", b->what, r.out);
    ck_assert_msg(strstr(r.err, "pgq add: ") == r.err && strchr(r.err, '\n') ==
                  r.err + strlen(r.err) - 1, "%s: not one line: [%s]", b->what, r.err);
    const char *want = b->want;
    if (strstr(b->want, "priority must be"))
        want = "--priority: ";   /* the CLI checks the range itself */
    ck_assert_msg(strstr(r.err, want), "%s: CLI said [%s], want [%s]", b->what, r.err, want);
    tu_run_free(&r);
    ck_assert_msg(njobs() == 0, "%s: a job was stored by the CLI", b->what);
}

START_TEST(producers_bad_input_is_named_and_nothing_stored)
{
    char *deep = nested(200000), *big_key = repeat('k', 1001), *big_queue = repeat('q', 101);
    char *big_type = repeat('t', 5000);
    const struct bad cases[] = {
        { "malformed JSON", "t", "{\"n\": 1", NULL, NULL, NULL, PGQ_DEFAULT, -1,
          "payload is not valid JSON", "invalid input syntax for type json" },
        { "not an object", "t", "[1, 2]", NULL, NULL, NULL, PGQ_DEFAULT, -1,
          "must be a JSON object, not array", NULL },
        { "a key of the wrong type", "t", "{\"n\": \"1\"}", NULL, NULL, NULL, PGQ_DEFAULT, -1,
          "key \"n\" must be number, not string", NULL },
        { "deeply nested JSON", "t", deep, NULL, NULL, NULL, PGQ_DEFAULT, -1,
          "nests too deeply", "stack depth limit exceeded" },
        { "a NUL character", "t", "{\"n\": 1, \"s\": \"a\\u0000b\"}", NULL, NULL, NULL,
          PGQ_DEFAULT, -1, "\\u0000 cannot be converted to text", NULL },
        { "non-UTF-8 bytes in the payload", "t", "{\"n\": 1, \"s\": \"\xff\xfe\"}", NULL, NULL,
          NULL, PGQ_DEFAULT, -1, "payload is not valid UTF-8 at byte offset 15",
          "invalid byte sequence for encoding \"UTF8\"" },
        { "non-UTF-8 bytes in the queue", "t", "{\"n\": 1}", "a\xff", NULL, NULL, PGQ_DEFAULT,
          -1, "not valid UTF-8", "invalid byte sequence for encoding \"UTF8\"" },
        { "non-UTF-8 bytes in the key", "t", "{\"n\": 1}", NULL, NULL, "k\xc3", PGQ_DEFAULT, -1,
          "idempotency key is not valid UTF-8", "invalid byte sequence for encoding \"UTF8\"" },
        { "a huge type name", big_type, "{}", NULL, NULL, NULL, PGQ_DEFAULT, -1,
          "unknown job type", NULL },
        { "SQL in the type", "t'; DROP TABLE pgq.jobs; --", "{}", NULL, NULL, NULL,
          PGQ_DEFAULT, -1, "unknown job type \"t'; DROP TABLE pgq.jobs; --\"", NULL },
        { "a queue name too long", "t", "{\"n\": 1}", big_queue, NULL, NULL, PGQ_DEFAULT, -1,
          "100", NULL },
        { "an idempotency key too long", "t", "{\"n\": 1}", NULL, NULL, big_key, PGQ_DEFAULT,
          -1, "idempotency key must be at most 1000 bytes, not 1001", NULL },
        { "a priority out of range", "t", "{\"n\": 1}", NULL, NULL, NULL, 2000000, -1,
          "priority must be between -1000000 and 1000000, not 2000000", NULL },
        { "run_at infinity", "t", "{\"n\": 1}", NULL, "infinity", NULL, PGQ_DEFAULT, -1,
          "run_at must be a finite time, not infinity", NULL },
        { "run_at in the year 10000", "t", "{\"n\": 1}", NULL, "10000-01-01", NULL, PGQ_DEFAULT,
          -1, "run_at must be at most 100 years ahead", NULL },
        { "run_at not a time", "t", "{\"n\": 1}", NULL, "next tuesday-ish", NULL, PGQ_DEFAULT,
          -1, "invalid input syntax for type timestamp with time zone", NULL },
        { "a delay of 200 years", "t", "{\"n\": 1}", NULL, NULL, NULL, PGQ_DEFAULT,
          200LL * 365 * 86400 * 1000, "delay must be at most 100 years", NULL },
        { "an unknown type", "nope", "{}", NULL, NULL, NULL, PGQ_DEFAULT, -1,
          "unknown job type \"nope\" (register it with pgq types apply)", NULL },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        through_library(&cases[i]);
        through_sql(&cases[i]);
        through_cli(&cases[i]);
    }
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'pgq' AND "
                            "tablename = 'jobs'", 0, NULL), 1);
    /* SQL metacharacters where they are allowed are stored as given */
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "k'); DELETE FROM pgq.jobs; --";
    pgq_add_result res;
    char err[512];
    ck_assert_msg(pgq_add(c, "t", "{\"n\": 1, \"s\": \"'; --\"}", &o, &res, err, sizeof err) == 0,
                  "%s", err);
    pgq_disconnect(c);
    const char *id[] = { tu_lld(res.id) };
    char *key = tu_text("SELECT idempotency_key FROM pgq.jobs WHERE id = $1", 1, id);
    ck_assert_str_eq(key, "k'); DELETE FROM pgq.jobs; --");
    free(key);
    free(deep);
    free(big_key);
    free(big_queue);
    free(big_type);
}
END_TEST

/* Config files that are missing or cannot be read, a database without
 * pgq's schema and one whose schema is newer than this pgq: one line each
 * that names the thing at fault. */
START_TEST(bad_environments_are_named)
{
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    const char *pool = tu_fmt("%s/pgq-pool", tu_bin_dir());
    tu_run r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "-c", "/nonexistent/pool.ini",
                                                      "--db", tu_db_url(), "stats"), 60);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "/nonexistent/pool.ini") && strstr(r.err, "No such file"),
                  "[%s]", r.err);
    tu_run_free(&r);
    /* a directory cannot be read as a file (root reads any mode, so not chmod) */
    r = tu_run_cmd(NULL, NULL, NULL, pool, ARGV(pool, "-c", "/tmp", "--check"), 60);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "/tmp"), "[%s]", r.err);
    tu_run_free(&r);

    const char *name = "pgq_badinput_env";
    tu_exec(tu_fmt("DROP DATABASE IF EXISTS %s WITH (FORCE)", name), 0, NULL);
    tu_exec(tu_fmt("CREATE DATABASE %s", name), 0, NULL);
    char *url = tu_db_url_for(name);
    r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", url, "add", "t", "{}"), 60);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "pgq migrate"), "no schema: [%s]", r.err);
    tu_run_free(&r);
    r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", url, "migrate"), 60);
    ck_assert_int_eq(r.code, 0);
    tu_run_free(&r);
    PGconn *pg = PQconnectdb(url);
    ck_assert_int_eq(PQstatus(pg), CONNECTION_OK);
    PGresult *q = PQexec(pg, "INSERT INTO pgq.schema_migrations (version, name) VALUES (9999, "
                             "'9999_future.sql')");
    if (PQresultStatus(q) != PGRES_COMMAND_OK) {
        PQclear(q);
        q = PQexec(pg, "INSERT INTO pgq.migrations (version, name) VALUES (9999, "
                       "'9999_future.sql')");
    }
    ck_assert_msg(PQresultStatus(q) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(q));
    PQclear(q);
    PQfinish(pg);
    r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", url, "stats"), 60);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "9999") && strstr(r.err, "newer"), "newer schema: [%s]", r.err);
    tu_run_free(&r);
    r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", url, "migrate"), 60);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "newer"), "migrate of a newer schema: [%s]", r.err);
    tu_run_free(&r);
    free(url);
    tu_exec(tu_fmt("DROP DATABASE %s WITH (FORCE)", name), 0, NULL);
}
END_TEST

Suite *badinput_suite(void)
{
    Suite *s = suite_create("badinput");
    TCase *tc = tcase_create("badinput");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_add_test(tc, producers_bad_input_is_named_and_nothing_stored);
    tcase_add_test(tc, bad_environments_are_named);
    suite_add_tcase(s, tc);
    return s;
}
