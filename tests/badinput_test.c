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
#include "../config/payload.h"

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

/* ---- payloads over their type's max_payload (migration 013) ---- */

/* {"n": 1, "s": "xxx..."} with len x's, malloc'd */
static char *payload_of(size_t len)
{
    char *x = repeat('x', len), *p = malloc(len + 32);
    sprintf(p, "{\"n\": 1, \"s\": \"%s\"}", x);
    free(x);
    return p;
}

/* What the database measures (pgq.payload_size). */
static long long payload_size(const char *payload)
{
    const char *p[] = { payload };
    return tu_int("SELECT pgq.payload_size($1::jsonb)", 1, p);
}

/* n with commas between groups of three, as the refusal writes it */
static const char *grouped(long long n)
{
    char raw[32], out[48];
    size_t k = (size_t)snprintf(raw, sizeof raw, "%lld", n), o = 0;
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && (k - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = raw[i];
    }
    out[o] = '\0';
    return tu_fmt("%s", out);
}

static void register_type(const char *type, int64_t max_payload, const char *who)
{
    pgq_conn *c = tu_connect();
    pgq_type_def d = { .type = type, .max_retries = PGQ_DEFAULT, .priority = PGQ_DEFAULT,
                       .backoff_base_ms = -1, .backoff_max_ms = -1,
                       .max_snoozes = PGQ_DEFAULT, .max_payload = max_payload };
    char err[512];
    ck_assert_msg(pgq_types_register_as(c, &d, 1, who, true, err, sizeof err) == 0, "%s", err);
    pgq_disconnect(c);
}

static void add_ok_everywhere(const char *type, const char *payload)
{
    struct bad b = { "ok", type, payload, NULL, NULL, NULL, PGQ_DEFAULT, -1, NULL, NULL };
    long long before = njobs();
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    pgq_add_result res;
    char err[1024];
    ck_assert_msg(pgq_add(c, type, payload, &o, &res, err, sizeof err) == 0, "library: %s", err);
    pgq_disconnect(c);
    const char *p[] = { type, payload };
    tu_exec("SELECT * FROM pgq.add($1, $2::jsonb)", 2, p);
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    const char *pf = tu_fmt("/tmp/pgq-badinput-ok.%d.json", (int)getpid());
    FILE *f = fopen(pf, "wb");
    ck_assert_ptr_nonnull(f);
    fputs(b.payload, f);
    fclose(f);
    tu_run r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", tu_db_url(), "add", type,
                                                      "--payload-file", pf), 60);
    unlink(pf);
    ck_assert_msg(r.code == 0, "CLI: %s", r.err);
    tu_run_free(&r);
    ck_assert_int_eq(njobs(), before + 3);
    /* every one stored whole */
    const char *q[] = { type, payload };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE type = $1 AND payload = $2::jsonb",
                            2, q), 3);
}

/* A payload one byte over its type's max_payload is refused through the
 * library, SQL and the CLI, naming the type, the size and the limit, and
 * nothing is stored; one exactly at the limit is accepted everywhere; a
 * type registered with no limit (pool.ini's 0) takes a payload over the
 * default 1 MiB, which a type with the default refuses. */
START_TEST(payload_over_max_payload_is_refused)
{
    char *at = payload_of(200), *over = payload_of(201);
    long long limit = payload_size(at);
    ck_assert_int_eq(payload_size(over), limit + 1);
    register_type("small", limit, NULL);
    ck_assert_int_eq(tu_int("SELECT max_payload FROM pgq.job_types WHERE type = 'small'", 0,
                            NULL), limit);

    const char *want = tu_fmt("payload of job type \"small\" is %lld bytes, over its "
                              "max_payload of %lld", limit + 1, limit);
    struct bad b = { "a payload one byte over max_payload", "small", over, NULL, NULL, NULL,
                     PGQ_DEFAULT, -1, want, NULL };
    through_library(&b);
    through_sql(&b);
    through_cli(&b);

    /* the default, 1 MiB, on a type that names none (tu_type's "t") */
    char *big = payload_of(1536 * 1024);
    long long big_size = payload_size(big);
    const char *want_big = tu_fmt("payload of job type \"t\" is %s bytes, over its max_payload "
                                  "of 1048576 (1 MiB)", grouped(big_size));
    struct bad d = { "a payload over the default 1 MiB", "t", big, NULL, NULL, NULL,
                     PGQ_DEFAULT, -1, want_big, NULL };
    through_library(&d);
    through_sql(&d);
    through_cli(&d);
    /* read from a table, where it is stored compressed (to a few KiB):
     * measured whole all the same */
    const char *bp[] = { big };
    tu_exec("CREATE TEMP TABLE big_src AS SELECT $1::jsonb AS p", 1, bp);
    ck_assert_int_lt(tu_int("SELECT pg_column_size(p) FROM big_src", 0, NULL), 1 << 20);
    PGresult *r = PQexec(tu_pg(), "SELECT a.* FROM big_src, LATERAL pgq.add('t', big_src.p) a");
    ck_assert_msg(strstr(PQresultErrorMessage(r), want_big), "[%s]", PQresultErrorMessage(r));
    PQclear(r);
    ck_assert_int_eq(njobs(), 0);

    /* exactly at the limit: accepted, whole */
    add_ok_everywhere("small", at);

    /* no limit of pgq's own (max_payload = 0 in pool.ini, < 0 in the struct) */
    register_type("free", -1, NULL);
    ck_assert_int_eq(tu_int("SELECT max_payload FROM pgq.job_types WHERE type = 'free'", 0,
                            NULL), 0);
    add_ok_everywhere("free", big);
    free(at);
    free(over);
    free(big);
}
END_TEST

