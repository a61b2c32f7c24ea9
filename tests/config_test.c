/*
 * config_test.c -- unit tests for config/ (pool.ini loading) and durations.
 *
 * Broken configuration is test data: every file under tests/ini/bad_*.ini
 * has its complete error message asserted here, golden-file style, so a
 * message that changes or loses its FILE:LINE shows up as a failure. Good
 * files check that values, defaults and line numbers come out right, and the
 * shipped config/pool.ini must load. Files are found relative to
 * $PGQ_TEST_DIR (the tests/ directory; "tests" when unset).
 */
#include <check.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../config/pgq_config.h"
#include "../config/cron.h"
#include "../config/duration.h"
#include "../config/tz.h"
#include "../config/listen.h"

Suite *config_suite(void);
Suite *duration_suite(void);

#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)
#define MS_D (24 * MS_H)

static const char *test_dir(void)
{
    const char *d = getenv("PGQ_TEST_DIR");

    return d && *d ? d : "tests";
}

static char *ini_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/ini/%s", test_dir(), name);
    return buf;
}

/* Load a file that must be valid; fails the test with the message if not. */
static pgq_cfg *load_ok(const char *name)
{
    char path[1024], err[1024];
    pgq_cfg *cfg = NULL;

    ini_path(path, sizeof path, name);
    if (pgq_cfg_load(path, &cfg, err, sizeof err) != 0)
        ck_abort_msg("loading %s failed: %s", path, err);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->path, path);
    return cfg;
}

static void assert_argv(const pgq_cfg_type *t, const char *const *want, size_t n)
{
    size_t i;

    ck_assert_uint_eq(t->argc, n);
    ck_assert_ptr_nonnull(t->argv);
    for (i = 0; i < n; i++)
        ck_assert_str_eq(t->argv[i], want[i]);
    ck_assert_ptr_null(t->argv[n]);
}

static void assert_pool_defaults(const pgq_cfg *c)
{
    ck_assert_ptr_null(c->db_url);
    ck_assert_int_eq(c->workers, 8);
    ck_assert_uint_eq(c->nqueues, 1);
    ck_assert_str_eq(c->queues[0], "default");
    ck_assert_int_eq(c->lease_ttl_ms, 30 * MS_S);
    ck_assert_int_eq(c->heartbeat_ms, 10 * MS_S);
    ck_assert_int_eq(c->poll_ms, 1 * MS_S);
    ck_assert_int_eq(c->shutdown_timeout_ms, 30 * MS_S);
    ck_assert_int_eq(c->keep_done_ms, 1 * MS_D);
    ck_assert_int_eq(c->keep_dead_ms, 30 * MS_D);
}

/* ---- golden error messages: FILE is prepended to msg ---- */

