/* The pgq admin CLI, end to end: the real binary (PGQ_BIN_DIR/pgq) is run
 * with fork+exec, its stdout and stderr captured apart, and both its output
 * and the database are checked. Covers usage and exit codes, add (ids,
 * duplicates, options, refusals that store nothing, SQL metacharacters),
 * stats, show, requeue, cancel, migrate, types apply/list, bad ini files,
 * where the database URL comes from (--db, -c, DATABASE_URL), migrate on a
 * fresh and on a too-new database, concurrent adds with one key, and
 * `pgq once` with every exit status (ran, failed, skipped, in doubt, lease
 * lost, error). Most usage errors are checked for exit 2 and one line
 * naming the fault rather than their exact wording. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "migrations.h"
#include "testutil.h"

/* ---- running the binary ------------------------------------------------ */

/* What one run of pgq produced. out and err are NUL-terminated and owned by
 * the list below (freed in teardown), so tests never free them. */
struct run {
    int code;        /* exit status; 128 + signal if killed */
    char *out, *err;
};

static char **owned;
static size_t nowned;

static char *keep(char *p)
{
    char **n = realloc(owned, (nowned + 1) * sizeof *n);
    ck_assert_ptr_nonnull(n);
    owned = n;
    owned[nowned++] = p;
    return p;
}

/* printf into memory freed at teardown. */
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, f);
    int n = vasprintf(&s, f, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    return keep(s);
}

/* A file for the next run's stdin (NULL: /dev/null). */
static const char *run_stdin;

/* Run pgq with argv (without argv[0]), as tu_run_cmd does (a clean
 * environment plus env). Bounded to 60 s. */
static struct run run_env(const char *const *env, const char *const *argv)
{
    const char *path = fmt("%s/pgq", tu_bin_dir());
    size_t argc = 0;

    ck_assert_msg(access(path, X_OK) == 0, "%s: %s", path, strerror(errno));
    while (argv[argc])
        argc++;
    const char **args = calloc(argc + 2, sizeof *args);
    ck_assert_ptr_nonnull(args);
    args[0] = "pgq";
    memcpy(args + 1, argv, argc * sizeof *args);
    tu_run r = tu_run_cmd(NULL, env, run_stdin, path, args, 60);
    free(args);
    return (struct run){ r.code, keep(r.out), keep(r.err) };
}

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define ENV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* pgq ARGS with no database in the environment. */
#define PGQ(...) run_env(NULL, ARGV(__VA_ARGS__))
/* pgq --db URL ARGS (the global option, before the command). */
#define PGQ_DB(...) run_env(NULL, ARGV("--db", tu_db_url(), __VA_ARGS__))

/* Assert exit code and exact outputs, with everything in the message. */
#define ASSERT_RUN(r, want_code, want_out, want_err)                                         \
    do {                                                                                     \
        struct run r_ = (r);                                                                 \
        ck_assert_msg(r_.code == (want_code) && strcmp(r_.out, (want_out)) == 0 &&           \
                          strcmp(r_.err, (want_err)) == 0,                                   \
                      "exit %d (want %d)\nstdout: [%s]\nwant:   [%s]\nstderr: [%s]\nwant:   [%s]", \
                      r_.code, (want_code), r_.out, (want_out), r_.err, (want_err));         \
    } while (0)

/* A one-line error: exactly one '\n', at the end, and it starts with prefix. */
static void assert_one_line(const char *s, const char *prefix)
{
    size_t n = strlen(s);
    ck_assert_msg(n > 1 && s[n - 1] == '\n' && strchr(s, '\n') == s + n - 1,
                  "not exactly one line: [%s]", s);
    ck_assert_msg(strncmp(s, prefix, strlen(prefix)) == 0, "[%s] does not start with [%s]", s,
                  prefix);
}

/* A usage error: exit 2, nothing on stdout, one stderr line starting with
 * prefix and containing needle. */
static void usage_err(struct run r, const char *prefix, const char *needle)
{
    ck_assert_msg(r.code == 2 && !*r.out, "exit %d (want 2): [%s] [%s]", r.code, r.out, r.err);
    assert_one_line(r.err, prefix);
    ck_assert_msg(strstr(r.err, needle), "[%s] does not mention [%s]", r.err, needle);
}

static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* ---- database helpers --------------------------------------------------- */

static long long njobs(void)
{
    return tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL);
}

static const char *id_text(long long id)
{
    return fmt("%lld", id);
}

/* An integer column of job id. */
static long long job_int(long long id, const char *expr)
{
    const char *p[] = { id_text(id) };
    return tu_int(fmt("SELECT (%s)::bigint FROM pgq.jobs WHERE id = $1", expr), 1, p);
}

static char *job_text(long long id, const char *expr)
{
    const char *p[] = { id_text(id) };
    char *t = tu_text(fmt("SELECT (%s)::text FROM pgq.jobs WHERE id = $1", expr), 1, p);
    return t ? keep(t) : NULL;
}

/* Insert a job directly: state and extra SQL column values. Returns its id. */
static long long seed(const char *queue, const char *state, const char *run_at, int attempts,
                      const char *finished_at)
{
    const char *p[] = { queue, state, run_at, fmt("%d", attempts), finished_at };
    bool running = strcmp(state, "running") == 0;
    return tu_int(fmt("INSERT INTO pgq.jobs (queue, type, payload, state, run_at, attempts,"
                      " finished_at, lease_token, lease_expires_at, lease_owner)"
                      " VALUES ($1, 't', '{}', $2, $3::timestamptz, $4::int, $5::timestamptz,"
                      " %s) RETURNING id",
                      running ? "gen_random_uuid(), now() + interval '1 hour', 'w'"
                              : "NULL, NULL, NULL"),
                  5, p);
}

/* Parse "ID\n" (exactly) from add's stdout. */
static long long parse_id(const char *out)
{
    char *end;
    long long id = strtoll(out, &end, 10);
    ck_assert_msg(id > 0 && strcmp(end, "\n") == 0, "not an id line: [%s]", out);
    return id;
}

/* A claimed job of type t (queue default), through the library. */
static pgq_job *claimed_job(pgq_conn *c)
{
    static const char *const q[] = { "default" };
    char err[512];
    pgq_add_result ar;
    pgq_job *j = NULL;
    ck_assert_msg(pgq_add(c, "t", "{}", NULL, &ar, err, sizeof err) == 0, "%s", err);
    ck_assert_msg(pgq_claim(c, q, 1, "cli-test", 60000, &j, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->id, ar.id);
    return j;
}

/* A temp dir for files the tests write, made and removed by the runner
 * process (an unchecked fixture), so that it goes away even when a check
 * fails and its test process exits at once. Names carry the test's pid. */
static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/pgq-cli-test.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("cli_test: mkdtemp");
        abort();
    }
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "cli_test: could not remove %s\n", tmpdir);
}

static const char *tmp_path(const char *name)
{
    return fmt("%s/%d-%s", tmpdir, (int)getpid(), name);
}

static const char *ini(const char *name)
{
    return fmt("%s/ini/%s", tu_test_dir(), name);
}

static void setup(void)
{
    tu_reset();
    tu_type("t", "default", "", 5, 0);
    tu_type("email", "default", "to:string", 5, 1000);
}

static void teardown(void)
{
    tu_check_invariants();
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(owned);
    owned = NULL;
    nowned = 0;
}

/* ---- 1. usage ----------------------------------------------------------- */

START_TEST(help_and_usage)
{
    /* no database needed for any of these */
    struct run r = PGQ("--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.err, "");
    ck_assert_msg(strncmp(r.out, "usage: pgq ", 11) == 0, "[%s]", r.out);
    static const char *const cmds[] = { "migrate", "types", "add", "once", "show",
                                        "stats", "requeue", "cancel" };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        ck_assert_msg(strstr(r.out, fmt("\n  %s ", cmds[i])), "%s missing from [%s]", cmds[i],
                      r.out);
        /* every subcommand has its own --help, exit 0, on stdout */
        struct run h = PGQ(cmds[i], "--help");
        ck_assert_msg(h.code == 0 && *h.out && !*h.err, "%s --help: exit %d [%s] [%s]", cmds[i],
                      h.code, h.out, h.err);
        ck_assert_msg(strstr(h.out, fmt("pgq %s", cmds[i])), "%s --help: [%s]", cmds[i], h.out);
    }

    r = PGQ("add", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strncmp(r.out, "usage: pgq add TYPE JSON ", 25) == 0, "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "--idempotency-key K") && strstr(r.out, "--run-at TS"), "[%s]",
                  r.out);

    r = PGQ("once", "--help");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strncmp(r.out, "usage: pgq once KEY -- CMD", 26) == 0, "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "  4  in doubt") && strstr(r.out, "  5  lease lost"), "[%s]",
                  r.out);

    r = PGQ("-h");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strncmp(r.out, "usage: pgq ", 11) == 0, "[%s]", r.out);

    /* no command: usage on stderr, exit 2 */
    r = PGQ(NULL);
    ck_assert_int_eq(r.code, 2);
    ck_assert_str_eq(r.out, "");
    ck_assert_msg(strncmp(r.err, "usage: pgq ", 11) == 0, "[%s]", r.err);
    r = PGQ("--db", tu_db_url());
    ck_assert_int_eq(r.code, 2);
    ck_assert_msg(strncmp(r.err, "usage: pgq ", 11) == 0, "[%s]", r.err);

    ASSERT_RUN(PGQ("frobnicate"), 2, "", "pgq: unknown command \"frobnicate\" (see pgq --help)\n");
    ASSERT_RUN(PGQ_DB("frobnicate", "x"), 2, "",
               "pgq: unknown command \"frobnicate\" (see pgq --help)\n");
    /* other usage errors: exit 2, one line naming the command and the fault */
    usage_err(PGQ("stats", "extra"), "pgq stats: ", "\"extra\"");
    usage_err(PGQ("add", "t"), "pgq add: ", "JSON");
    usage_err(PGQ("add", "t", "{}", "--queue", "bulk emails"), "pgq add: --queue: ",
              "queue name \"bulk emails\" contains whitespace at byte offset 4");
    usage_err(PGQ("add", "t", "{}", "--bogus"), "pgq add: ", "--bogus");
    usage_err(PGQ("show", "abc"), "pgq show: ", "\"abc\"");
    usage_err(PGQ("show", "--db"), "pgq show: ", "--db");
    usage_err(PGQ("types"), "pgq types: ", "apply, list or header");
    usage_err(PGQ("types", "remove"), "pgq types: ", "\"remove\"");
    usage_err(PGQ("requeue"), "pgq requeue: ", "--dead");
    usage_err(PGQ("cancel"), "pgq cancel: ", "ids");
    usage_err(PGQ("migrate", "--bogus"), "pgq migrate: ", "--bogus");
    usage_err(PGQ("migrate", "--to", "0"), "pgq migrate: ", "--to");
    usage_err(PGQ("migrate", "--to"), "pgq migrate: ", "--to");
    usage_err(PGQ("migrate", "--status", "--to=1"), "pgq migrate: ", "--status or --to");

    r = PGQ("--version");
    ck_assert_int_eq(r.code, 0);
    ck_assert_str_eq(r.out, fmt("pgq %s (schema %d)\n", PGQ_VERSION, pgq_schema_version()));
}
END_TEST