/* The batch path (pgq_add_batch, pgq.enqueue, pgq add -) names the item
 * over the limit and stores none of the batch. */
START_TEST(batch_over_max_payload_names_the_item)
{
    char *at = payload_of(100), *over = payload_of(101);
    long long limit = payload_size(at);
    register_type("small", limit, NULL);
    const char *msg = tu_fmt("payload of job type \"small\" is %lld bytes, over its max_payload "
                             "of %lld", limit + 1, limit);

    pgq_conn *c = tu_connect();
    pgq_add_item items[3] = {
        { "small", at, PGQ_ADD_OPTS_INIT }, { "small", over, PGQ_ADD_OPTS_INIT },
        { "small", at, PGQ_ADD_OPTS_INIT },
    };
    pgq_add_result res[3];
    char err[1024] = "";
    ck_assert_int_eq(pgq_add_batch(c, items, 3, res, err, sizeof err), -1);
    ck_assert_msg(strstr(err, tu_fmt("item 2: %s", msg)), "library said [%s]", err);
    ck_assert_int_eq(njobs(), 0);

    const char *p[] = { at, over };
    PGresult *r = PQexecParams(tu_pg(), "SELECT * FROM pgq.enqueue(ARRAY['small', 'small', "
                               "'small'], ARRAY[$1, $2, $1], NULL, NULL, NULL, NULL, NULL, NULL)",
                               2, NULL, p, NULL, NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    ck_assert_msg(strstr(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY), msg), "SQL said [%s]",
                  PQresultErrorMessage(r));
    ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL), "item 2");
    PQclear(r);
    ck_assert_int_eq(njobs(), 0);

    /* pgq add -: JSON lines on stdin, one batch */
    const char *in = tu_fmt("/tmp/pgq-badinput-lines.%d", (int)getpid());
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "{\"type\": \"small\", \"payload\": %s}\n{\"type\": \"small\", \"payload\": %s}\n"
               "{\"type\": \"small\", \"payload\": %s}\n", at, over, at);
    fclose(f);
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run run = tu_run_cmd(NULL, NULL, in, pgq, ARGV(pgq, "--db", tu_db_url(), "add", "-"), 60);
    unlink(in);
    ck_assert_int_ne(run.code, 0);
    ck_assert_msg(strstr(run.err, msg) && strstr(run.err, "line 2"), "CLI said [%s]", run.err);
    tu_run_free(&run);
    ck_assert_int_eq(njobs(), 0);

    /* at the limit, the same batch goes in whole */
    items[1].payload = at;
    ck_assert_msg(pgq_add_batch(c, items, 3, res, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(njobs(), 3);
    pgq_disconnect(c);
    free(at);
    free(over);
}
END_TEST

/* A debounced add (replace) checks the new payload before it replaces the
 * waiting job's: refused, the job keeps its payload. The contract too
 * (pgq.add replaced before checking either). */
START_TEST(replace_over_max_payload_changes_nothing)
{
    char *at = payload_of(100), *over = payload_of(101);
    long long limit = payload_size(at);
    register_type("small", limit, NULL);
    tu_type("strict", "default", "n:number", 3, 0);
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "k";
    o.delay_ms = 3600 * 1000;
    pgq_add_result res;
    char err[1024];
    ck_assert_msg(pgq_add(c, "small", at, &o, &res, err, sizeof err) == 0, "%s", err);
    o.replace = true;
    ck_assert_int_eq(pgq_add(c, "small", over, &o, &res, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "over its max_payload"), "library said [%s]", err);
    const char *p[] = { over };
    PGresult *r = PQexecParams(tu_pg(), "SELECT * FROM pgq.add('small', $1::jsonb, "
                               "idempotency_key => 'k', replace => true)", 1, NULL, p, NULL,
                               NULL, 0);
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    ck_assert_msg(strstr(PQresultErrorMessage(r), "over its max_payload"), "[%s]",
                  PQresultErrorMessage(r));
    PQclear(r);
    const char *q[] = { at };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE idempotency_key = 'k' AND "
                            "payload = $1::jsonb", 1, q), 1);

    pgq_add_opts s = PGQ_ADD_OPTS_INIT;
    s.idempotency_key = "s";
    s.delay_ms = 3600 * 1000;
    ck_assert_msg(pgq_add(c, "strict", "{\"n\": 1}", &s, &res, err, sizeof err) == 0, "%s", err);
    s.replace = true;
    ck_assert_int_eq(pgq_add(c, "strict", "{\"n\": \"one\"}", &s, &res, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "key \"n\" must be number, not string"), "[%s]", err);
    /* (and a run_at of infinity is named, not a bigint cast's error) */
    r = PQexec(tu_pg(), "SELECT * FROM pgq.add('strict', '{\"n\": 2}', idempotency_key => 's', "
                        "replace => true, run_at => 'infinity')");
    ck_assert_msg(strstr(PQresultErrorMessage(r), "run_at must be a finite time"), "[%s]",
                  PQresultErrorMessage(r));
    PQclear(r);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE idempotency_key = 's' AND "
                            "payload = '{\"n\": 1}'", 0, NULL), 1);
    pgq_disconnect(c);
    free(at);
    free(over);
}
END_TEST