static const struct golden {
    const char *file;
    const char *msg;
} goldens[] = {
    { "does_not_exist.ini", ": cannot open: No such file or directory" },
    { "bad_unknown_key.ini", ":3: [pool] workrs: unknown key; did you mean \"workers\"?" },
    { "bad_unknown_key_elsewhere.ini", ":2: [pool] timeout: unknown key; \"timeout\" belongs in [job NAME]" },
    { "bad_unknown_key_list.ini", ":2: [database] host: unknown key (known keys: url, pooler, listen_url, handler_url)" },
    { "bad_pooler.ini", ":2: [database] pooler: pooler \"transactions\" is not one of transaction, session, none" },
    { "bad_unknown_section.ini", ":4: [server]: unknown section (use [database], [pool], [job NAME] or [cron NAME])" },
    { "bad_duration_unit.ini", ":2: [pool] lease_ttl: \"10x\": unknown unit \"x\" (use ms, s, m, h, d)" },
    { "bad_duration_no_unit.ini", ":2: [pool] poll: \"10\": needs a unit (use ms, s, m, h, d)" },
    { "bad_duration_negative.ini", ":2: [pool] heartbeat: \"-5s\": negative" },
    { "bad_int_range.ini", ":2: [pool] workers: \"500\" is out of range (1..256)" },
    { "bad_metrics_listen.ini", ":2: [pool] metrics_listen: \"9464\": expected HOST:PORT, e.g. "
                                "127.0.0.1:9464 or [::1]:9464 (port 0: any free port)" },
    { "bad_metrics_host.ini", ":3: [pool] metrics_listen: \"metrics.example.com\" is not a "
                              "numeric address (nothing is looked up; use localhost, an IPv4 "
                              "address or [IPv6]): expected HOST:PORT, e.g. 127.0.0.1:9464 or "
                              "[::1]:9464 (port 0: any free port)" },
    { "bad_metrics_port.ini", ":2: [pool] metrics_listen: \"127.0.0.1:70000\": port \"70000\" "
                              "is not a number in 0..65535" },
    { "bad_duration_range.ini", ":2: [pool] lease_ttl: \"500ms\" is out of range (1s..1d)" },
    { "bad_not_number.ini", ":2: [pool] workers: \"eight\" is not a whole number" },
    { "bad_hash_comment.ini", ":2: [pool] workers: \"8   # only\" is not a whole number "
                              "(only \";\" starts a comment after a value, not \"#\")" },
    { "bad_semicolon_comment.ini", ":2: [pool] workers: \"4;four\" is not a whole number "
                                   "(a comment after a value needs whitespace before the \";\")" },
    { "bad_missing_handler.ini", ":1: [job first] handler: missing (every job type needs a handler)" },
    { "bad_missing_handler_eof.ini", ":4: [job last] handler: missing (every job type needs a handler)" },
    { "bad_handler_kind.ini", ":2: [job x] handler: \"shell /bin/true\": unknown handler kind \"shell\" "
                              "(use exec CMD ARGS..., plugin PATH SYMBOL or callback NAME)" },
    { "bad_handler_plugin.ini", ":2: [job x] handler: \"plugin /usr/lib/pgq/x.so\": plugin needs exactly "
                                "a path and a symbol (plugin PATH SYMBOL)" },
    { "bad_handler_symbol.ini", ":2: [job x] handler: \"plugin /usr/lib/pgq/x.so 9lives\": symbol "
                                "\"9lives\" is not a C identifier" },
    { "bad_handler_callback.ini", ":2: [job x] handler: \"callback one two\": callback needs exactly one "
                                  "name (callback NAME)" },
    { "bad_handler_exec_empty.ini", ":2: [job x] handler: \"exec\": exec needs a command (exec CMD ARGS...)" },
    { "bad_handler_quote.ini", ":2: [job x] handler: \"exec /bin/echo 'unterminated\": unterminated ' quote" },
    { "bad_duplicate_key.ini", ":4: [job x] handler: duplicate key (first set at line 2)" },
    { "bad_duplicate_job.ini", ":7: [job send-email]: duplicate section (first at line 1)" },
    { "bad_duplicate_section.ini", ":4: [pool]: duplicate section (first at line 1)" },
    { "bad_heartbeat.ini", ":2: [pool] heartbeat: 30s must be shorter than lease_ttl (30s, the default)" },
    { "bad_lease_ttl.ini", ":2: [pool] lease_ttl: 5s must be longer than heartbeat (10s, the default)" },
    { "bad_heartbeat_both.ini", ":3: [pool] heartbeat: 20s must be shorter than lease_ttl (20s)" },
    { "bad_backoff.ini", ":3: [job x] backoff_base: 2h must not exceed backoff_max (1h)" },
    { "bad_backoff_max.ini", ":3: [job x] backoff_max: 500ms must not be less than backoff_base (1s, the default)" },
    { "bad_require_type.ini", ":3: [job x] require: item 2 \"count:integer\": unknown type \"integer\" "
                              "(use string, number, boolean, object, array or null)" },
    { "bad_require_item.ini", ":3: [job x] require: item 2: empty" },
    { "bad_line_too_long.ini", ":2: line too long (max 199 bytes)" },
    { "bad_syntax.ini", ":2: syntax error (expected [section] or key = value)" },
    { "bad_syntax_section.ini", ":1: syntax error (missing \"]\" after the section name)" },
    { "bad_section_trailing.ini", ":1: syntax error (text after the section header)" },
    { "bad_empty_job_name.ini", ":1: [job]: missing job type name (use [job NAME])" },
    { "bad_job_name_space.ini", ":1: [job send email]: job type name must be 1..100 characters without whitespace" },
    { "bad_job_name_long.ini", ":1: [job nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn"
                               "nnnnnnnnnnnnnnnnnnnnnnnnnnnnnn]: job type name must be 1..100 characters "
                               "without whitespace" },
    { "bad_key_outside.ini", ":1: workers: key outside of any section (put it under [database], [pool], [job NAME] or [cron NAME])" },
    { "bad_queues_empty_item.ini", ":2: [pool] queues: \"a,,b\": empty item" },
    { "bad_queues_duplicate.ini", ":2: [pool] queues: \"a, b, a\": duplicate item \"a\"" },
    { "bad_queue_name.ini", ":3: [job x] queue: queue name \"bulk emails\" contains whitespace at byte offset 4" },
    { "bad_queue_name_long.ini", ":3: [job x] queue: queue name \"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...\" is 101 "
                                 "characters; at most 100" },
    { "bad_queues_whitespace.ini", ":2: [pool] queues: queue name \"bulk\\vmail\" contains whitespace at byte "
                                   "offset 4" },
    { "bad_empty_value.ini", ":2: [pool] workers: empty value" },
    { "bad_max_retries.ini", ":3: [job x] max_retries: \"-1\" is out of range (0..1000)" },
    { "bad_rate_form.ini", ":3: [job x] rate: \"10\" is not N/DURATION (e.g. 10/1s, 600/1m)" },
    { "bad_rate_count.ini", ":4: [job x] rate: \"0/1s\": 0 starts is out of range (1..1000000)" },
    { "bad_rate_window.ini", ":3: [job x] rate: \"10/0s\": the window must be 1ms..7d" },
    { "bad_rate_unit.ini", ":3: [job x] rate: \"10/1parsec\": \"1parsec\": unknown unit \"parsec\" "
                           "(use ms, s, m, h, d)" },
    { "bad_concurrency.ini", ":3: [job x] concurrency: \"0\" is out of range (1..100000)" },
    { "bad_priority.ini", ":3: [job x] priority: \"1001\" is out of range (-1000..1000)" },
    { "bad_first_error_wins.ini", ":2: [pool] workers: \"0\" is out of range (1..256)" },
    { "bad_missing_key_name.ini", ":2: syntax error (missing key name before \"=\")" },
    { "bad_nul.ini", ":2: line contains a NUL byte" },
    { "bad_cron_schedule.ini", ":7: [cron nightly] schedule: hour field \"25\": 25 is out of range (0-23)" },
    { "bad_cron_fields.ini", ":6: [cron nightly] schedule: \"0 3 * * * *\": expected 5 fields (minute hour "
                             "day-of-month month day-of-week), found more than 5" },
    { "bad_cron_every.ini", ":6: [cron nightly] schedule: @every 200ms: out of range (1s..366d)" },
    { "bad_cron_zone.ini", ":8: [cron nightly] timezone: unknown time zone \"Europe/Atlantis\" (no "
                           "/usr/share/zoneinfo/Europe/Atlantis)" },
    { "bad_cron_json.ini", ":8: [cron nightly] payload: not valid JSON: byte 32: expected a value" },
    { "bad_cron_contract.ini", ":8: [cron nightly] payload: missing required key \"n\" (number) of job "
                               "type \"mail\"" },
    { "bad_cron_contract_type.ini", ":8: [cron nightly] payload: key \"n\" is a string; job type \"mail\" "
                                    "requires a number" },
    { "bad_cron_default_payload.ini", ":5: [cron nightly] payload: missing required key \"to\" (string) of "
                                      "job type \"mail\" (the default payload is {})" },
    { "bad_cron_type.ini", ":7: [cron nightly] type: no [job report] section in this file (a cron's "
                           "payload is checked against its type's contract)" },
    { "bad_cron_missing_schedule.ini", ":5: [cron nightly] schedule: missing (every [cron NAME] section "
                                       "needs a schedule)" },
    { "bad_cron_duplicate.ini", ":9: [cron nightly]: duplicate section (first at line 5)" },
    { "bad_cron_key.ini", ":9: [cron nightly] handler: unknown key; \"handler\" belongs in [job NAME]" },
    { "bad_result_max_unit.ini", ":3: [job x] result_max: \"64XB\": unknown size unit (use B, KiB, MiB or GiB)" },
    { "bad_result_max_range.ini", ":3: [job x] result_max: \"17MB\" is out of range (0..16MiB)" },
    { "bad_max_payload_unit.ini", ":4: [job mail] max_payload: \"1 MiBs\": unknown size unit (use B, "
                                  "KiB, MiB or GiB)" },
    { "bad_max_payload_range.ini", ":3: [job mail] max_payload: \"300MiB\" is out of range "
                                   "(0..256MiB)" },
    { "bad_max_payload_negative.ini", ":3: [job mail] max_payload: \"-1\" is not a size (bytes, or a "
                                      "number with B, KiB, MiB or GiB)" },
    { "bad_max_payload_empty.ini", ":3: [job mail] max_payload: empty value" },
    { "bad_cron_max_payload.ini", ":9: [cron nightly] payload: 69 bytes as jsonb, over the "
                                  "max_payload of job type \"mail\" (64, line 3)" },
};
#define NGOLDENS ((int)(sizeof goldens / sizeof goldens[0]))