/* ---- 2. add and duplicates ------------------------------------------------ */

START_TEST(add_prints_id_and_duplicate)
{
    struct run r = PGQ_DB("add", "email", "{\"to\": \"a@example.com\"}");
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    long long id = parse_id(r.out);
    ck_assert_int_eq(njobs(), 1);
    ck_assert_str_eq(job_text(id, "type"), "email");
    ck_assert_str_eq(job_text(id, "state"), "ready");
    ck_assert_str_eq(job_text(id, "payload->>'to'"), "a@example.com");
    ck_assert_int_eq(job_int(id, "(idempotency_key IS NULL)::int"), 1);

    /* --db after the command, and the key as --opt=value */
    r = run_env(NULL, ARGV("add", "email", "{\"to\": \"b\"}", "--idempotency-key=K1", "--db",
                           tu_db_url()));
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    long long kid = parse_id(r.out);
    ck_assert_int_ne(kid, id);

    r = PGQ_DB("add", "email", "{\"to\": \"c\"}", "--idempotency-key", "K1");
    ASSERT_RUN(r, 0, fmt("%lld duplicate\n", kid), "");

    static const char *const k[] = { "K1" };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE idempotency_key = $1", 1, k), 1);
    ck_assert_int_eq(njobs(), 2);
    /* the first payload stays */
    ck_assert_str_eq(job_text(kid, "payload->>'to'"), "b");

    /* a different key is a new job */
    r = PGQ_DB("add", "email", "{\"to\": \"c\"}", "--idempotency-key", "K2");
    ck_assert_int_eq(r.code, 0);
    ck_assert_int_gt(parse_id(r.out), kid);
    ck_assert_int_eq(njobs(), 3);
}
END_TEST

/* Many `pgq add` processes at once with one key: one job, one id for all,
 * exactly one of them not flagged duplicate. */
START_TEST(concurrent_adds_with_one_key)
{
    enum { N = 16 };
    const char *dir = tmp_path("race");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    setenv("PGQ", fmt("%s/pgq", tu_bin_dir()), 1);
    setenv("URL", tu_db_url(), 1);
    setenv("DIR", dir, 1);
    int rc = system(fmt("i=0; while [ $i -lt %d ]; do i=$((i+1));"
                        " \"$PGQ\" --db \"$URL\" add email '{\"to\": \"x\"}'"
                        " --idempotency-key race >\"$DIR/out.$i\" 2>&1 & done; wait", N));
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(njobs(), 1);
    long long id = tu_int("SELECT id FROM pgq.jobs WHERE idempotency_key = 'race'", 0, NULL);
    int fresh = 0;
    for (int i = 1; i <= N; i++) {
        char text[256] = "";
        FILE *f = fopen(fmt("%s/out.%d", dir, i), "r");
        ck_assert_ptr_nonnull(f);
        size_t n = fread(text, 1, sizeof text - 1, f);
        fclose(f);
        text[n] = '\0';
        if (strcmp(text, fmt("%lld\n", id)) == 0)
            fresh++;
        else
            ck_assert_str_eq(text, fmt("%lld duplicate\n", id));
    }
    ck_assert_int_eq(fresh, 1);
}
END_TEST

/* ---- 3. refusals store nothing ---------------------------------------------- */

/* pgq --db URL add ARGS...: exit `code`, nothing on stdout, one stderr line
 * that is exactly `want` (or starts with it when prefix_only), no job. */
static void refused(int code, const char *want, bool prefix_only, const char *const *argv)
{
    size_t n = 0;
    while (argv[n])
        n++;
    const char **a = calloc(n + 4, sizeof *a);
    ck_assert_ptr_nonnull(a);
    a[0] = "--db";
    a[1] = tu_db_url();
    a[2] = "add";
    memcpy(a + 3, argv, n * sizeof *a);
    long long before = njobs();
    struct run r = run_env(NULL, a);
    free(a);
    ck_assert_msg(r.code == code, "exit %d, want %d: [%s]", r.code, code, r.err);
    ck_assert_str_eq(r.out, "");
    assert_one_line(r.err, want);
    if (!prefix_only)
        ck_assert_str_eq(r.err, want);
    ck_assert_int_eq(njobs(), before);
}

START_TEST(bad_input_is_refused_and_nothing_stored)
{
    refused(1, "pgq add: payload is not valid JSON", true, ARGV("email", "{\"to\": "));
    refused(1, "pgq add: payload is not valid JSON", true, ARGV("email", "{'to': 'x'}"));
    refused(1, "pgq add: payload for job type \"email\" is missing required key \"to\" (string)\n",
            false, ARGV("email", "{\"To\": \"x\"}"));
    refused(1, "pgq add: payload for job type \"email\": key \"to\" must be string, not number\n",
            false, ARGV("email", "{\"to\": 42}"));
    refused(1, "pgq add: payload for job type \"email\": key \"to\" must be string, not null\n",
            false, ARGV("email", "{\"to\": null}"));
    refused(1, "pgq add: payload for job type \"email\" must be a JSON object, not array\n",
            false, ARGV("email", "[1, 2]"));
    refused(1, "pgq add: unknown job type \"nope\" (register it with pgq types apply)\n", false,
            ARGV("nope", "{}"));
    /* an idempotency key does not let a bad payload through */
    refused(1, "pgq add: payload for job type \"email\" is missing required key \"to\" (string)\n",
            false, ARGV("email", "{}", "--idempotency-key", "k"));

    refused(2, "pgq add: --priority: \"abc\" is not a whole number\n", false,
            ARGV("t", "{}", "--priority", "abc"));
    refused(2, "pgq add: --priority: \"1x\" is not a whole number\n", false,
            ARGV("t", "{}", "--priority=1x"));
    refused(2, "pgq add: --delay: ", true, ARGV("t", "{}", "--delay", "5x"));
    refused(2, "pgq add: --delay: \"5x\": unknown unit \"x\" (use ms, s, m, h, d)\n", false,
            ARGV("t", "{}", "--delay", "5x"));
    refused(2, "pgq add: --max-retries: -1 is out of range (0 to 1000000)\n", false,
            ARGV("t", "{}", "--max-retries", "-1"));
    refused(2, "pgq add: give --delay or --run-at, not both\n", false,
            ARGV("t", "{}", "--delay", "1h", "--run-at", "2030-01-01 00:00:00+00"));
    refused(2, "pgq add: give --delay or --run-at, not both\n", false,
            ARGV("t", "{}", "--run-at", "2030-01-01 00:00:00+00", "--delay", "1h"));
    refused(2, "pgq add: --priority", true, ARGV("t", "{}", "--priority"));
    refused(2, "pgq add: --idempotency-key", true, ARGV("t", "{}", "--idempotency-key", ""));
    refused(2, "pgq add: ", true, ARGV("t", "{}", "extra"));
    /* a timestamp PostgreSQL cannot read */
    refused(1, "pgq add: ", true, ARGV("t", "{}", "--run-at", "not a time"));
    ck_assert_int_eq(njobs(), 0);
}
END_TEST

/* ---- 4. options land in the row -------------------------------------------- */

START_TEST(add_options_are_stored)
{
    tu_type("mailer", "mail", "", 7, 1000);

    /* defaults come from the type */
    struct run r = PGQ_DB("add", "mailer", "{}");
    ck_assert_int_eq(r.code, 0);
    long long id = parse_id(r.out);
    ck_assert_str_eq(job_text(id, "queue"), "mail");
    ck_assert_int_eq(job_int(id, "priority"), 0);
    ck_assert_int_eq(job_int(id, "max_retries"), 7);
    ck_assert_int_eq(job_int(id, "(run_at <= now())::int"), 1);

    r = PGQ_DB("add", "mailer", "{}", "--queue", "special", "--priority", "-5", "--delay", "1h",
               "--max-retries", "0");
    ck_assert_msg(r.code == 0, "%s", r.err);
    id = parse_id(r.out);
    ck_assert_str_eq(job_text(id, "queue"), "special");
    ck_assert_int_eq(job_int(id, "priority"), -5);
    ck_assert_int_eq(job_int(id, "max_retries"), 0);
    ck_assert_int_eq(job_int(id, "(run_at > now() + interval '50 minutes')::int"), 1);
    ck_assert_int_eq(job_int(id, "(run_at < now() + interval '70 minutes')::int"), 1);
    ck_assert_str_eq(job_text(id, "state"), "ready");

    r = PGQ_DB("add", "mailer", "{}", "--run-at", "2030-01-01 00:00:00+00", "--priority=12",
               "--queue=other");
    ck_assert_msg(r.code == 0, "%s", r.err);
    id = parse_id(r.out);
    ck_assert_int_eq(job_int(id, "(run_at = '2030-01-01 00:00:00+00'::timestamptz)::int"), 1);
    ck_assert_int_eq(job_int(id, "priority"), 12);
    ck_assert_str_eq(job_text(id, "queue"), "other");

    r = PGQ_DB("add", "mailer", "{}", "--delay=90s");
    ck_assert_msg(r.code == 0, "%s", r.err);
    id = parse_id(r.out);
    ck_assert_int_eq(job_int(id, "(run_at > now() + interval '60 seconds' AND "
                                 "run_at < now() + interval '120 seconds')::int"), 1);
    ck_assert_int_eq(njobs(), 4);
}
END_TEST