/* pgq types list (and --json) shows each type's limit; a pool whose
 * [job T] max_payload differs from a live pool's is told what differs. */
START_TEST(max_payload_is_listed_and_conflicts_are_named)
{
    register_type("small", 512, NULL);
    register_type("free", -1, NULL);
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", tu_db_url(), "types",
                                                      "list"), 60);
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_msg(strstr(r.out, "\nsmall ") || strncmp(r.out, "small ", 6) == 0, "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "max_snoozes=100 max_payload=512 require={}"), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "max_snoozes=100 max_payload=none require={}"), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "max_payload=1MiB"), "t, the default: [%s]", r.out);
    tu_run_free(&r);
    r = tu_run_cmd(NULL, NULL, NULL, pgq, ARGV(pgq, "--db", tu_db_url(), "types", "list",
                                              "--json"), 60);
    ck_assert_msg(r.code == 0, "%s", r.err);
    ck_assert_msg(strstr(r.out, "\"max_payload\":512,"), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\"max_payload\":null,"), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\"max_payload\":1048576,"), "[%s]", r.out);
    tu_run_free(&r);

    register_type("small", 512, "pool-a");
    pgq_conn *c = tu_connect();
    pgq_type_def d = { .type = "small", .max_retries = PGQ_DEFAULT, .priority = PGQ_DEFAULT,
                       .backoff_base_ms = -1, .backoff_max_ms = -1,
                       .max_snoozes = PGQ_DEFAULT, .max_payload = 4096 };
    char err[1024];
    ck_assert_int_eq(pgq_types_register_as(c, &d, 1, "pool-b", false, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "pool-a registered another definition") &&
                  strstr(err, "max_payload 512 vs 4096"), "[%s]", err);
    pgq_disconnect(c);
    ck_assert_int_eq(tu_int("SELECT max_payload FROM pgq.job_types WHERE type = 'small'", 0,
                            NULL), 512);
}
END_TEST

/* config/jsonb_size.c (a [cron NAME] payload's size at load) computes what
 * the database measures, over JSON that exercises jsonb's layout: key
 * order and duplicates, padding before numbers and containers, numeric's
 * short and long headers, escapes, scalars at the top. */