START_TEST(test_bad_file)
{
    const struct golden *g = &goldens[_i];
    char path[1024], want[2048], err[2048];
    pgq_cfg *cfg = (pgq_cfg *)&err;     /* must come back NULL */

    ini_path(path, sizeof path, g->file);
    snprintf(want, sizeof want, "%s%s", path, g->msg);
    ck_assert_int_eq(pgq_cfg_load(path, &cfg, err, sizeof err), -1);
    ck_assert_ptr_null(cfg);
    ck_assert_str_eq(err, want);
}
END_TEST

/* ---- good files ---- */

START_TEST(test_defaults)
{
    pgq_cfg *c = load_ok("good_defaults.ini");
    const pgq_cfg_type *t;
    static const char *const argv[] = { "minimal" };

    assert_pool_defaults(c);
    ck_assert_uint_eq(c->ntypes, 1);
    t = &c->types[0];
    ck_assert_str_eq(t->name, "minimal");
    ck_assert_int_eq(t->line, 1);
    ck_assert_str_eq(t->queue, "default");
    ck_assert_int_eq(t->handler_kind, PGQ_HANDLER_CALLBACK);
    ck_assert_str_eq(t->handler, "minimal");
    assert_argv(t, argv, 1);
    ck_assert_int_eq(t->handler_line, 2);
    ck_assert_int_eq(t->timeout_ms, 60 * MS_S);
    ck_assert_int_eq(t->max_retries, 5);
    ck_assert_int_eq(t->backoff_base_ms, 1 * MS_S);
    ck_assert_int_eq(t->backoff_max_ms, 1 * MS_H);
    ck_assert_int_eq(t->priority, 0);
    ck_assert_ptr_null(t->require);
    ck_assert_uint_eq(t->nrequire, 0);
    ck_assert_int_eq(t->result_max, 64 * 1024);
    ck_assert_int_eq(t->concurrency, 0);   /* no limits unless asked */
    ck_assert_int_eq(t->rate.count, 0);
    ck_assert_int_eq(t->max_snoozes, 100);
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_limits)
{
    pgq_cfg *c = load_ok("good_limits.ini");
    const pgq_cfg_type *t = &c->types[0];

    ck_assert_int_eq(t->concurrency, 3);
    ck_assert_int_eq(t->rate.count, 600);
    ck_assert_int_eq(t->rate.per_ms, 1 * MS_M);
    ck_assert_int_eq(t->max_snoozes, 0);
    pgq_cfg_free(c);
}
END_TEST

/* [job T] max_payload: the sizes people write, 0, the default, and a cron
 * payload exactly at its type's limit (accepted). */