/* ---- 5. SQL metacharacters ------------------------------------------------ */

START_TEST(metacharacters_are_stored_verbatim)
{
    static const char type[] = "it's\"; DROP TABLE pgq.jobs; --";
    static const char queue[] = "q'\"\\;--";
    static const char key[] = "k'); DELETE FROM pgq.jobs; --";
    static const char text[] = "it's \"quoted\" \\ back\\slash \\n $1 %s ünïcødé 😀 "
                               "'); DROP TABLE pgq.jobs; --";
    static const char payload[] = "{\"s\": \"it's \\\"quoted\\\" \\\\ back\\\\slash \\\\n $1 %s "
                                  "ünïcødé 😀 '); DROP TABLE pgq.jobs; --\", \"t\": \"x\"}";
    tu_type(type, "default", "s:string", 5, 1000);

    /* an earlier job that a successful injection would delete */
    long long other = parse_id(PGQ_DB("add", "t", "{}").out);

    struct run r = PGQ_DB("add", type, payload, "--queue", queue, "--idempotency-key", key);
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    long long id = parse_id(r.out);

    ck_assert_int_eq(tu_int("SELECT count(*) FROM pg_tables WHERE schemaname = 'pgq'"
                            " AND tablename = 'jobs'", 0, NULL), 1);
    ck_assert_int_eq(njobs(), 2);
    const char *p[] = { id_text(id), type, queue, key, payload, text };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND type = $2"
                            " AND queue = $3 AND idempotency_key = $4 AND payload = $5::jsonb"
                            " AND payload->>'s' = $6", 6, p), 1);
    ck_assert_int_eq(job_int(other, "1"), 1);

    /* the duplicate check finds the same odd key */
    ASSERT_RUN(PGQ_DB("add", type, payload, "--idempotency-key", key), 0,
               fmt("%lld duplicate\n", id), "");

    /* and reads come back verbatim */
    r = PGQ_DB("show", id_text(id));
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(has_line(r.out, fmt("type: %s", type)), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, fmt("queue: %s", queue)), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, fmt("idempotency_key: %s", key)), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "ünïcødé 😀"), "[%s]", r.out);
    r = PGQ_DB("stats");
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, fmt("\n%-20s ", queue)), "[%s]", r.out);

    /* an operator filter with the odd queue touches that queue only */
    tu_exec("UPDATE pgq.jobs SET state = 'dead', finished_at = now(), attempts = max_retries + 1",
            0, NULL);
    ASSERT_RUN(PGQ_DB("requeue", "--dead", "--queue", queue), 0, "requeued 1\n", "");
    ck_assert_str_eq(job_text(id, "state"), "ready");
    ck_assert_str_eq(job_text(other, "state"), "dead");
    ASSERT_RUN(PGQ_DB("requeue", "--dead", "--type", type), 0, "requeued 0\n", "");
}
END_TEST

/* ---- 6. stats -------------------------------------------------------------- */

/* A line of pgq stats: the counts a..h, then paused, pools, done_5m and
 * failed_5m. */
static const char *stats_row(const char *q, int a, int b, int c, int d, int e, int f, int g,
                             int h, const char *paused, int pools, int d5, int f5)
{
    return fmt("%-20s %9d %9d %9d %9d %9d %9d %9d %9d %6s %9d %5d %8d %9d\n", q, a, b, c, d, e, f,
               g, h, paused, 0, pools, d5, f5);
}

static const char *stats_line(const char *q, int a, int b, int c, int d, int e, int f, int g,
                              int h)
{
    return stats_row(q, a, b, c, d, e, f, g, h, "no", 0, 0, 0);
}

static const char *unserved(const char *q, int n)
{
    return fmt("pgq stats: queue \"%s\": %d due job%s and no live pool claims from it (nobody "
               "serves it)\n", q, n, n == 1 ? "" : "s");
}

START_TEST(stats_counts_per_queue)
{
    const char *header = fmt("%-20s %9s %9s %9s %9s %9s %9s %9s %9s %6s %9s %5s %8s %9s\n",
                             "queue", "ready", "scheduled", "retrying", "running", "dead",
                             "cancelled", "done", "done_1h", "paused", "waiting", "pools",
                             "done_5m", "failed_5m");
    ASSERT_RUN(PGQ_DB("stats"), 0, header, "");

    /* alpha: 2 ready, 1 scheduled, 3 retrying, 1 running */
    seed("alpha", "ready", "2000-01-01", 0, NULL);
    seed("alpha", "ready", "2000-01-01", 2, NULL);   /* a retry now due counts as ready */
    seed("alpha", "ready", "2999-01-01", 0, NULL);
    for (int i = 0; i < 3; i++)
        seed("alpha", "ready", "2999-01-01", 1, NULL);
    seed("alpha", "running", "2000-01-01", 1, NULL);
    /* beta: 1 dead, 2 cancelled, 3 done (1 in the last hour) */
    seed("beta", "dead", "2000-01-01", 6, "now");
    seed("beta", "cancelled", "2000-01-01", 0, "now");
    seed("beta", "cancelled", "2000-01-01", 0, "now");
    seed("beta", "done", "2000-01-01", 1, "now");
    seed("beta", "done", "2000-01-01", 1, "2000-01-02");
    tu_exec("UPDATE pgq.jobs SET finished_at = now() - interval '61 minutes'"
            " WHERE finished_at = '2000-01-02'", 0, NULL);
    seed("beta", "done", "2000-01-01", 1, "2000-01-03");

    /* beta's one done job of the last five minutes */
    const char *want = fmt("%s%s%s", header, stats_line("alpha", 2, 1, 3, 1, 0, 0, 0, 0),
                           stats_row("beta", 0, 0, 0, 0, 1, 2, 3, 1, "no", 0, 1, 0));
    /* alpha's due jobs wait for a pool that does not exist: said on stderr */
    ASSERT_RUN(PGQ_DB("stats"), 0, want, unserved("alpha", 2));

    /* a job added through the CLI shows up at once */
    ck_assert_int_eq(PGQ_DB("add", "t", "{}", "--queue", "beta").code, 0);
    want = fmt("%s%s%s", header, stats_line("alpha", 2, 1, 3, 1, 0, 0, 0, 0),
               stats_row("beta", 1, 0, 0, 0, 1, 2, 3, 1, "no", 0, 1, 0));
    ASSERT_RUN(PGQ_DB("stats"), 0, want, fmt("%s%s", unserved("alpha", 2), unserved("beta", 1)));

    /* a live pool claiming from alpha serves it; a silent one does not */
    tu_exec("INSERT INTO pgq.workers (name, host, pid, workers, queues)"
            " VALUES ('h:1:1', 'h', 1, 2, '{x,alpha}'), ('h:2:1', 'h', 2, 2, '{alpha}'),"
            " ('h:3:1', 'h', 3, 2, '{beta}')", 0, NULL);
    tu_exec("UPDATE pgq.workers SET last_heartbeat = now() - interval '5 minutes'"
            " WHERE name = 'h:3:1'", 0, NULL);
    want = fmt("%s%s%s", header, stats_row("alpha", 2, 1, 3, 1, 0, 0, 0, 0, "no", 2, 0, 0),
               stats_row("beta", 1, 0, 0, 0, 1, 2, 3, 1, "no", 0, 1, 0));
    ASSERT_RUN(PGQ_DB("stats"), 0, want, unserved("beta", 1));
    tu_exec("DELETE FROM pgq.workers", 0, NULL);

    /* a paused queue is marked (and not reported: nobody is meant to
     * claim), one without jobs listed */
    ASSERT_RUN(PGQ_DB("pause", "beta", "gamma"), 0, "beta\ngamma\n", "");
    want = fmt("%s%s%s%s", header, stats_line("alpha", 2, 1, 3, 1, 0, 0, 0, 0),
               stats_row("beta", 1, 0, 0, 0, 1, 2, 3, 1, "yes", 0, 1, 0),
               stats_row("gamma", 0, 0, 0, 0, 0, 0, 0, 0, "yes", 0, 0, 0));
    ASSERT_RUN(PGQ_DB("stats"), 0, want, unserved("alpha", 2));
}
END_TEST

/* Above the cap (PGQ_STATS_CAP per index range) a count is marked, never
 * silently cut: "~N" the planner's estimate, "N+" at least N. */
START_TEST(stats_marks_counts_above_the_cap)
{
    tu_exec("INSERT INTO pgq.jobs (queue, type, state, attempts, started_at, finished_at)"
            " SELECT 'huge', 't', 'done', 1, now() - interval '3 hours', now() - interval '2 hours'"
            " FROM generate_series(1, 5050)", 0, NULL);
    for (int i = 0; i < 3; i++)
        seed("huge", "dead", "2000-01-01", 6, "now");
    tu_exec("ANALYZE pgq.jobs", 0, NULL);
    struct run r = PGQ_DB("stats");
    ck_assert_msg(r.code == 0, "%s", r.err);
    const char *line = strstr(r.out, "\nhuge ");
    ck_assert_msg(line, "[%s]", r.out);
    /* done: an estimate (~) or a lower bound (+), at least the cap; dead exact */
    long long ready, sched, retr, run, dead;
    char done[32];
    ck_assert_int_eq(sscanf(line, " huge %lld %lld %lld %lld %lld %*s %31s", &ready, &sched, &retr,
                            &run, &dead, done), 6);
    ck_assert_int_eq(dead, 3);
    bool est = done[0] == '~', atleast = done[strlen(done) - 1] == '+';
    ck_assert_msg(est != atleast, "done is [%s]", done);
    ck_assert_int_ge(atoll(done + est), PGQ_STATS_CAP);
    r = PGQ_DB("stats", "--json");
    char *j = tu_text("SELECT (($1::jsonb)->'queues'->0->'approx')::text", 1,
                      (const char *[]){ r.out });
    ck_assert_msg(strcmp(j, "{\"done\": \"estimate\"}") == 0 || strcmp(j, "{\"done\": \"at_least\"}") == 0,
                  "[%s]", j);
    free(j);
}
END_TEST