START_TEST(config_measures_payloads_as_the_database_does)
{
    static const char *const corpus[] = {
        "{}", "[]", "1", "\"x\"", "true", "false", "null", "-0", "0", "0.0", "-0.000", "1e3",
        "1E-3", "-12.5e+2", "1.50", "100", "10000", "100000000", "12345678",
        "123456789012345678901234567890", "0.000000000000000000000000000000000000001",
        "1e252", "1e253", "1e256", "1e-252", "1e-260", "0.1e-253", "12.34e-70", "9999.9999",
        "1e131071", "1e-16383", "-1.5e-16382", "0e99999",
        "{\"n\":1}", "{\"n\": 1, \"s\": \"abc\"}", "{\"b\":1,\"a\":2,\"a\":\"x\"}",
        "{\"a\":\"x\",\"a\":2}", "{\"aa\":1,\"b\":[1,2,{\"c\":null}],\"a\":true}",
        "[1,\"a\",2.5,[],{},[[1]],false]", "[\"a\",1,\"bc\",2,\"def\",[3],{\"g\":4}]",
        "{\"\\u00e9\\ud83d\\ude00\\n\":\"\\\"\\\\\\/\\t\\b\\f\\r\"}", "\"\\u0041\\u00e9\\u20ac\"",
        "\"é€😀\"", "{\"é\":\"x\",\"z\":\"yy\",\"é\":[1,\"2\"]}",
        " { \"to\" : \"ops@example.com\" , \"n\" : 1 } ",
        "{\"to\": \"ops@example.com\", \"subject\": \"nightly report\", \"attempts\": 3, "
        "\"meta\": {\"k\": [1, 2, 3.25, -4e2]}, \"tags\": [\"a\", \"bb\"], \"draft\": false}",
        "[[[[[[[[[[1]]]]]]]]]]", "[{\"a\":[{\"b\":[1.5,\"x\"]}]},7,\"yy\",{}]",
    };
    size_t n = sizeof corpus / sizeof corpus[0];
    for (size_t i = 0; i < n + 80; i++) {
        const char *json;
        if (i < n) {
            json = corpus[i];
        } else {
            /* arrays of k numbers after a string of k % 4 bytes, and objects
             * of k keys of growing length: every padding */
            size_t k = i - n;
            char buf[2048];
            size_t o = 0;
            if (k % 2 == 0) {
                o += (size_t)sprintf(buf + o, "[\"%.*s\"", (int)(k % 4), "xyz");
                for (size_t j = 0; j < k / 2; j++)
                    o += (size_t)sprintf(buf + o, ",%zu", j * 7919 % 100003);
                sprintf(buf + o, "]");
            } else {
                o += (size_t)sprintf(buf + o, "{");
                for (size_t j = 0; j < k / 2 + 1; j++)
                    o += (size_t)sprintf(buf + o, "%s\"%.*s\":%s", j ? "," : "", (int)(j % 7 + 1),
                                         "kkkkkkk", j % 3 == 0 ? "1.5" : j % 3 == 1 ? "\"v\"" : "[0]");
                sprintf(buf + o, "}");
            }
            json = tu_fmt("%s", buf);
        }
        int64_t mine = -1;
        char err[256];
        ck_assert_msg(cfg_jsonb_size(json, &mine, err, sizeof err) == 0, "%s: %s", json, err);
        ck_assert_msg(mine == payload_size(json), "%s: config says %lld, the database %lld", json,
                      (long long)mine, payload_size(json));
    }
    /* numbers PostgreSQL's numeric refuses are refused at load too (an
     * exponent that overflowed a long was found by fuzz_payload) */
    static const char *const refused[] = { "1e131072", "10e-16384", "[0.1e-16383]", "0.000e-16383",
                                           "{\"n\": 1e1073741823}", "0.1e-2222222222222222222532" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int64_t mine = -1;
        char err[256];
        ck_assert_msg(cfg_jsonb_size(refused[i], &mine, err, sizeof err) == -1, "%s", refused[i]);
        ck_assert_msg(strstr(err, "out of the range of PostgreSQL's numeric"), "[%s]", err);
        const char *p[] = { refused[i] };
        PGresult *r = PQexecParams(tu_pg(), "SELECT $1::jsonb", 1, NULL, p, NULL, NULL, 0);
        ck_assert_msg(strstr(PQresultErrorMessage(r), "value overflows numeric format"), "%s: [%s]",
                      refused[i], PQresultErrorMessage(r));
        PQclear(r);
    }
    ck_assert_int_eq(cfg_jsonb_size("1e131071", &(int64_t){ 0 }, (char[64]){ 0 }, 64), 0);
    /* half a surrogate pair: jsonb refuses it, so does the load */
    static const char *const halves[] = { "\"\\ud800\"", "\"\\udc00\"",
                                          "{\"k\": \"\\ud800\\u0041\"}" };
    for (size_t i = 0; i < sizeof halves / sizeof halves[0]; i++) {
        char err[256];
        ck_assert_msg(cfg_jsonb_size(halves[i], &(int64_t){ 0 }, err, sizeof err) == -1, "%s",
                      halves[i]);
        ck_assert_msg(strstr(err, "half of a surrogate pair"), "[%s]", err);
        const char *p[] = { halves[i] };
        PGresult *r = PQexecParams(tu_pg(), "SELECT $1::jsonb", 1, NULL, p, NULL, NULL, 0);
        ck_assert_msg(PQresultStatus(r) == PGRES_FATAL_ERROR, "%s taken by PostgreSQL", halves[i]);
        PQclear(r);
    }
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
    tcase_add_test(tc, payload_over_max_payload_is_refused);
    tcase_add_test(tc, batch_over_max_payload_names_the_item);
    tcase_add_test(tc, replace_over_max_payload_changes_nothing);
    tcase_add_test(tc, max_payload_is_listed_and_conflicts_are_named);
    tcase_add_test(tc, config_measures_payloads_as_the_database_does);
    suite_add_tcase(s, tc);
    return s;
}