START_TEST(test_max_payload)
{
    pgq_cfg *c = load_ok("good_max_payload.ini");
    static const struct { const char *type; int64_t bytes; int line; } want[] = {
        { "bytes", 512, 4 }, { "kib", 64 * 1024, 8 }, { "mib", 16 << 20, 12 },
        { "lower", 2048, 16 }, { "none", 0, 20 }, { "absent", 1 << 20, 0 }, { "exact", 51, 27 },
    };

    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const pgq_cfg_type *t = pgq_cfg_find_type(c, want[i].type);
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(t->max_payload == want[i].bytes, "%s: %lld", want[i].type,
                      (long long)t->max_payload);
        ck_assert_int_eq(t->max_payload_line, want[i].line);
    }
    ck_assert_uint_eq(c->ncrons, 1);
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_empty_file)
{
    pgq_cfg *c = load_ok("good_empty.ini");

    assert_pool_defaults(c);
    ck_assert_uint_eq(c->ntypes, 0);
    ck_assert_ptr_null(pgq_cfg_find_type(c, "anything"));
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_full)
{
    pgq_cfg *c = load_ok("good_full.ini");
    const pgq_cfg_type *t;
    static const char *const email_argv[] = {
        "/usr/local/bin/send-email", "--from", "Ops \"Team\"", "single quoted", "back slash", "",
    };
    static const char *const resize_argv[] = { "/usr/lib/pgq/resize.so", "resize_v2" };
    static const char *const req[][2] = {
        { "to", "string" }, { "subject", "string" }, { "attempts", "number" }, { "meta", "object" },
        { "tags", "array" }, { "draft", "boolean" }, { "gone", "null" },
    };
    size_t i;

    ck_assert_str_eq(c->db_url, "postgres://pgq:secret@db.example.com:6543/jobs?sslmode=require");
    ck_assert_int_eq(c->workers, 32);
    ck_assert_uint_eq(c->nqueues, 3);
    ck_assert_str_eq(c->queues[0], "emails");
    ck_assert_str_eq(c->queues[1], "critical");
    ck_assert_str_eq(c->queues[2], "bulk");
    ck_assert_int_eq(c->lease_ttl_ms, 2 * MS_M);
    ck_assert_int_eq(c->heartbeat_ms, 20 * MS_S);
    ck_assert_int_eq(c->poll_ms, 250);
    ck_assert_int_eq(c->shutdown_timeout_ms, 0);
    ck_assert_int_eq(c->keep_done_ms, 0);
    ck_assert_int_eq(c->keep_dead_ms, 7 * MS_D + 12 * MS_H);
    ck_assert_uint_eq(c->ntypes, 2);

    t = pgq_cfg_find_type(c, "send-email");
    ck_assert_ptr_eq(t, &c->types[0]);
    ck_assert_int_eq(t->line, 15);
    ck_assert_str_eq(t->queue, "emails");
    ck_assert_int_eq(t->handler_kind, PGQ_HANDLER_EXEC);
    ck_assert_str_eq(t->handler,
                     "/usr/local/bin/send-email --from \"Ops \\\"Team\\\"\" 'single quoted' back\\ slash \"\"");
    assert_argv(t, email_argv, 6);
    ck_assert_int_eq(t->handler_line, 17);
    ck_assert_int_eq(t->timeout_ms, 1 * MS_H + 30 * MS_M);
    ck_assert_int_eq(t->max_retries, 0);
    ck_assert_int_eq(t->backoff_base_ms, 500);
    ck_assert_int_eq(t->backoff_max_ms, 500);
    ck_assert_int_eq(t->priority, -1000);
    ck_assert_uint_eq(t->nrequire, 7);
    for (i = 0; i < 7; i++) {
        ck_assert_str_eq(t->require[i].key, req[i][0]);
        ck_assert_str_eq(t->require[i].json_type, req[i][1]);
    }

    t = pgq_cfg_find_type(c, "resize");
    ck_assert_ptr_eq(t, &c->types[1]);
    ck_assert_int_eq(t->line, 25);
    ck_assert_str_eq(t->queue, "default");
    ck_assert_int_eq(t->handler_kind, PGQ_HANDLER_PLUGIN);
    ck_assert_str_eq(t->handler, "/usr/lib/pgq/resize.so resize_v2");
    assert_argv(t, resize_argv, 2);
    ck_assert_int_eq(t->handler_line, 26);
    ck_assert_int_eq(t->max_retries, 1000);
    ck_assert_int_eq(t->priority, 1000);
    ck_assert_ptr_null(t->require);     /* "require =" is an empty contract */
    ck_assert_uint_eq(t->nrequire, 0);
    ck_assert_int_eq(t->result_max, 2048);  /* "2 kb": any case, blanks between */

    ck_assert_ptr_null(pgq_cfg_find_type(c, "send"));
    ck_assert_ptr_null(pgq_cfg_find_type(c, NULL));
    ck_assert_ptr_null(pgq_cfg_find_type(NULL, "resize"));
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_cron_sections)
{
    pgq_cfg *c = load_ok("good_cron.ini");

    ck_assert_uint_eq(c->ncrons, 2);
    const pgq_cfg_cron *r = &c->crons[0], *h = &c->crons[1];
    ck_assert_str_eq(r->name, "nightly-report");
    ck_assert_int_eq(r->line, 4);
    ck_assert_str_eq(r->schedule, "30 2 * * mon-fri");
    ck_assert_int_eq(r->schedule_line, 5);
    ck_assert_str_eq(r->type, "report");
    ck_assert_str_eq(r->payload, "{\"format\": \"pdf\", \"pages\": 3, \"to\": [\"ops@example.com\"]}");
    ck_assert_str_eq(r->queue, "reports");
    ck_assert_int_eq(r->priority, -5);
    ck_assert_int_gt(r->priority_line, 0);
    ck_assert_str_eq(tz_name(r->zone), "Europe/Berlin");
    ck_assert_ptr_nonnull(r->cron);
    /* Monday 2025-03-31 02:30 CEST = 00:30 UTC; the parsed schedule has its zone */
    ck_assert_int_eq(pgq_cron_next(r->cron, 1743379200000LL /* 2025-03-31T00:00Z */),
                     1743381000000LL);
    ck_assert_str_eq(h->name, "heartbeat");
    ck_assert_str_eq(h->payload, "{}");
    ck_assert_ptr_null(h->queue);
    ck_assert_int_eq(h->priority_line, 0);
    ck_assert_str_eq(tz_name(h->zone), "UTC");
    ck_assert_int_eq(pgq_cron_next(h->cron, 1000), 30000);
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_crlf_bom)
{
    pgq_cfg *c = load_ok("good_crlf_bom.ini");
    static const char *const argv[] = { "crlf_fn" };

    ck_assert_int_eq(c->workers, 3);
    ck_assert_uint_eq(c->ntypes, 1);
    ck_assert_str_eq(c->types[0].name, "crlf");
    ck_assert_int_eq(c->types[0].line, 5);
    assert_argv(&c->types[0], argv, 1);
    ck_assert_int_eq(c->types[0].handler_line, 6);
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_line_199)
{
    pgq_cfg *c = load_ok("good_line_199.ini");

    /* "url = " plus 193 bytes of value is exactly 199 bytes: the longest allowed. */
    ck_assert_uint_eq(strlen(c->db_url), 193);
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_long_job_name)
{
    pgq_cfg *c = load_ok("good_long_job_name.ini");
    char name[101];

    /* inih keeps only 49 bytes of a section name; the loader must not. */
    memset(name, 'n', 100);
    name[100] = '\0';
    ck_assert_uint_eq(c->ntypes, 1);
    ck_assert_str_eq(c->types[0].name, name);
    ck_assert_ptr_eq(pgq_cfg_find_type(c, name), &c->types[0]);
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_queue_names_count_characters)
{
    pgq_cfg *c = load_ok("good_queue_names.ini");
    char name[121] = "";

    /* 60 characters in 120 bytes: within the rule, though over 100 bytes */
    for (int i = 0; i < 60; i++)
        strcat(name, "\xc3\xa9");
    ck_assert_uint_eq(c->nqueues, 2);
    ck_assert_str_eq(c->queues[1], name);
    ck_assert_str_eq(c->types[0].queue, name);
    pgq_cfg_free(c);
}
END_TEST