/* ---- 7. show --------------------------------------------------------------- */

START_TEST(show_prints_job_and_history)
{
    struct run r = PGQ_DB("add", "email", "{\"to\": \"x@y\", \"n\": [1, {\"a\": true}]}",
                          "--idempotency-key", "show-key");
    long long id = parse_id(r.out);

    r = PGQ_DB("show", id_text(id));
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strncmp(r.out, fmt("id: %lld\n", id), strlen(fmt("id: %lld\n", id))) == 0,
                  "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "state: ready"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "type: email"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "queue: default"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "idempotency_key: show-key"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "attempts: 0 (max_retries 5)"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "last_error: -"), "[%s]", r.out);
    const char *pretty = job_text(id, "jsonb_pretty(payload)");
    ck_assert_ptr_nonnull(strchr(pretty, '\n'));   /* really pretty-printed */
    ck_assert_msg(strstr(r.out, fmt("\npayload:\n%s\nhistory: 0\neffects: 0\n", pretty)),
                  "[%s]\nwant payload [%s]", r.out, pretty);

    /* one failed attempt, then show again */
    char err[512];
    static const char *const q[] = { "default" };
    pgq_conn *c = tu_connect();
    pgq_job *j = NULL;
    pgq_fail_result fr;
    ck_assert_msg(pgq_claim(c, q, 1, "worker-7", 60000, &j, err, sizeof err) == 0, "%s", err);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(j->id, id);
    ck_assert_msg(pgq_fail(c, j->id, j->lease_token, "smtp: 550 no such user", NULL, &fr, err,
                           sizeof err) == 0, "%s", err);
    pgq_job_free(j);
    pgq_disconnect(c);

    r = PGQ_DB("show", id_text(id));
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(has_line(r.out, "state: ready"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "attempts: 1 (max_retries 5)"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "last_error: smtp: 550 no such user"), "[%s]", r.out);
    ck_assert_msg(has_line(r.out, "history: 1"), "[%s]", r.out);
    const char *h = strstr(r.out, "\nhistory: 1\n  attempt 1 failed at ");
    ck_assert_msg(h, "[%s]", r.out);
    /* that attempt's line: who, and the error at its end */
    const char *line = fmt("%.*s", (int)strcspn(h + 12, "\n"), h + 12);
    ck_assert_msg(strncmp(line, "  attempt 1 failed at ", 22) == 0 &&
                  strstr(line, " by worker-7, ") &&
                  strlen(line) > 24 &&
                  strcmp(line + strlen(line) - 24, ": smtp: 550 no such user") == 0,
                  "[%s]", line);

    ASSERT_RUN(PGQ_DB("show", "999999"), 1, "", "pgq show: job 999999: no such job\n");
    usage_err(PGQ_DB("show"), "pgq show: ", "id");
    usage_err(PGQ_DB("show", "0"), "pgq show: ", "\"0\"");
}
END_TEST

/* ---- 8. requeue and cancel ----------------------------------------------- */

static long long add_job(const char *queue)
{
    struct run r = PGQ_DB("add", "t", "{}", "--queue", queue);
    ck_assert_msg(r.code == 0, "%s", r.err);
    return parse_id(r.out);
}

static void make_dead(long long id)
{
    const char *p[] = { id_text(id) };
    tu_exec("UPDATE pgq.jobs SET state = 'dead', finished_at = now(), attempts = 6,"
            " last_error = 'boom' WHERE id = $1", 1, p);
}

START_TEST(requeue_dead_jobs)
{
    long long dead = add_job("default"), ready = add_job("default");
    make_dead(dead);

    ASSERT_RUN(PGQ_DB("requeue", id_text(dead)), 0, fmt("%lld\n", dead), "");
    ck_assert_str_eq(job_text(dead, "state"), "ready");
    ck_assert_int_eq(job_int(dead, "attempts"), 0);
    ck_assert_int_eq(job_int(dead, "(finished_at IS NULL AND run_at <= now())::int"), 1);
    const char *p[] = { fmt("{%lld}", dead) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action = 'requeue'"
                            " AND job_count = 1 AND job_ids = $1::bigint[]", 1, p), 1);

    /* not dead: refused, named, nothing changes, no action recorded */
    ASSERT_RUN(PGQ_DB("requeue", id_text(ready)), 1, "",
               fmt("pgq requeue: job %lld: not requeued (no such job, or not dead or "
                   "cancelled)\n", ready));
    /* the dead one is ready now, so requeueing it again is refused too */
    ASSERT_RUN(PGQ_DB("requeue", id_text(dead)), 1, "",
               fmt("pgq requeue: job %lld: not requeued (no such job, or not dead or "
                   "cancelled)\n", dead));
    ASSERT_RUN(PGQ_DB("requeue", "424242"), 1, "",
               "pgq requeue: job 424242: not requeued (no such job, or not dead or cancelled)\n");
    ck_assert_str_eq(job_text(ready, "state"), "ready");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions", 0, NULL), 1);

    /* mixed: the dead one moves and is printed, the other is reported */
    make_dead(dead);
    ASSERT_RUN(PGQ_DB("requeue", id_text(ready), id_text(dead)), 1, fmt("%lld\n", dead),
               fmt("pgq requeue: job %lld: not requeued (no such job, or not dead or "
                   "cancelled)\n", ready));
    ck_assert_str_eq(job_text(dead, "state"), "ready");

    /* --dead --queue: that queue only */
    long long a1 = add_job("qa"), a2 = add_job("qa"), b1 = add_job("qb"), a3 = add_job("qa");
    make_dead(a1);
    make_dead(a2);
    make_dead(b1);   /* a3 stays ready */
    ASSERT_RUN(PGQ_DB("requeue", "--dead", "--queue", "qa"), 0, "requeued 2\n", "");
    ck_assert_str_eq(job_text(a1, "state"), "ready");
    ck_assert_str_eq(job_text(a2, "state"), "ready");
    ck_assert_int_eq(job_int(a1, "attempts") + job_int(a2, "attempts"), 0);
    ck_assert_str_eq(job_text(b1, "state"), "dead");
    ck_assert_int_eq(job_int(b1, "attempts"), 6);
    ck_assert_str_eq(job_text(a3, "state"), "ready");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action = 'requeue'"
                            " AND job_count = 2", 0, NULL), 1);
    ASSERT_RUN(PGQ_DB("requeue", "--dead", "--queue", "qa"), 0, "requeued 0\n", "");
    ASSERT_RUN(PGQ_DB("requeue", "--dead"), 0, "requeued 1\n", "");
    ck_assert_str_eq(job_text(b1, "state"), "ready");
    usage_err(PGQ_DB("requeue", "--queue", "qa"), "pgq requeue: ", "--");
    usage_err(PGQ_DB("requeue", "--dead", id_text(a1)), "pgq requeue: ", "--dead");
}
END_TEST

START_TEST(cancel_ready_and_running_jobs)
{
    long long ready = add_job("default"), sched;
    struct run r = PGQ_DB("add", "t", "{}", "--delay", "1h");
    sched = parse_id(r.out);

    ASSERT_RUN(PGQ_DB("cancel", id_text(ready), id_text(sched)), 0,
               fmt("%lld\n%lld\n", ready, sched), "");
    ck_assert_str_eq(job_text(ready, "state"), "cancelled");
    ck_assert_str_eq(job_text(sched, "state"), "cancelled");
    ck_assert_int_eq(job_int(ready, "(finished_at IS NOT NULL)::int"), 1);
    const char *p[] = { fmt("{%lld,%lld}", ready, sched) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action = 'cancel'"
                            " AND job_count = 2 AND job_ids = $1::bigint[]", 1, p), 1);

    /* a running job is cancelled too: its lease revoked, an attempt row
     * saying who, the pool told; its holder's completion changes nothing */
    pgq_conn *c = tu_connect();
    pgq_job *j = claimed_job(c);
    ASSERT_RUN(PGQ_DB("cancel", id_text(j->id)), 0, fmt("%" PRId64 "\n", j->id), "");
    ck_assert_str_eq(job_text(j->id, "state"), "cancelled");
    ck_assert_int_eq(job_int(j->id, "(lease_token IS NULL AND lease_expires_at IS NULL)::int"), 1);
    ck_assert_str_eq(job_text(j->id, "last_error"), "cancelled by pgq cli");
    const char *pj[] = { id_text(j->id) };
    char *hist = tu_text("SELECT string_agg(outcome || ':' || worker || ':' || error, ',')"
                         " FROM pgq.job_attempts WHERE job_id = $1", 1, pj);
    ck_assert_str_eq(hist, "cancelled:cli-test:cancelled by pgq cli");
    free(hist);
    char err[512];
    bool lost = false;
    ck_assert_msg(pgq_complete(c, j->id, j->lease_token, NULL, &lost, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(lost);
    ck_assert_str_eq(job_text(j->id, "state"), "cancelled");

    /* not a done one */
    pgq_job *d = claimed_job(c);
    ck_assert_msg(pgq_complete(c, d->id, d->lease_token, NULL, &lost, err, sizeof err) == 0,
                  "%s", err);
    ck_assert(!lost);
    ASSERT_RUN(PGQ_DB("cancel", id_text(d->id)), 1, "",
               fmt("pgq cancel: job %" PRId64 ": not cancelled (no such job, or not ready or "
                   "running)\n", d->id));
    ck_assert_str_eq(job_text(d->id, "state"), "done");
    pgq_job_free(d);
    /* nor a cancelled one again */
    ASSERT_RUN(PGQ_DB("cancel", id_text(ready)), 1, "",
               fmt("pgq cancel: job %lld: not cancelled (no such job, or not ready or running)\n",
                   ready));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions", 0, NULL), 2);
    pgq_job_free(j);
    pgq_disconnect(c);

    /* requeue undoes a cancel: by id, and all cancelled at once */
    ASSERT_RUN(PGQ_DB("requeue", id_text(ready)), 0, fmt("%lld\n", ready), "");
    ck_assert_str_eq(job_text(ready, "state"), "ready");
    ASSERT_RUN(PGQ_DB("requeue", "--dead"), 0, "requeued 0\n", "");
    ck_assert_str_eq(job_text(sched, "state"), "cancelled");
    ASSERT_RUN(PGQ_DB("requeue", "--cancelled"), 0, "requeued 2\n", "");
    ck_assert_str_eq(job_text(sched, "state"), "ready");
}
END_TEST

/* ---- 9. migrate ------------------------------------------------------------ */

START_TEST(migrate_on_migrated_db)
{
    ASSERT_RUN(PGQ_DB("migrate"), 0,
               fmt("applied 0 migrations; schema at version %d\n", pgq_schema_version()), "");
    ck_assert_int_ge(pgq_schema_version(), 1);

    struct run r = PGQ_DB("migrate", "--status");
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strncmp(r.out, "1 001_schema.sql applied ", 25) == 0, "[%s]", r.out);
    ck_assert_int_eq(tu_count_lines(r.out), tu_nmigrations() + 1);
    ck_assert_ptr_null(strstr(r.out, "pending"));
    ck_assert_msg(strstr(r.out, "\n- state_machine.sql applied 2"), "[%s]", r.out);
    /* the applied time is a timestamp, not empty */
    ck_assert_msg(strlen(r.out) > 25 + 10 && r.out[25] >= '1' && r.out[25] <= '9', "[%s]",
                  r.out);
}
END_TEST

START_TEST(migrate_fresh_and_newer_database)
{
    const char *name = fmt("pgq_cli_%d", (int)getpid());
    const char *pn[] = { name };
    if (tu_int("SELECT count(*) FROM pg_database WHERE datname = $1", 1, pn))
        tu_exec(fmt("DROP DATABASE %s WITH (FORCE)", name), 0, NULL);   /* a leftover */
    tu_exec(fmt("CREATE DATABASE %s", name), 0, NULL);
    const char *db = keep(tu_db_url_for(name));
    int v = pgq_schema_version();

    /* not migrated: everything but migrate says so */
    struct run r = run_env(NULL, ARGV("--db", db, "stats"));
    ASSERT_RUN(r, 1, "", fmt("pgq stats: database schema is at version 0, this pgq needs %d: "
                             "run `pgq migrate`\n", v));
    /* one line per migration, all pending, the first one first */
    r = run_env(NULL, ARGV("--db", db, "migrate", "--status"));
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    ck_assert_msg(strncmp(r.out, "1 001_schema.sql pending\n", 25) == 0, "[%s]", r.out);
    ck_assert_int_eq(tu_count_lines(r.out), tu_nmigrations() + 1);
    for (const char *l = r.out; *l; l = strchr(l, '\n') + 1)
        ck_assert_msg(strncmp(strchr(l, '\n') - 8, " pending", 8) == 0, "[%s]", r.out);

    /* --to stops at a version, as an older pgq would have; never goes back */
    ASSERT_RUN(run_env(NULL, ARGV("--db", db, "migrate", "--to", "1")), 0,
               "applied 1 migration; schema at version 1\n", "");
    ASSERT_RUN(run_env(NULL, ARGV("--db", db, "migrate", "--to=1")), 0,
               "applied 0 migrations; schema at version 1\n", "");
    ASSERT_RUN(run_env(NULL, ARGV("--db", db, "migrate")), 0,
               fmt("applied %d migration%s and the state machine; schema at version %d\n",
                   tu_nmigrations() - 1, tu_nmigrations() - 1 == 1 ? "" : "s", v), "");
    if (v > 1)
        ASSERT_RUN(run_env(NULL, ARGV("--db", db, "migrate", "--to", "1")), 1, "",
                   fmt("pgq migrate: database schema is at version %d, past 1: "
                       "migrations only go forward\n", v));
    ASSERT_RUN(run_env(NULL, ARGV("migrate", "--db", db)), 0,
               fmt("applied 0 migrations; schema at version %d\n", v), "");
    r = run_env(NULL, ARGV("--db", db, "stats"));
    ck_assert_msg(r.code == 0 && strncmp(r.out, "queue ", 6) == 0, "%d [%s]", r.code, r.err);

    /* a schema newer than this binary is refused, by migrate too */
    pgq_conn *c = NULL;
    char err[512];
    ck_assert_msg(pgq_connect(db, &c, err, sizeof err) == 0, "%s", err);
    PGresult *res = PQexec(pgq_conn_pg(c), "INSERT INTO pgq.migrations (version, name)"
                                           " VALUES (999, '999_future.sql')");
    ck_assert_msg(PQresultStatus(res) == PGRES_COMMAND_OK, "%s", PQresultErrorMessage(res));
    PQclear(res);
    pgq_disconnect(c);
    const char *newer = fmt("database schema is at version 999, newer than this pgq %s knows "
                            "(%d): upgrade pgq; refusing to touch it\n", PGQ_VERSION, v);
    ASSERT_RUN(run_env(NULL, ARGV("--db", db, "stats")), 1, "", fmt("pgq stats: %s", newer));
    ASSERT_RUN(run_env(NULL, ARGV("--db", db, "add", "t", "{}")), 1, "",
               fmt("pgq add: %s", newer));
    r = run_env(NULL, ARGV("--db", db, "migrate"));
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "");
    assert_one_line(r.err, "pgq migrate: ");
    ck_assert_msg(strstr(r.err, "upgrade pgq"), "[%s]", r.err);
    r = run_env(NULL, ARGV("--db", db, "migrate", "--status"));
    ck_assert_int_eq(r.code, 1);
    ck_assert_msg(strncmp(r.out, "1 001_schema.sql applied ", 25) == 0 &&
                  strstr(r.out, "\n999 "), "[%s]", r.out);
    ck_assert_str_eq(r.err, fmt("pgq migrate: %s", newer));

    tu_exec(fmt("DROP DATABASE %s WITH (FORCE)", name), 0, NULL);
}
END_TEST

/* ---- 10. types and ini files ------------------------------------------------ */

START_TEST(types_apply_and_list)
{
    const char *file = ini("cli-types.ini");
    struct run r = PGQ_DB("types", "apply", "-c", file);
    ASSERT_RUN(r, 0, "cli-mail\ncli-resize\n", "");

    static const char *const names[] = { "cli-mail", "cli-resize" };
    for (int i = 0; i < 2; i++) {
        const char *p[] = { names[i] };
        ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_types WHERE type = $1"
                                " AND required = '{\"to\": \"string\", \"n\": \"number\"}'",
                                1, p), 1);
    }
    const char *p[] = { "cli-mail" };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_types WHERE type = $1 AND"
                            " queue = 'cli-emails' AND max_retries = 3 AND priority = 5 AND"
                            " timeout_ms = 90000 AND backoff_base_ms = 2000 AND"
                            " backoff_max_ms = 600000", 1, p), 1);

    r = PGQ_DB("types", "list");
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    const char *req = "require={\"n\": \"number\", \"to\": \"string\"}";
    ck_assert_msg(has_line(r.out, fmt("cli-mail queue=cli-emails max_retries=3 priority=5 "
                                      "timeout=1m30s backoff_base=2s backoff_max=10m "
                                      "max_snoozes=100 max_payload=1MiB %s", req)),
                  "[%s]", r.out);
    ck_assert_msg(has_line(r.out, fmt("cli-resize queue=default max_retries=5 priority=0 "
                                      "timeout=1m backoff_base=1s backoff_max=1h "
                                      "max_snoozes=100 max_payload=1MiB %s", req)),
                  "[%s]", r.out);
    /* plus the two types of setup(): one line each, sorted by name */
    ck_assert_int_eq(tu_count_lines(r.out), 4);
    ck_assert_msg(strncmp(r.out, "cli-mail ", 9) == 0, "[%s]", r.out);

    /* producers are now checked against that contract */
    ASSERT_RUN(PGQ_DB("add", "cli-mail", "{\"to\": \"x\"}"), 1, "",
               "pgq add: payload for job type \"cli-mail\" is missing required key \"n\" "
               "(number)\n");
    r = PGQ_DB("add", "cli-mail", "{\"to\": \"x\", \"n\": 2}");
    ck_assert_msg(r.code == 0, "%s", r.err);
    long long id = parse_id(r.out);
    ck_assert_str_eq(job_text(id, "queue"), "cli-emails");
    ck_assert_int_eq(job_int(id, "priority"), 5);
    ck_assert_int_eq(job_int(id, "max_retries"), 3);

    /* applying again updates in place */
    ASSERT_RUN(PGQ_DB("types", "apply", "-c", file), 0, "cli-mail\ncli-resize\n", "");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_types", 0, NULL), 4);

    usage_err(PGQ_DB("types", "apply"), "pgq types apply: ", "-c");
}
END_TEST

START_TEST(bad_ini_is_refused_with_file_and_line)
{
    const char *bad = ini("bad_unknown_key.ini");
    const char *want = fmt("pgq stats: %s:3: [pool] workrs: unknown key; did you mean "
                           "\"workers\"?\n", bad);
    ASSERT_RUN(PGQ_DB("-c", bad, "stats"), 1, "", want);
    ASSERT_RUN(run_env(NULL, ARGV("-c", bad, "--db", tu_db_url(), "stats")), 1, "", want);

    bad = ini("bad_require_item.ini");
    ASSERT_RUN(PGQ_DB("types", "apply", "-c", bad), 1, "",
               fmt("pgq types apply: %s:3: [job x] require: item 2: empty\n", bad));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.job_types", 0, NULL), 2);

    /* a file that is not there */
    const char *missing = tmp_path("missing.ini");
    struct run r = PGQ_DB("-c", missing, "stats");
    ck_assert_int_eq(r.code, 1);
    assert_one_line(r.err, fmt("pgq stats: %s", missing));
}
END_TEST

/* ---- where the database comes from ----------------------------------------- */