/* The one rule for queue names (pgq_queue_name_check), at each edge. */
START_TEST(test_queue_name_rule)
{
    char err[512], name[512];

    memset(name, 'q', 100);
    name[100] = '\0';
    ck_assert_int_eq(pgq_queue_name_check(name, err, sizeof err), 0);
    name[100] = 'q';
    name[101] = '\0';
    ck_assert_int_eq(pgq_queue_name_check(name, err, sizeof err), -1);
    ck_assert_str_eq(err, "queue name \"qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...\" is 101 characters; "
                          "at most 100");
    /* 100 four-byte characters pass, 101 do not */
    name[0] = '\0';
    for (int i = 0; i < 100; i++)
        strcat(name, "\xf0\x9f\x93\xa8");
    ck_assert_int_eq(pgq_queue_name_check(name, err, sizeof err), 0);
    strcat(name, "\xf0\x9f\x93\xa8");
    ck_assert_int_eq(pgq_queue_name_check(name, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "\" is 101 characters; at most 100"), "%s", err);

    ck_assert_int_eq(pgq_queue_name_check("", err, sizeof err), -1);
    ck_assert_str_eq(err, "queue name is empty");
    const char *ws[] = { "a b", "a\tb", "a\nb", "a\rb", "a\vb", "a\fb" };
    const char *shown[] = { "a b", "a\\tb", "a\\nb", "a\\rb", "a\\vb", "a\\fb" };
    for (int i = 0; i < 6; i++) {
        char want[128];
        snprintf(want, sizeof want, "queue name \"%s\" contains whitespace at byte offset 1",
                 shown[i]);
        ck_assert_int_eq(pgq_queue_name_check(ws[i], err, sizeof err), -1);
        ck_assert_str_eq(err, want);
    }
    ck_assert_int_eq(pgq_queue_name_check("caf\xc3", err, sizeof err), -1);
    ck_assert_str_eq(err, "queue name \"caf\\xc3\" is not valid UTF-8 at byte offset 3");
    ck_assert_int_eq(pgq_queue_name_check("a\xed\xa0\x80", err, sizeof err), -1);
    ck_assert_str_eq(err, "queue name \"a\\xed\\xa0\\x80\" is not valid UTF-8 at byte offset 1");
    /* the rule is whitespace only: other characters, even odd ones, pass */
    ck_assert_int_eq(pgq_queue_name_check("emails.eu-west/1:\xc3\xa9\x01", err, sizeof err), 0);
    ck_assert_int_eq(PGQ_QUEUE_NAME_MAX, 100);
}
END_TEST