START_TEST(database_url_precedence)
{
    static const char bogus[] = "postgresql://nobody@127.0.0.1:1/nowhere?connect_timeout=5";

    /* DATABASE_URL alone */
    struct run r = run_env(ENV(fmt("DATABASE_URL=%s", tu_db_url())), ARGV("stats"));
    ck_assert_msg(r.code == 0 && strncmp(r.out, "queue ", 6) == 0, "%d %s", r.code, r.err);

    /* --db beats DATABASE_URL */
    r = run_env(ENV(fmt("DATABASE_URL=%s", bogus)), ARGV("--db", tu_db_url(), "stats"));
    ck_assert_msg(r.code == 0, "%d %s", r.code, r.err);

    /* [database] url beats DATABASE_URL; --db beats [database] url */
    const char *good_ini = tmp_path("good.ini"), *bad_ini = tmp_path("bogus.ini");
    tu_write_file(good_ini, fmt("[database]\nurl = %s\n", tu_db_url()));
    tu_write_file(bad_ini, fmt("[database]\nurl = %s\n", bogus));
    r = run_env(ENV(fmt("DATABASE_URL=%s", bogus)), ARGV("-c", good_ini, "stats"));
    ck_assert_msg(r.code == 0, "%d %s", r.code, r.err);
    r = run_env(ENV(fmt("DATABASE_URL=%s", bogus)), ARGV("stats", "--config", good_ini));
    ck_assert_msg(r.code == 0, "%d %s", r.code, r.err);
    r = run_env(NULL, ARGV("stats", "-c", bad_ini, "--db", tu_db_url()));
    ck_assert_msg(r.code == 0, "%d %s", r.code, r.err);

    /* the bogus one really fails, with one line */
    r = run_env(NULL, ARGV("-c", bad_ini, "stats"));
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "");
    assert_one_line(r.err, "pgq stats: ");
    r = run_env(ENV(fmt("DATABASE_URL=%s", bogus)), ARGV("add", "t", "{}"));
    ck_assert_int_eq(r.code, 1);
    assert_one_line(r.err, "pgq add: ");
    ck_assert_int_eq(njobs(), 0);
}
END_TEST

/* ---- 12. no database ------------------------------------------------------- */

START_TEST(no_database_configured)
{
    static const char want[] = "no database: give --db URL, [database] url in -c FILE, or set "
                               "DATABASE_URL\n";
    ASSERT_RUN(PGQ("stats"), 1, "", fmt("pgq stats: %s", want));
    ASSERT_RUN(run_env(ENV("DATABASE_URL="), ARGV("stats")), 1, "", fmt("pgq stats: %s", want));
    ASSERT_RUN(PGQ("add", "t", "{}"), 1, "", fmt("pgq add: %s", want));
    ASSERT_RUN(PGQ("show", "1"), 1, "", fmt("pgq show: %s", want));
    ASSERT_RUN(PGQ("migrate"), 1, "", fmt("pgq migrate: %s", want));
    /* a config without [database] does not help */
    ASSERT_RUN(PGQ("-c", ini("cli-types.ini"), "types", "list"), 1, "",
               fmt("pgq types list: %s", want));
    ck_assert_int_eq(njobs(), 0);
}
END_TEST

/* ---- 11. pgq once ---------------------------------------------------------- */

START_TEST(once_exit_codes)
{
    pgq_conn *c = tu_connect();
    pgq_job *j = claimed_job(c);
    const char *file = tmp_path("effects.txt");
    const char *append = fmt("echo x >> '%s'", file);
    const char *db = fmt("DATABASE_URL=%s", tu_db_url());
    const char *jid = fmt("PGQ_JOB_ID=%" PRId64, j->id);
    const char *tok = fmt("PGQ_LEASE_TOKEN=%s", j->lease_token);
    const char *p_id[] = { id_text(j->id) };

    /* outside a handler: 2, nothing run */
    ASSERT_RUN(run_env(ENV(db), ARGV("once", "k", "--", "sh", "-c", append)), 2, "",
               "pgq once: PGQ_JOB_ID is not set (run me from a pgq exec handler)\n");
    ASSERT_RUN(run_env(ENV(db, jid), ARGV("once", "k", "--", "sh", "-c", append)), 2, "",
               "pgq once: PGQ_LEASE_TOKEN is not set (run me from a pgq exec handler)\n");
    ASSERT_RUN(run_env(ENV(db, tok, "PGQ_JOB_ID=abc"), ARGV("once", "k", "--", "sh", "-c", append)),
               2, "", "pgq once: \"abc\" is not a job id (a positive whole number)\n");
    ASSERT_RUN(run_env(ENV(jid, tok), ARGV("once", "k", "--", "sh", "-c", append)), 2, "",
               "pgq once: no database: give --db URL, [database] url in -c FILE, or set "
               "DATABASE_URL\n");
    usage_err(run_env(ENV(db, jid, tok), ARGV("once", "k")), "pgq once: ", "command");
    usage_err(run_env(ENV(db, jid, tok), ARGV("once", "--", "true")), "pgq once: ", "KEY");
    ck_assert_int_eq(tu_file_lines(file), 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects", 0, NULL), 0);

    /* runs once: 0 "ran", then 0 "skipped" (done either way) */
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k", "--", "sh", "-c", append)), 0, "",
               "pgq once: k: ran\n");
    ck_assert_int_eq(tu_file_lines(file), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE job_id = $1 AND key = 'k'"
                            " AND state = 'done' AND finished_at IS NOT NULL", 1, p_id), 1);
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k", "--", "sh", "-c", append)), 0, "",
               fmt("pgq once: k: skipped, already done for job %" PRId64 "\n", j->id));
    ck_assert_int_eq(tu_file_lines(file), 1);

    /* the command's output and arguments pass through untouched */
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "echo", "--", "echo", "a b", "--db", "-c")),
               0, "a b --db -c\n", "pgq once: echo: ran\n");

    /* failure: 1, record removed, so a retry may run it */
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k2", "--", "false")), 1, "",
               "pgq once: k2: false exited with status 1; record removed\n");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE job_id = $1 AND key = 'k2'",
                            1, p_id), 0);
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k2", "--", "sh", "-c", "exit 7")), 1, "",
               "pgq once: k2: sh exited with status 7; record removed\n");
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k2", "--", "sh", "-c", append)), 0, "",
               "pgq once: k2: ran\n");
    ck_assert_int_eq(tu_file_lines(file), 2);
    /* killed by a signal counts as failed too */
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k8", "--", "sh", "-c", "kill -9 $$")),
               1, "", "pgq once: k8: sh killed by signal 9; record removed\n");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE key = 'k8'", 0, NULL), 0);

    /* a stale token: 5, not run */
    ASSERT_RUN(run_env(ENV(db, jid, "PGQ_LEASE_TOKEN=00000000-0000-0000-0000-000000000000"),
                       ARGV("once", "k4", "--", "sh", "-c", append)), 5, "",
               fmt("pgq once: run_once k4: job %" PRId64 " is no longer held by this lease\n",
                   j->id));
    /* an unknown job: 5 */
    ASSERT_RUN(run_env(ENV(db, tok, "PGQ_JOB_ID=987654"),
                       ARGV("once", "k4", "--", "sh", "-c", append)), 5, "",
               "pgq once: run_once k4: job 987654 is no longer held by this lease\n");
    ck_assert_int_eq(tu_file_lines(file), 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE key = 'k4'", 0, NULL), 0);

    /* in doubt: an earlier attempt (another lease) started k3 and never finished */
    tu_exec("INSERT INTO pgq.effects (job_id, key, state, attempt, lease_token, worker)"
            " VALUES ($1, 'k3', 'started', 1, gen_random_uuid(), 'dead-worker')", 1, p_id);
    ASSERT_RUN(run_env(ENV(db, jid, tok), ARGV("once", "k3", "--", "sh", "-c", append)), 4, "",
               fmt("pgq once: k3: in doubt for job %" PRId64 ": an earlier attempt died while it "
                   "ran; not running it again\n", j->id));
    ck_assert_int_eq(tu_file_lines(file), 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE job_id = $1 AND key = 'k3'"
                            " AND state = 'started' AND worker = 'dead-worker'", 1, p_id), 1);
    /* operators see it */
    struct run r = PGQ_DB("show", id_text(j->id));
    ck_assert_int_eq(r.code, 0);
    ck_assert_msg(strstr(r.out, "\n  k3 IN DOUBT (attempt 1, started "), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\n  k done (attempt 1, started "), "[%s]", r.out);

    /* --db given to once itself, and a command that cannot be run: 1 */
    r = run_env(ENV(jid, tok), ARGV("once", "--db", tu_db_url(), "k5", "--", "/nonexistent/cmd"));
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.out, "");
    ck_assert_msg(strstr(r.err, "/nonexistent/cmd") &&
                  strstr(r.err, "pgq once: k5: /nonexistent/cmd exited with status 127; "
                                "record removed\n"), "[%s]", r.err);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE key = 'k5'", 0, NULL), 0);

    /* an expired lease is lost even with the right token: 5 */
    tu_exec("UPDATE pgq.jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
            1, p_id);
    r = run_env(ENV(db, jid, tok), ARGV("once", "k6", "--", "sh", "-c", append));
    ck_assert_int_eq(r.code, 5);
    ck_assert_int_eq(tu_file_lines(file), 2);
    /* without the lease even a done key answers 5, and nothing runs */
    r = run_env(ENV(db, jid, tok), ARGV("once", "k", "--", "sh", "-c", append));
    ck_assert_int_eq(r.code, 5);
    ck_assert_int_eq(tu_file_lines(file), 2);

    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* pgq once's connection dies while CMD runs (CMD itself terminates that
 * backend): it reconnects and records the effect done, so the next try is
 * skipped rather than in doubt. */
START_TEST(once_survives_connection_loss)
{
    pgq_conn *c = tu_connect();
    pgq_job *j = claimed_job(c);
    const char *kill_sql = fmt("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE datname = current_database() AND backend_type = "
                               "'client backend' AND pid NOT IN (pg_backend_pid(), %d, %d)",
                               PQbackendPID(tu_pg()), PQbackendPID(pgq_conn_pg(c)));
    const char *const env[] = { fmt("DATABASE_URL=%s", tu_db_url()),
                                fmt("PGQ_JOB_ID=%" PRId64, j->id),
                                fmt("PGQ_LEASE_TOKEN=%s", j->lease_token), NULL };
    ASSERT_RUN(run_env(env, ARGV("once", "k", "--", "psql", tu_db_url(), "-qAtc", kill_sql)), 0,
               "1\n", "pgq once: k: ran\n");
    const char *p[] = { id_text(j->id) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.effects WHERE job_id = $1 AND key = 'k'"
                            " AND state = 'done'", 1, p), 1);
    ASSERT_RUN(run_env(env, ARGV("once", "k", "--", "false")), 0, "",
               fmt("pgq once: k: skipped, already done for job %" PRId64 "\n", j->id));
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

/* A URL libpq cannot use, and a role without grants, are told what is
 * wrong (and the password never shows). */
START_TEST(bad_urls_and_missing_grants_are_explained)
{
    ASSERT_RUN(run_env(NULL, ARGV("--db", "not a url", "stats")), 1, "",
               "pgq stats: database URL \"not a url\" is not understood: give "
               "postgresql://USER@HOST:PORT/DBNAME (postgresql:///DBNAME for the local socket) "
               "or key=value pairs\n");
    ASSERT_RUN(run_env(NULL, ARGV("--db", "postgresql://u:se%zzcret@localhost/db", "stats")), 1,
               "", "pgq: warning: the --db URL holds a password, which other local users can "
               "read in ps; use --db-file FILE, PGPASSWORD or a passfile instead (README, "
               "\"Credentials\")\n"
               "pgq stats: database URL \"postgresql://u:***@localhost/db\" is not valid: "
               "invalid percent-encoded token\n");
    if (tu_int("SELECT rolsuper::int FROM pg_roles WHERE rolname = current_user", 0, NULL) != 1)
        return;
    tu_exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgq_nogrant') THEN"
            " CREATE ROLE pgq_nogrant LOGIN; END IF; END$$", 0, NULL);
    char *url = tu_text("SELECT $1::text || CASE WHEN $1 LIKE '%?%' THEN '&' ELSE '?' END"
                        " || 'user=pgq_nogrant'", 1, (const char *[]){ tu_db_url() });
    ASSERT_RUN(run_env(NULL, ARGV("--db", url, "stats")), 1, "",
               "pgq stats: schema version: permission denied for schema pgq (the role lacks a "
               "grant on pgq's objects: see README, \"Roles and grants\")\n");
    free(url);
}
END_TEST

/* What PostgreSQL makes of json: jsonb's canonical text (asserts it parses:
 * a strict parser). */
static char *as_jsonb(const char *json)
{
    return tu_text("SELECT $1::jsonb::text", 1, (const char *[]){ json });
}

/* --json: one document on stdout, the shapes of the help texts; the text
 * forms keep their columns and lines with long names and multi-line errors. */
START_TEST(json_output_and_unbroken_text)
{
    const char *longq = "a-queue-name-longer-than-the-twenty-columns-of-old";
    struct run r = PGQ_DB("add", "t", "{\"a\": \"x\\\"y\"}", "--queue", longq);
    ck_assert_int_eq(r.code, 0);
    long long id = atoll(r.out);
    tu_exec("UPDATE pgq.jobs SET last_error = E'line one\\nline two' WHERE id = $1", 1,
            (const char *[]){ id_text(id) });

    r = PGQ_DB("stats", "--json");
    ck_assert_msg(r.code == 0 && strchr(r.out, '\n') == r.out + strlen(r.out) - 1, "[%s]", r.out);
    char *j = as_jsonb(r.out);
    free(j);
    /* the oldest job's wait varies: everything else is fixed */
    j = tu_text("SELECT (($1::jsonb) #- '{queues,0,oldest_ready_s}')::text", 1,
                (const char *[]){ r.out });
    ck_assert_str_eq(j, tu_fmt("{\"queues\": [{\"dead\": 0, \"done\": 0, \"pools\": 0, "
                               "\"queue\": \"%s\", \"ready\": 1, \"approx\": {}, "
                               "\"paused\": false, \"done_1h\": 0, \"done_5m\": 0, "
                               "\"running\": 0, \"waiting\": 0, \"retrying\": 0, \"unserved\": true, "
                               "\"cancelled\": 0, \"failed_5m\": 0, \"scheduled\": 0, "
                               "\"done_5m_window_s\": 300.000, \"failed_5m_window_s\": 300.000}]}",
                               longq));
    free(j);
    r = PGQ_DB("stats");
    ck_assert_str_eq(r.out, tu_fmt("%-50s %9s %9s %9s %9s %9s %9s %9s %9s %6s %9s %5s %8s %9s\n"
                                   "%-50s %9d %9d %9d %9d %9d %9d %9d %9d %6s %9d %5d %8d %9d\n",
                                   "queue", "ready", "scheduled", "retrying", "running", "dead",
                                   "cancelled", "done", "done_1h", "paused", "waiting", "pools",
                                   "done_5m", "failed_5m", longq, 1, 0, 0, 0, 0, 0, 0, 0, "no", 0,
                                   0, 0, 0));

    r = PGQ_DB("show", id_text(id), "--json");
    ck_assert_msg(r.code == 0 && strchr(r.out, '\n') == r.out + strlen(r.out) - 1, "[%s]", r.out);
    j = tu_text("SELECT jsonb_build_array(d->'id', d->'state', d->'payload', d->'last_error',"
                " d->'history', d->'effects', d->'lease_owner')::text FROM (SELECT $1::jsonb d) x",
                1, (const char *[]){ r.out });
    ck_assert_str_eq(j, tu_fmt("[%lld, \"ready\", {\"a\": \"x\\\"y\"}, \"line one\\nline two\", "
                               "[], [], null]", id));
    free(j);
    r = PGQ_DB("show", id_text(id));
    ck_assert_msg(strstr(r.out, "\nlast_error: line one\n    line two\ncreated_at: "), "[%s]",
                  r.out);

    r = PGQ_DB("types", "list", "--json");
    j = tu_text("SELECT jsonb_path_query_array($1::jsonb, '$.types[*].type')::text", 1,
                (const char *[]){ r.out });
    ck_assert_str_eq(j, "[\"email\", \"t\"]");
    free(j);

    ASSERT_RUN(PGQ_DB("cancel", id_text(id), "999999", "--json"), 1,
               tu_fmt("{\"moved\":[%lld],\"not_moved\":[999999]}\n", id),
               "pgq cancel: job 999999: not cancelled (no such job, or not ready or running)\n");
    ASSERT_RUN(PGQ_DB("requeue", "--cancelled", "--json"), 0, "{\"requeued\":1}\n", "");
    ASSERT_RUN(PGQ_DB("requeue", id_text(id), "--json"), 1, tu_fmt("{\"moved\":[],\"not_moved\":"
               "[%lld]}\n", id), tu_fmt("pgq requeue: job %lld: not requeued (no such job, or "
               "not dead or cancelled)\n", id));
    ASSERT_RUN(PGQ("version", "--json"), 0,
               tu_fmt("{\"version\":\"%s\",\"schema\":%d}\n", PGQ_VERSION, pgq_schema_version()),
               "");
    ASSERT_RUN(PGQ_DB("add", "t", "{}", "--json"), 2, "", "pgq add: --json: not an option of pgq "
               "add (stats, show, types list, requeue, cancel and version take it)\n");
    ASSERT_RUN(PGQ("--json", "stats"), 2, "", "pgq: --json goes after the command (pgq stats "
               "--json)\n");
}
END_TEST

/* pgq add -: JSON lines on stdin, ids back in order; a bad line is named. */
/* --payload-file: a payload bigger than one argument may be (128 KiB),
 * from a file and from stdin; a NUL byte and a missing file are named. */
START_TEST(add_reads_payload_from_file)
{
    const char *in = tmp_path("big.json");
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"blob\": \"", f);
    for (int i = 0; i < 300000; i++)
        fputc('a' + i % 26, f);
    fputs("\"}\n", f);
    ck_assert_int_eq(fclose(f), 0);
    struct run r = PGQ_DB("add", "t", "--payload-file", in);
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    long long id = parse_id(r.out);
    ck_assert_int_eq(job_int(id, "length(payload->>'blob')"), 300000);

    run_stdin = in;
    r = PGQ_DB("add", "t", "--payload-file", "-");
    run_stdin = NULL;
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    ck_assert_int_eq(job_int(parse_id(r.out), "length(payload->>'blob')"), 300000);

    const char *nul = tmp_path("nul.json");
    f = fopen(nul, "w");
    ck_assert_ptr_nonnull(f);
    fwrite("{\"a\": 1}\0{\"b\": 2}", 1, 17, f);
    ck_assert_int_eq(fclose(f), 0);
    ASSERT_RUN(PGQ_DB("add", "t", "--payload-file", nul), 1, "",
               fmt("pgq add: --payload-file %s: a NUL byte at offset 8 (a payload is JSON "
                   "text)\n", nul));
    ASSERT_RUN(PGQ_DB("add", "t", "--payload-file", tmp_path("none.json")), 1, "",
               fmt("pgq add: --payload-file %s: No such file or directory\n",
                   tmp_path("none.json")));
    ASSERT_RUN(PGQ_DB("add", "t", "{}", "--payload-file", in), 2, "",
               "pgq add: give the payload as JSON or --payload-file, not both\n");
    ck_assert_int_eq(njobs(), 2);
}
END_TEST