START_TEST(test_example_pool_ini)
{
    char path[1024], err[1024];
    pgq_cfg *c = NULL;
    const pgq_cfg_type *t;

    snprintf(path, sizeof path, "%s/../config/pool.ini", test_dir());
    if (pgq_cfg_load(path, &c, err, sizeof err) != 0)
        ck_abort_msg("the example config does not load: %s", err);
    ck_assert_str_eq(c->db_url, "postgres://app@localhost:5432/app");
    ck_assert_uint_eq(c->nqueues, 2);
    ck_assert_str_eq(c->queues[1], "emails");
    ck_assert_uint_eq(c->ntypes, 4);
    t = pgq_cfg_find_type(c, "send-email");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->handler_kind, PGQ_HANDLER_EXEC);
    ck_assert_str_eq(t->queue, "emails");
    ck_assert_uint_eq(t->nrequire, 3);
    ck_assert_str_eq(t->require[2].key, "attempts");
    ck_assert_str_eq(t->require[2].json_type, "number");
    ck_assert_str_eq(t->argv[0], "../examples/handlers/send-email.sh");
    t = pgq_cfg_find_type(c, "resize-image");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->handler_kind, PGQ_HANDLER_EXEC);
    t = pgq_cfg_find_type(c, "audit-log");
    ck_assert_ptr_nonnull(t);
    ck_assert_str_eq(t->argv[0], "cat");
    t = pgq_cfg_find_type(c, "nightly-report");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq(t->argc, 5);
    ck_assert_str_eq(t->argv[2], "Nightly report");
    ck_assert_str_eq(t->argv[4], "/tmp/report dir");
    ck_assert_uint_eq(c->ncrons, 1);
    ck_assert_str_eq(c->crons[0].schedule, "30 2 * * mon-fri");
    ck_assert_str_eq(c->crons[0].payload, "{\"scope\": \"all\"}");
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_error_buffers)
{
    char path[1024], small[16], full[1024];
    pgq_cfg *c = NULL;

    ini_path(path, sizeof path, "bad_unknown_key.ini");
    ck_assert_int_eq(pgq_cfg_load(path, &c, full, sizeof full), -1);
    /* A short buffer gets a truncated, terminated prefix of the same message. */
    memset(small, 'X', sizeof small);
    ck_assert_int_eq(pgq_cfg_load(path, &c, small, sizeof small), -1);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(strncmp(small, full, sizeof small - 1), 0);
    /* No buffer at all is allowed. */
    ck_assert_int_eq(pgq_cfg_load(path, &c, NULL, 0), -1);
    ck_assert_ptr_null(c);
    /* A success clears err. */
    ini_path(path, sizeof path, "good_defaults.ini");
    ck_assert_int_eq(pgq_cfg_load(path, &c, full, sizeof full), 0);
    ck_assert_str_eq(full, "");
    pgq_cfg_free(c);
}
END_TEST

START_TEST(test_free_null)
{
    pgq_cfg_free(NULL);
    pgq_require_free(NULL, 0);
}
END_TEST

/* ---- payload contracts ---- */

START_TEST(test_require_good)
{
    pgq_cfg_require *r = NULL;
    size_t n = 99;
    char err[256];

    ck_assert_int_eq(pgq_require_parse("to:string, subject:string,attempts : number", &r, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(r[0].key, "to");
    ck_assert_str_eq(r[0].json_type, "string");
    ck_assert_str_eq(r[1].key, "subject");
    ck_assert_str_eq(r[2].key, "attempts");
    ck_assert_str_eq(r[2].json_type, "number");
    pgq_require_free(r, n);

    /* Keys are JSON strings: inner spaces are kept. */
    ck_assert_int_eq(pgq_require_parse("first name:string", &r, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(r[0].key, "first name");
    pgq_require_free(r, n);

    r = (pgq_cfg_require *)err;
    ck_assert_int_eq(pgq_require_parse("", &r, &n, err, sizeof err), 0);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(pgq_require_parse(" \t ", &r, &n, err, sizeof err), 0);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(n, 0);
}
END_TEST

static const struct require_bad {
    const char *in, *msg;
} require_bads[] = {
    { "to", "item 1 \"to\": expected KEY:TYPE (e.g. to:string)" },
    { "to:string, subject", "item 2 \"subject\": expected KEY:TYPE (e.g. to:string)" },
    { "to:str", "item 1 \"to:str\": unknown type \"str\" (use string, number, boolean, object, array or null)" },
    { "to:String", "item 1 \"to:String\": unknown type \"String\" (use string, number, boolean, object, array or null)" },
    { "to:", "item 1 \"to:\": missing type (use string, number, boolean, object, array or null)" },
    { " :string", "item 1 \":string\": empty key" },
    { "to:string,", "item 2: empty" },
    { ",to:string", "item 1: empty" },
    { "to:string, to:number", "item 2 \"to:number\": duplicate key \"to\"" },
};
#define NREQUIRE_BADS ((int)(sizeof require_bads / sizeof require_bads[0]))

START_TEST(test_require_bad)
{
    const struct require_bad *b = &require_bads[_i];
    pgq_cfg_require *r = (pgq_cfg_require *)&b;
    size_t n = 99;
    char err[256];

    ck_assert_int_eq(pgq_require_parse(b->in, &r, &n, err, sizeof err), -1);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(n, 0);
    ck_assert_str_eq(err, b->msg);
}
END_TEST

/* metrics_listen: absent is off; the forms the listener accepts load
 * (the loader and the listener share cfg_listen_parse). */
START_TEST(test_metrics_listen)
{
    pgq_cfg *c = load_ok("good_metrics_listen.ini");
    ck_assert_str_eq(c->metrics_listen, "[::1]:9464");
    pgq_cfg_free(c);
    c = load_ok("good_defaults.ini");
    ck_assert_ptr_null(c->metrics_listen);
    pgq_cfg_free(c);
    static const char *const good[] = { "127.0.0.1:9464", "0.0.0.0:0", "localhost:65535",
                                        "[::]:9464" };
    static const char *const bad[] = { "", ":9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:x",
                                       "127.0.0.1:123456", "::1:9464", "[::1:9464", "[]:1",
                                       "example.com:80", "[127.0.0.1]:80", "256.0.0.1:80" };
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        ck_assert_msg(cfg_listen_parse(good[i], &ss, &len, err, sizeof err) == 0, "%s: %s",
                      good[i], err);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(cfg_listen_parse(bad[i], &ss, &len, err, sizeof err) == -1 && *err,
                      "%s accepted", bad[i]);
}
END_TEST

/* ---- the generated reference ---- */

START_TEST(test_reference)
{
    static const char *const all_keys[] = {
        "url", "pooler", "listen_url", "handler_url", "workers", "batch", "queues", "lease_ttl", "heartbeat", "poll", "shutdown_timeout", "keep_done", "metrics_listen",
        "keep_dead", "queue", "handler", "timeout", "max_retries", "backoff_base", "backoff_max",
        "priority", "require", "concurrency", "rate", "max_snoozes", "result_max", "max_payload", "schedule",
        "type", "payload", "timezone",
    };
    /* [cron NAME] has a queue and a priority too */
    static const size_t nshared = 2;
    char *text = NULL, *line, *save = NULL;
    size_t len = 0, rows = 0, i;
    FILE *f = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(f);
    pgq_cfg_write_reference(f);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "| section | key | type | default | bounds | description |\n"
                                       "| --- | --- | --- | --- | --- | --- |\n"));
    ck_assert_ptr_nonnull(strstr(text, "| `[pool]` | `workers` | integer | `8` | 1..256 | "));
    ck_assert_ptr_nonnull(strstr(text, "| `[pool]` | `lease_ttl` | duration | `30s` | 1s..1d | "));
    ck_assert_ptr_nonnull(strstr(text, "| `[job NAME]` | `handler` | handler | (required) |  | "));
    ck_assert_ptr_nonnull(strstr(text, "| `[database]` | `url` | string | (none) |  | "));
    ck_assert_ptr_nonnull(strstr(text, "| `[job NAME]` | `result_max` | size | `64KiB` | 0..16MiB | "));
    ck_assert_ptr_nonnull(strstr(text, "| `[job NAME]` | `max_payload` | size | `1MiB` | 0..256MiB | "));
    for (i = 0; i < sizeof all_keys / sizeof all_keys[0]; i++) {
        char cell[64];
        snprintf(cell, sizeof cell, " | `%s` | ", all_keys[i]);
        if (strstr(text, cell) == NULL)
            ck_abort_msg("key %s missing from the reference", all_keys[i]);
    }
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t pipes = 0;
        const char *p;
        for (p = line; *p; p++)
            pipes += *p == '|' && (p == line || p[-1] != '\\');
        ck_assert_uint_eq(pipes, 7);
        rows++;
    }
    ck_assert_uint_eq(rows, 2 + sizeof all_keys / sizeof all_keys[0] + nshared);
    free(text);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");

    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_metrics_listen);
    tcase_add_test(tc, test_empty_file);
    tcase_add_test(tc, test_full);
    tcase_add_test(tc, test_crlf_bom);
    tcase_add_test(tc, test_cron_sections);
    tcase_add_test(tc, test_line_199);
    tcase_add_test(tc, test_long_job_name);
    tcase_add_test(tc, test_queue_names_count_characters);
    tcase_add_test(tc, test_queue_name_rule);
    tcase_add_test(tc, test_example_pool_ini);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_max_payload);
    tcase_add_test(tc, test_error_buffers);
    tcase_add_test(tc, test_free_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_loop_test(tc, test_bad_file, 0, NGOLDENS);
    suite_add_tcase(s, tc);

    tc = tcase_create("require");
    tcase_add_test(tc, test_require_good);
    tcase_add_loop_test(tc, test_require_bad, 0, NREQUIRE_BADS);
    suite_add_tcase(s, tc);

    tc = tcase_create("reference");
    tcase_add_test(tc, test_reference);
    suite_add_tcase(s, tc);
    return s;
}

/* ---- durations ---- */

static const struct dur_good {
    const char *in;
    int64_t ms;
} dur_goods[] = {
    { "0", 0 },
    { "000", 0 },
    { " 0 ", 0 },
    { "0s", 0 },
    { "0ms", 0 },
    { "1ms", 1 },
    { "500ms", 500 },
    { "30s", 30 * MS_S },
    { "5m", 5 * MS_M },
    { "1h", MS_H },
    { "1d", MS_D },
    { "90m", 90 * MS_M },
    { "1m30s", 90 * MS_S },
    { "1h30m", 90 * MS_M },
    { "1d2h3m4s5ms", MS_D + 2 * MS_H + 3 * MS_M + 4 * MS_S + 5 },
    { "1d5ms", MS_D + 5 },
    { "\t 30s \n", 30 * MS_S },
    { "007s", 7 * MS_S },
    { "9223372036854775807ms", INT64_MAX },
    { "106751991167d7h12m55s807ms", INT64_MAX },
};
#define NDUR_GOODS ((int)(sizeof dur_goods / sizeof dur_goods[0]))

START_TEST(test_duration_good)
{
    const struct dur_good *g = &dur_goods[_i];
    int64_t ms = -1;
    char err[256] = "";

    if (pgq_duration_parse(g->in, &ms, err, sizeof err) != 0)
        ck_abort_msg("\"%s\" did not parse: %s", g->in, err);
    ck_assert_int_eq(ms, g->ms);
}
END_TEST