START_TEST(add_reads_json_lines)
{
    const char *in = tmp_path("jobs.jsonl");
    FILE *f = fopen(in, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"type\": \"t\", \"payload\": {\"n\": 1}}\n\n"
          "{\"type\": \"t\", \"queue\": \"q2\", \"priority\": 3, \"delay\": \"1h\"}\n"
          "{\"type\": \"t\", \"idempotency_key\": \"k\", \"max_retries\": 2}\n"
          "{\"type\": \"t\", \"idempotency_key\": \"k\"}\n", f);
    for (int i = 0; i < 1100; i++)   /* more than one batch */
        fprintf(f, "{\"type\":\"t\",\"payload\":{\"i\":%d}}\n", i);
    ck_assert_int_eq(fclose(f), 0);
    run_stdin = in;
    struct run r = PGQ_DB("add", "-");
    run_stdin = NULL;
    ck_assert_msg(r.code == 0 && !*r.err, "exit %d: %s", r.code, r.err);
    ck_assert_int_eq(tu_count_lines(r.out), 1104);
    long long first = atoll(r.out);
    ck_assert_msg(strstr(r.out, tu_fmt("\n%lld duplicate\n", first + 2)), "[%.200s]", r.out);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 1103);
    const char *p[] = { tu_lld(first + 1) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND queue = 'q2' AND"
                            " priority = 3 AND run_at > now() + interval '59 minutes'", 1, p), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE payload = '{\"n\": 1}'", 0,
                            NULL), 1);

    static const struct { const char *in, *err; } bad[] = {
        { "{\"type\": \"t\"}\n{\"type\": \"t\",}\n", "pgq add: stdin line 2: not JSON: invalid "
          "input syntax for type json (Expected string, but found \"}\".)\n" },
        { "{\"type\": \"t\", \"prio\": 1}\n", "pgq add: stdin line 1: unknown key prio (known: "
          "type, payload, queue, priority, delay, run_at, max_retries, idempotency_key, "
          "unique_for, replace, after)\n" },
        { "[1]\n", "pgq add: stdin line 1: a job is a JSON object, not an array\n" },
        { "{\"type\": \"t\", \"priority\": \"x\"}\n", "pgq add: stdin line 1: \"priority\" must "
          "be a number, not string\n" },
        { "{\"payload\": {}}\n", "pgq add: stdin line 1: needs \"type\"\n" },
        { "{\"type\": \"t\"}\n{\"type\": \"nope\"}\n", "pgq add: stdin line 2: unknown job type "
          "\"nope\" (register it with pgq types apply)\n" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = fopen(in, "w");
        fputs(bad[i].in, f);
        fclose(f);
        run_stdin = in;
        r = PGQ_DB("add", "-");
        run_stdin = NULL;
        ASSERT_RUN(r, 1, "", bad[i].err);
    }
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL), 1103);
    ASSERT_RUN(PGQ_DB("add", "-", "--queue", "x"), 2, "", "pgq add: pgq add - takes its options "
               "from each line, not the command line\n");
}
END_TEST

/* A strict reading of the Prometheus text format (what `promtool check
 * metrics` checks of it): every sample line is NAME{LABELS} VALUE with
 * valid names, quoted and escaped label values and a number; each metric
 * has one HELP and one TYPE before its first sample; no sample twice.
 * NULL when text passes, else what is wrong. */
static const char *exposition_problem(const char *text)
{
    regex_t sample, help;
    ck_assert_int_eq(regcomp(&sample, "^([a-zA-Z_:][a-zA-Z0-9_:]*)"
                             "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
                             "(,[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\")*\\})? "
                             "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$", REG_EXTENDED), 0);
    ck_assert_int_eq(regcomp(&help, "^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$",
                             REG_EXTENDED), 0);
    char *copy = strdup(text), *save = NULL, typed[32][64] = { { 0 } }, seen[8192] = "\n";
    int ntyped = 0, nhelp = 0;
    const char *bad = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l && !bad; l = strtok_r(NULL, "\n", &save)) {
        regmatch_t m[4];
        if (l[0] == '#') {
            if (regexec(&help, l, 4, m, 0) != 0)
                bad = tu_fmt("bad comment line [%.200s]", l);
            else if (strncmp(l + 2, "TYPE", 4) == 0) {
                if (strcmp(l + m[3].rm_so, "gauge") != 0 && strcmp(l + m[3].rm_so, "counter") != 0)
                    bad = tu_fmt("bad type [%.200s]", l);
                else if (ntyped < 32)
                    snprintf(typed[ntyped++], sizeof typed[0], "%.*s",
                             (int)(m[2].rm_eo - m[2].rm_so), l + m[2].rm_so);
            } else {
                nhelp++;
            }
            continue;
        }
        if (regexec(&sample, l, 2, m, 0) != 0) {
            bad = tu_fmt("bad sample line [%.200s]", l);
            break;
        }
        bool known = ntyped > 0 && (int)strlen(typed[ntyped - 1]) == m[1].rm_eo &&
                     strncmp(l, typed[ntyped - 1], (size_t)m[1].rm_eo) == 0;
        const char *key = tu_fmt("\n%.*s\n", (int)(strrchr(l, ' ') - l), l);
        if (!known)
            bad = tu_fmt("sample before its TYPE: [%.200s]", l);
        else if (strstr(seen, key))
            bad = tu_fmt("sample twice: [%.200s]", l);
        else if (strlen(seen) + strlen(key) < sizeof seen)
            strcat(seen, key + 1);
    }
    if (!bad && nhelp != ntyped)
        bad = tu_fmt("%d HELP lines for %d TYPE lines", nhelp, ntyped);
    free(copy);
    regfree(&sample);
    regfree(&help);
    return bad;
}

START_TEST(stats_prometheus_is_valid_exposition)
{
    const char *odd = "q\"uo\\te";   /* a label value that needs escapes */
    ck_assert_int_eq(PGQ_DB("add", "t", "{}", "--queue", odd).code, 0);
    ck_assert_int_eq(PGQ_DB("add", "t", "{}").code, 0);
    tu_exec("UPDATE pgq.jobs SET run_at = now() - interval '90 seconds' WHERE queue = 'default'",
            0, NULL);
    struct run r = PGQ_DB("stats", "--prometheus");
    /* both queues have due jobs and no pool: stderr says so, stdout stays clean */
    ck_assert_msg(r.code == 0 && strstr(r.err, "nobody serves it"), "exit %d: %s", r.code, r.err);
    ck_assert_msg(strstr(r.out, "\npgq_queue_unserved{queue=\"default\"} 1\n"), "[%s]", r.out);
    ck_assert_msg(strstr(r.out, "\npgq_jobs_exact{queue=\"default\",state=\"ready\"} 1\n"),
                  "[%s]", r.out);
    const char *bad = exposition_problem(r.out);
    ck_assert_msg(!bad, "%s\n%s", bad, r.out);
    ck_assert_msg(strstr(r.out, "\npgq_jobs{queue=\"q\\\"uo\\\\te\",state=\"ready\"} 1\n"), "[%s]",
                  r.out);
    ck_assert_msg(strstr(r.out, "\npgq_jobs{queue=\"default\",state=\"dead\"} 0\n"), "[%s]", r.out);
    const char *age = strstr(r.out, "\npgq_queue_oldest_ready_seconds{queue=\"default\"} ");
    ck_assert_msg(age, "[%s]", r.out);
    double s = atof(strrchr(tu_fmt("%.*s", (int)(strchr(age + 1, '\n') - age), age), ' ') + 1);
    ck_assert_msg(s >= 89 && s < 600, "oldest ready %f s", s);
    ck_assert_msg(strstr(r.out, tu_fmt("\npgq_build_info{version=\"%s\",schema=\"%d\"} 1\n",
                                       PGQ_VERSION, pgq_schema_version())), "[%s]", r.out);
    /* And by promtool, as the pool's endpoint is (the same writer, core/prom.c). */
    const char *file = tu_fmt("%s/stats.prom", tmpdir);
    tu_write_file(file, r.out);
    int st;
    char *pt = tu_sh(tu_fmt("command -v promtool >/dev/null || { echo 'promtool not found: "
                            "scripts/deps.sh installs prometheus'; exit 99; }; promtool check "
                            "metrics < '%s' 2>&1", file), &st);
    ck_assert_msg(st == 0 && !*pt, "promtool check metrics: status %d: %s\n%s", st, pt, r.out);
    free(pt);
    /* the checker can fail */
    ck_assert_ptr_nonnull(exposition_problem("# HELP a x\n# TYPE a gauge\na{q=\"x\"y\"} 1\n"));
    ck_assert_ptr_nonnull(exposition_problem("a 1\n"));
    ck_assert_ptr_nonnull(exposition_problem("# HELP a x\n# TYPE a gauge\na 1\na 2\n"));
    ck_assert_ptr_nonnull(exposition_problem("# HELP a x\n# TYPE a gauge\na one\n"));
    ck_assert_ptr_null(exposition_problem("# HELP a x\n# TYPE a gauge\na{q=\"x\\\"y\"} 1\n"));
}
END_TEST

Suite *cli_suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, help_and_usage);
    tcase_add_test(tc, add_prints_id_and_duplicate);
    tcase_add_test(tc, concurrent_adds_with_one_key);
    tcase_add_test(tc, bad_input_is_refused_and_nothing_stored);
    tcase_add_test(tc, add_options_are_stored);
    tcase_add_test(tc, metacharacters_are_stored_verbatim);
    tcase_add_test(tc, stats_counts_per_queue);
    tcase_add_test(tc, stats_marks_counts_above_the_cap);
    tcase_add_test(tc, show_prints_job_and_history);
    tcase_add_test(tc, requeue_dead_jobs);
    tcase_add_test(tc, cancel_ready_and_running_jobs);
    tcase_add_test(tc, migrate_on_migrated_db);
    tcase_add_test(tc, migrate_fresh_and_newer_database);
    tcase_add_test(tc, bad_urls_and_missing_grants_are_explained);
    tcase_add_test(tc, json_output_and_unbroken_text);
    tcase_add_test(tc, add_reads_json_lines);
    tcase_add_test(tc, add_reads_payload_from_file);
    tcase_add_test(tc, stats_prometheus_is_valid_exposition);
    tcase_add_test(tc, types_apply_and_list);
    tcase_add_test(tc, bad_ini_is_refused_with_file_and_line);
    tcase_add_test(tc, database_url_precedence);
    tcase_add_test(tc, no_database_configured);
    tcase_add_test(tc, once_exit_codes);
    tcase_add_test(tc, once_survives_connection_loss);
    suite_add_tcase(s, tc);
    return s;
}