static const struct dur_bad {
    const char *in, *msg;
} dur_bads[] = {
    { "", "\"\": empty duration" },
    { "  \t", "\"\": empty duration" },
    { "-5s", "\"-5s\": negative" },
    { "10x", "\"10x\": unknown unit \"x\" (use ms, s, m, h, d)" },
    { "5S", "\"5S\": unknown unit \"S\" (use ms, s, m, h, d)" },
    { "5us", "\"5us\": unknown unit \"us\" (use ms, s, m, h, d)" },
    { "1m30x", "\"1m30x\": unknown unit \"x\" (use ms, s, m, h, d)" },
    { "10", "\"10\": needs a unit (use ms, s, m, h, d)" },
    { " 10 ", "\"10\": needs a unit (use ms, s, m, h, d)" },
    { "1m30", "\"1m30\": needs a unit (use ms, s, m, h, d)" },
    { "1.5s", "\"1.5s\": fractions are not supported (use a smaller unit, e.g. 1500ms)" },
    { "1m 30s", "\"1m 30s\": no spaces allowed inside a duration" },
    { "5 s", "\"5 s\": no spaces allowed inside a duration" },
    { "s", "\"s\": expected a number at \"s\"" },
    { "+5s", "\"+5s\": expected a number at \"+5s\"" },
    { "5s!", "\"5s!\": expected a number at \"!\"" },
    { "5/s", "\"5/s\": unexpected \"/\" after a number" },
    { "30s1m", "\"30s1m\": units must go from largest to smallest, each at most once (e.g. 1h30m)" },
    { "1h1h", "\"1h1h\": units must go from largest to smallest, each at most once (e.g. 1h30m)" },
    { "9223372036854775808ms", "\"9223372036854775808ms\": too large" },
    { "106751991168d", "\"106751991168d\": too large" },
    { "106751991167d7h12m55s808ms", "\"106751991167d7h12m55s808ms\": too large" },
    { "99999999999999999999999s", "\"99999999999999999999999s\": too large" },
};
#define NDUR_BADS ((int)(sizeof dur_bads / sizeof dur_bads[0]))

START_TEST(test_duration_bad)
{
    const struct dur_bad *b = &dur_bads[_i];
    int64_t ms = 12345;
    char err[256] = "";

    ck_assert_int_eq(pgq_duration_parse(b->in, &ms, err, sizeof err), -1);
    ck_assert_int_eq(ms, 12345);    /* untouched on error */
    ck_assert_str_eq(err, b->msg);
}
END_TEST

static const struct dur_fmt {
    int64_t ms;
    const char *out;
} dur_fmts[] = {
    { 0, "0" },
    { 1, "1ms" },
    { 999, "999ms" },
    { 1000, "1s" },
    { 1500, "1500ms" },
    { 30 * MS_S, "30s" },
    { MS_M, "1m" },
    { 90 * MS_S, "1m30s" },
    { 90 * MS_S + 500, "1m30500ms" },
    { 5 * MS_M, "5m" },
    { MS_H, "1h" },
    { 90 * MS_M, "1h30m" },
    { MS_D, "1d" },
    { MS_D + 1, "1d1ms" },
    { 30 * MS_D, "30d" },
    { 3650 * MS_D, "3650d" },
    { -1500, "-1500ms" },
    { INT64_MAX, "106751991167d7h12m55807ms" },
    { INT64_MIN, "-106751991167d7h12m55808ms" },
};
#define NDUR_FMTS ((int)(sizeof dur_fmts / sizeof dur_fmts[0]))

START_TEST(test_duration_format)
{
    const struct dur_fmt *f = &dur_fmts[_i];
    char buf[32];

    ck_assert_ptr_eq(pgq_duration_format(f->ms, buf, sizeof buf), buf);
    ck_assert_str_eq(buf, f->out);
}
END_TEST

START_TEST(test_duration_format_small_buffer)
{
    char buf[4] = "abc";

    ck_assert_str_eq(pgq_duration_format(90 * MS_M, buf, sizeof buf), "1h3");
    memcpy(buf, "abc", 4);
    pgq_duration_format(MS_H, buf, 0);      /* writes nothing */
    ck_assert_str_eq(buf, "abc");
}
END_TEST

/* format() output must parse back to the same value, for edges and a spread
 * of values made by a fixed-seed generator (reproducible). */
START_TEST(test_duration_round_trip)
{
    static const int64_t edges[] = {
        0, 1, 999, 1000, 1001, 59999, 60000, 3599999, 3600000, 86399999, 86400000, INT64_MAX,
    };
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char buf[32], err[256];
    int64_t ms, back;
    size_t i;

    for (i = 0; i < sizeof edges / sizeof edges[0] + 10000; i++) {
        if (i < sizeof edges / sizeof edges[0]) {
            ms = edges[i];
        } else {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ms = (int64_t)(x >> (1 + x % 63));     /* all magnitudes */
        }
        pgq_duration_format(ms, buf, sizeof buf);
        if (pgq_duration_parse(buf, &back, err, sizeof err) != 0)
            ck_abort_msg("%lld formatted as \"%s\" does not parse: %s", (long long)ms, buf, err);
        ck_assert_int_eq(back, ms);
    }
}
END_TEST

/* Parsing then formatting gives the canonical spelling. */
START_TEST(test_duration_canonical)
{
    static const char *const pairs[][2] = {
        { "90m", "1h30m" }, { "60s", "1m" }, { "1000ms", "1s" }, { "24h", "1d" },
        { "0s", "0" }, { "1s500ms", "1500ms" }, { "48h", "2d" },
    };
    char buf[32], err[256];
    int64_t ms;
    size_t i;

    for (i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ck_assert_int_eq(pgq_duration_parse(pairs[i][0], &ms, err, sizeof err), 0);
        ck_assert_str_eq(pgq_duration_format(ms, buf, sizeof buf), pairs[i][1]);
    }
}
END_TEST

Suite *duration_suite(void)
{
    Suite *s = suite_create("duration");
    TCase *tc = tcase_create("parse");

    tcase_add_loop_test(tc, test_duration_good, 0, NDUR_GOODS);
    tcase_add_loop_test(tc, test_duration_bad, 0, NDUR_BADS);
    suite_add_tcase(s, tc);

    tc = tcase_create("format");
    tcase_add_loop_test(tc, test_duration_format, 0, NDUR_FMTS);
    tcase_add_test(tc, test_duration_format_small_buffer);
    tcase_add_test(tc, test_duration_round_trip);
    tcase_add_test(tc, test_duration_canonical);
    suite_add_tcase(s, tc);
    return s;
}
