/*
 * exec_test.c -- unit tests for pool/exec*.c: real commands, real processes.
 *
 * Every test runs sh (or a missing program) through exec_run and asserts the
 * outcome: bytes that reached the command, the exact error text, which
 * processes are still alive afterwards. Commands leave evidence in files of
 * a per-test directory ($$ and $! pids, what they read). Timings are only
 * ever upper bounds, and generous ones: a "does not hang" test fails by
 * taking minutes, not by being a little slow. No database.
 */
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../pool/exec.h"
#include "../pool/result.h"
#include "pgq_pool.h"
#include "testutil.h"

Suite *exec_suite(void);

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-exec-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

static char *file(const char *name)
{
    static char p[512];

    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whole file, malloc'd and NUL-terminated; NULL if it does not exist. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, n = 0, r;
    char *buf;

    if (!f)
        return NULL;
    buf = malloc(cap + 1);
    ck_assert_ptr_nonnull(buf);
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            ck_assert_ptr_nonnull(buf);
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* A pid a command wrote into a file ("123\n"); waits up to 10 s for it. */
static pid_t read_pid(const char *name)
{
    int64_t end = mono_ms() + 10000;

    for (;;) {
        char *s = slurp(file(name), NULL);
        if (s && strchr(s, '\n')) {
            pid_t pid = (pid_t)atoi(s);
            free(s);
            ck_assert_int_gt(pid, 1);
            return pid;
        }
        free(s);
        ck_assert_msg(mono_ms() < end, "%s never written", name);
        tu_sleep_ms(20);
    }
}

static bool wait_dead(pid_t pid, int ms)
{
    int64_t end = mono_ms() + ms;

    while (!tu_pid_dead(pid)) {
        if (mono_ms() > end)
            return false;
        tu_sleep_ms(20);
    }
    return true;
}

static exec_request sh_req(const char *script)
{
    static const char *argv[4];

    argv[0] = "sh";
    argv[1] = "-c";
    argv[2] = script;
    argv[3] = NULL;
    return (exec_request){ .argv = argv, .timeout_ms = 120000, .grace_ms = 1000 };
}

static void run(const exec_request *req, exec_result *res)
{
    ck_assert_msg(exec_run(req, res) == 0, "exec_run: %s", res->error);
}

/* A script with the test directory in place of every "@D". Static buffer. */
static char *script(const char *tmpl)
{
    static char s[2048];
    size_t o = 0;

    for (const char *p = tmpl; *p; p++) {
        if (p[0] == '@' && p[1] == 'D') {
            o += (size_t)snprintf(s + o, sizeof s - o, "%s", dir);
            p++;
        } else {
            s[o++] = *p;
        }
        ck_assert_uint_lt(o, sizeof s - 1);
    }
    s[o] = '\0';
    return s;
}

START_TEST(payload_arrives_on_stdin)
{
    const char *payload = "{\"to\":\"a@example.com\",\"n\":1}";
    exec_request req = sh_req(script("cat > @D/in"));
    exec_result res;
    size_t len;

    req.payload = payload;
    req.payload_len = strlen(payload);
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    ck_assert(res.started);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert_int_eq(res.term_signal, 0);
    ck_assert_str_eq(res.error, "");
    char *got = slurp(file("in"), &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, strlen(payload));
    ck_assert_str_eq(got, payload);
    free(got);
}
END_TEST

START_TEST(megabyte_payload_arrives_whole)
{
    size_t n = 1 << 20, len, i;
    char *payload = malloc(n);
    exec_request req = sh_req(script("cat > @D/in"));
    exec_result res;

    ck_assert_ptr_nonnull(payload);
    for (i = 0; i < n; i++)           /* every byte value, NUL included */
        payload[i] = (char)(i * 7 + i / 251);
    req.payload = payload;
    req.payload_len = n;
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    char *got = slurp(file("in"), &len);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(len, n);
    ck_assert(memcmp(got, payload, n) == 0);
    free(got);
    free(payload);
}
END_TEST

START_TEST(environment_is_inherited_plus_extra)
{
    const char *env[] = { "PGQ_JOB_ID=8812", "PGQ_JOB_TYPE=send-email", "HOME=/pgq-override", NULL };
    exec_request req = sh_req(script("printf '%s|%s|%s|%s' \"$PGQ_JOB_ID\" \"$PGQ_JOB_TYPE\" "
                                     "\"$HOME\" \"$PGQ_EXEC_TEST_INHERITED\" > @D/env; "
                                     "env | grep -c '^HOME=' > @D/homes"));
    exec_result res;
    char *got, *homes;

    ck_assert_int_eq(setenv("PGQ_EXEC_TEST_INHERITED", "from-pool", 1), 0);
    ck_assert_int_eq(setenv("HOME", "/pool-home", 1), 0);
    req.env_extra = env;
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    got = slurp(file("env"), NULL);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, "8812|send-email|/pgq-override|from-pool");
    homes = slurp(file("homes"), NULL);
    ck_assert_ptr_nonnull(homes);
    ck_assert_str_eq(homes, "1\n");     /* overridden, not duplicated */
    free(got);
    free(homes);
}
END_TEST

START_TEST(exit_zero_is_success_and_stderr_ignored)
{
    exec_request req = sh_req("echo chatter >&2; echo out; exit 0");
    exec_result res;

    run(&req, &res);
    ck_assert(res.ok);
    ck_assert(res.started);
    ck_assert_int_eq(res.exit_code, 0);
    ck_assert(!res.timed_out && !res.cancelled);
    ck_assert_str_eq(res.error, "");
    ck_assert_int_ge(res.cpu_ms, 0);
    ck_assert_int_gt(res.max_rss_kb, 0);
    ck_assert_int_ge(res.duration_ms, 0);
}
END_TEST

START_TEST(exit_status_and_stderr_become_the_error)
{
    exec_request req = sh_req("echo first >&2; echo oops >&2; printf '\\n  \\n' >&2; exit 3");
    exec_result res;

    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert(res.started);
    ck_assert_int_eq(res.exit_code, 3);
    ck_assert_int_eq(res.term_signal, 0);
    ck_assert_str_eq(res.error, "exit status 3: first\noops");

    req = sh_req("exit 1");
    run(&req, &res);
    ck_assert_int_eq(res.exit_code, 1);
    ck_assert_str_eq(res.error, "exit status 1");
}
END_TEST

START_TEST(stderr_is_made_storable)
{
    /* NUL, escape, invalid UTF-8 and CRLF; valid UTF-8 passes. */
    exec_request req = sh_req("printf 'a\\000b\\033c\\377d\\r\\nd\\303\\251j\\303\\n' >&2; exit 2");
    exec_result res;

    run(&req, &res);
    ck_assert_str_eq(res.error, "exit status 2: a?b?c?d\nd\xc3\xa9j?");
}
END_TEST

START_TEST(killed_by_signal)
{
    exec_request req = sh_req("echo dying >&2; kill -USR1 $$");
    exec_result res;

    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert_int_eq(res.exit_code, -1);
    ck_assert_int_eq(res.term_signal, SIGUSR1);
    ck_assert(!res.timed_out && !res.cancelled);
    ck_assert_str_eq(res.error, "killed by signal 10 (SIGUSR1): dying");
}
END_TEST

START_TEST(long_stderr_keeps_whole_lines_of_the_tail)
{
    exec_request req = sh_req("i=0; while [ $i -lt 10000 ]; do echo \"line $i\" >&2; i=$((i+1)); done; "
                              "exit 1");
    const char *prefix = "exit status 1: ";
    exec_result res;
    int expect = -1;
    char *p;

    run(&req, &res);
    ck_assert_int_eq(res.exit_code, 1);
    ck_assert_msg(strncmp(res.error, prefix, strlen(prefix)) == 0, "%s", res.error);
    ck_assert_uint_lt(strlen(res.error), sizeof res.error);
    ck_assert_uint_le(strlen(res.error) - strlen(prefix), 2000);
    ck_assert_uint_gt(strlen(res.error) - strlen(prefix), 1500);
    /* Whole consecutive lines, up to the very last one. */
    for (p = res.error + strlen(prefix); *p;) {
        int n, used;
        ck_assert_msg(sscanf(p, "line %d%n", &n, &used) == 1, "partial line at \"%.20s\"", p);
        ck_assert_msg(expect < 0 || n == expect, "line %d, expected %d", n, expect);
        expect = n + 1;
        p += used;
        ck_assert(*p == '\n' || *p == '\0');
        if (*p)
            p++;
    }
    ck_assert_int_eq(expect, 10000);
}
END_TEST

START_TEST(missing_command_cannot_run)
{
    const char *argv[] = { "pgq-no-such-command", "x", NULL };
    const char *slash[] = { "/nonexistent/pgq-no-such-command", NULL };
    exec_request req = { .argv = argv, .payload = "{}", .payload_len = 2 };
    exec_result res;

    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert(!res.started);
    ck_assert_int_eq(res.exit_code, -1);
    ck_assert_str_eq(res.error, "cannot run \"pgq-no-such-command\": No such file or directory");

    /* With a '/', no search: the file itself is missing. */
    req.argv = slash;
    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert(!res.started);
    ck_assert_str_eq(res.error,
                     "cannot run \"/nonexistent/pgq-no-such-command\": No such file or directory");
}
END_TEST

START_TEST(non_executable_cannot_run)
{
    const char *argv[] = { NULL, NULL };
    exec_request req = { .argv = argv };
    exec_result res;
    char want[600], path[512];
    FILE *f;

    snprintf(path, sizeof path, "%s", file("script"));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(path, 0644), 0);
    argv[0] = path;
    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert(!res.started);
    snprintf(want, sizeof want, "cannot run \"%s\": Permission denied", path);
    ck_assert_str_eq(res.error, want);

    ck_assert_int_eq(chmod(path, 0755), 0);
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
}
END_TEST

/* pgq-pool --check's verdict on `handler = exec CMD` (pgq_pool_check: what
 * --check runs, no database). */
static bool check_accepts(const char *cmd)
{
    char err[1024];
    pgq_cfg *cfg;
    pgq_pool *pool;
    FILE *f = fopen(file("check.ini"), "w");

    ck_assert_ptr_nonnull(f);
    fprintf(f, "[job t]\nhandler = exec %s\n", cmd);
    fclose(f);
    ck_assert_msg(pgq_cfg_load(file("check.ini"), &cfg, err, sizeof err) == 0, "%s", err);
    if (pgq_pool_new(cfg, "unused", &pool, err, sizeof err) < 0) {
        pgq_cfg_free(cfg);
        ck_abort_msg("pgq_pool_new: %s", err);
    }
    bool ok = pgq_pool_check(pool, err, sizeof err) == 0;
    pgq_pool_free(pool);
    return ok;
}

/* The file exec_run ran for argv0: a probe reports its $0 (the path it was
 * executed by), sh the target of /proc/$$/exe; NULL if nothing ran. */
static char *ran(const char *argv0, bool probe)
{
    const char *argv[] = { argv0, "-c", "PATH=/bin:/usr/bin; readlink /proc/$$/exe >&2; exit 7",
                           NULL };
    exec_request req = { .argv = argv, .timeout_ms = 120000 };
    exec_result res;
    static char out[2048];

    if (probe)
        argv[1] = NULL;
    run(&req, &res);
    if (!res.started)
        return NULL;
    ck_assert_msg(strncmp(res.error, "exit status 7: ", 15) == 0, "%s", res.error);
    snprintf(out, sizeof out, "%s", res.error + 15);
    return out;
}

/* exec_resolve's answer for name, the function both --check and exec_run
 * call; "" when it found nothing. Static buffer. */
static const char *resolved(const char *name)
{
    static char out[PATH_MAX];
    char *path;
    int err;

    ck_assert_int_eq(exec_resolve(name, &path, &err), 0);
    snprintf(out, sizeof out, "%s", path ? path : "");
    free(path);
    return out;
}

/* The first executable sh in the documented default, confstr(_CS_PATH),
 * as the real file it is. */
static char *default_sh(void)
{
    static char real[PATH_MAX];
    char dirs[1024], cand[1200];

    ck_assert_uint_lt(confstr(_CS_PATH, dirs, sizeof dirs), sizeof dirs);
    for (char *d = strtok(dirs, ":"); d; d = strtok(NULL, ":")) {
        snprintf(cand, sizeof cand, "%s/sh", d);
        if (access(cand, X_OK) == 0 && realpath(cand, real))
            return real;
    }
    ck_abort_msg("no sh in confstr(_CS_PATH)");
    return NULL;
}

/* What --check approves is what exec runs, whatever PATH is: set, unset,
 * empty (both take confstr(_CS_PATH) then), with an empty entry (the
 * current directory), or a relative command with a '/'. */
START_TEST(check_approves_exactly_what_exec_runs)
{
    char old_cwd[PATH_MAX], want[600];
    const char *old_path = getenv("PATH");
    char *saved = old_path ? strdup(old_path) : NULL;
    FILE *f = fopen(file("pgq-probe"), "w");

    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\necho \"$0\" >&2\nexit 7\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(file("pgq-probe"), 0755), 0);
    ck_assert_ptr_nonnull(getcwd(old_cwd, sizeof old_cwd));
    ck_assert_int_eq(chdir(dir), 0);

    /* set */
    setenv("PATH", dir, 1);
    ck_assert(check_accepts("pgq-probe"));
    snprintf(want, sizeof want, "%s/pgq-probe", dir);
    ck_assert_str_eq(resolved("pgq-probe"), want);
    ck_assert_str_eq(ran("pgq-probe", true), want);
    ck_assert(!check_accepts("sh"));
    ck_assert_ptr_null(ran("sh", false));

    /* unset and empty: the default, not the current directory */
    for (int empty = 0; empty < 2; empty++) {
        if (empty)
            setenv("PATH", "", 1);
        else
            unsetenv("PATH");
        ck_assert_msg(check_accepts("sh"), "PATH %s", empty ? "empty" : "unset");
        char real[PATH_MAX];
        ck_assert_ptr_nonnull(realpath(resolved("sh"), real));
        ck_assert_str_eq(real, default_sh());
        char *got = ran("sh", false);
        ck_assert_msg(got && strcmp(got, default_sh()) == 0, "PATH %s: ran %s, want %s",
                      empty ? "empty" : "unset", got ? got : "nothing", default_sh());
        ck_assert(!check_accepts("pgq-probe"));
        ck_assert_str_eq(resolved("pgq-probe"), "");
        ck_assert_ptr_null(ran("pgq-probe", true));
    }

    /* an empty entry is the current directory, as for execvp */
    setenv("PATH", "/nonexistent::/also-not", 1);
    ck_assert(check_accepts("pgq-probe"));
    ck_assert_str_eq(resolved("pgq-probe"), "./pgq-probe");
    ck_assert_str_eq(ran("pgq-probe", true), "./pgq-probe");

    /* a '/' anywhere: no search, relative to the current directory */
    unsetenv("PATH");
    ck_assert(check_accepts("./pgq-probe"));
    ck_assert_str_eq(ran("./pgq-probe", true), "./pgq-probe");
    ck_assert(!check_accepts("./sh"));
    ck_assert_ptr_null(ran("./sh", false));

    ck_assert_int_eq(chdir(old_cwd), 0);
    if (saved)
        setenv("PATH", saved, 1);
    free(saved);
}
END_TEST

/* The caller's SIGPIPE is default and unblocked here: if a write to a
 * command that is gone raised it, this test process would die. */
START_TEST(command_ignoring_stdin_does_not_hang)
{
    static const char *scripts[] = { "exit 0", "exec 0<&-; sleep 1", "sleep 1; exit 4" };
    size_t n = 4 << 20;
    char *payload = calloc(1, n);
    sigset_t none, mask, pending;
    exec_result res;

    ck_assert_ptr_nonnull(payload);
    signal(SIGPIPE, SIG_DFL);
    sigemptyset(&none);
    ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &none, NULL), 0);
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
        exec_request req = sh_req(scripts[i]);
        req.payload = payload;
        req.payload_len = n;
        req.timeout_ms = 60000;
        run(&req, &res);
        ck_assert_msg(!res.timed_out, "%s: %s", scripts[i], res.error);
        ck_assert_int_eq(res.exit_code, i == 2 ? 4 : 0);
    }
    /* The mask is restored and no SIGPIPE is left behind. */
    ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &mask), 0);
    ck_assert(!sigismember(&mask, SIGPIPE));
    sigpending(&pending);
    ck_assert(!sigismember(&pending, SIGPIPE));
    free(payload);
}
END_TEST

/* ---- stdout: the result ---- */

START_TEST(stdout_is_kept_up_to_out_max)
{
    exec_request req = sh_req("printf 'hello\\nworld'; printf 'on stderr' >&2");
    exec_result res;

    req.out_max = 100;
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    ck_assert_uint_eq(res.out_total, 11);
    ck_assert_uint_eq(res.out_len, 11);
    ck_assert_str_eq(res.out, "hello\nworld");
    free(res.out);

    /* out_max 0: read (the command is not blocked) and dropped */
    req = sh_req("head -c 1000000 /dev/zero");
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    ck_assert_uint_eq(res.out_total, 1000000);
    ck_assert_ptr_null(res.out);
    ck_assert_uint_eq(res.out_len, 0);
}
END_TEST

/* Megabytes on stdout and on stderr at once, from a command that never
 * reads its megabytes of stdin: every pipe is served by one poll loop, so
 * nothing blocks; only the first out_max (+ lookahead) bytes are kept. */
START_TEST(big_stdout_stderr_and_unread_stdin_do_not_hang)
{
    size_t n = 4 << 20;
    char *payload = malloc(n);
    exec_request req = sh_req("head -c 3000000 /dev/zero | tr '\\0' a &"
                              " head -c 3000000 /dev/zero >&2; wait");
    exec_result res;

    ck_assert_ptr_nonnull(payload);
    memset(payload, 'p', n);
    req.payload = payload;
    req.payload_len = n;
    req.out_max = 65536;
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    ck_assert(!res.timed_out);
    ck_assert_uint_eq(res.out_total, 3000000);
    ck_assert_uint_eq(res.out_len, 65536 + EXEC_OUT_LOOKAHEAD);
    for (size_t i = 0; i < res.out_len; i++)
        ck_assert_msg(res.out[i] == 'a', "byte %zu is %d", i, res.out[i]);
    free(res.out);
    free(payload);
}
END_TEST

/* result_make: the one rule for what of a handler's output is stored. */
START_TEST(result_is_cut_at_a_whole_character_and_said)
{
    struct job_result r = { 0 };
    const char *e150 = NULL;
    char buf[301];

    for (int i = 0; i < 150; i++)
        memcpy(buf + 2 * i, "\xc3\xa9", 2);     /* "é" */
    buf[300] = '\0';
    e150 = buf;

    /* whole */
    ck_assert_int_eq(result_make("hi\n", 3, 3, 100, "stdout", &r), 0);
    ck_assert_str_eq(r.text, "hi\n");
    ck_assert_ptr_null(r.note);
    /* cut between characters: 101 bytes allowed, 100 kept */
    ck_assert_int_eq(result_make(e150, 300, 300, 101, "stdout", &r), 0);
    ck_assert_uint_eq(strlen(r.text), 100);
    ck_assert_int_eq(strncmp(r.text, e150, 100), 0);
    ck_assert_str_eq(r.note, "stdout cut to the first 100 of 300 bytes (result_max = 101 bytes)");
    /* a reader that kept only max + lookahead of a longer output */
    ck_assert_int_eq(result_make(e150, 105, 300, 101, "stdout", &r), 0);
    ck_assert_uint_eq(strlen(r.text), 100);
    ck_assert_str_eq(r.note, "stdout cut to the first 100 of 300 bytes (result_max = 101 bytes)");
    /* an exact fit is not cut */
    ck_assert_int_eq(result_make(e150, 300, 300, 300, "result", &r), 0);
    ck_assert_uint_eq(strlen(r.text), 300);
    ck_assert_ptr_null(r.note);
    /* not UTF-8 (a byte that starts no character; a NUL; a cut-off end) */
    ck_assert_int_eq(result_make("ok\xff", 3, 3, 100, "stdout", &r), 0);
    ck_assert_ptr_null(r.text);
    ck_assert_str_eq(r.note, "not stored: stdout is not UTF-8 text (byte 2 of 3 starts no "
                     "character; NUL bytes and other encodings cannot be stored)");
    ck_assert_int_eq(result_make("a\0b", 3, 3, 100, "stdout", &r), 0);
    ck_assert_ptr_null(r.text);
    ck_assert_ptr_nonnull(strstr(r.note, "byte 1 of 3"));
    ck_assert_int_eq(result_make("a\xc3", 2, 2, 100, "stdout", &r), 0);
    ck_assert_ptr_null(r.text);
    ck_assert_ptr_nonnull(strstr(r.note, "byte 1 of 2"));
    /* bad bytes past the cut are not looked at: they are not stored */
    ck_assert_int_eq(result_make("abc\xff", 4, 4, 3, "stdout", &r), 0);
    ck_assert_str_eq(r.text, "abc");
    ck_assert_str_eq(r.note, "stdout cut to the first 3 of 4 bytes (result_max = 3 bytes)");
    /* result_max 0: nothing, and nothing to say */
    ck_assert_int_eq(result_make("abc", 3, 3, 0, "stdout", &r), 0);
    ck_assert_ptr_null(r.text);
    ck_assert_ptr_null(r.note);
    result_clear(&r);
}
END_TEST

START_TEST(timeout_sigterm_ends_command)
{
    exec_request req = sh_req("exec sleep 1000");
    exec_result res;

    req.timeout_ms = 300;
    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert(res.started);
    ck_assert(res.timed_out);
    ck_assert(!res.cancelled);
    ck_assert_int_eq(res.exit_code, -1);
    ck_assert_int_eq(res.term_signal, SIGTERM);
    ck_assert_int_ge(res.cpu_ms, 0);      /* the spawner reported */
    ck_assert_int_lt(res.duration_ms, 30000);
    ck_assert_str_eq(res.error, "killed by signal 15 (SIGTERM) after timeout (300ms)");
}
END_TEST

START_TEST(timeout_escalates_to_sigkill)
{
    exec_request req = sh_req("trap '' TERM; echo stuck >&2; sleep 1000");
    exec_result res;
    int64_t t0 = mono_ms();

    req.timeout_ms = 300;
    req.grace_ms = 300;
    run(&req, &res);
    ck_assert(!res.ok);
    ck_assert(res.timed_out);
    ck_assert_int_eq(res.term_signal, SIGKILL);
    ck_assert_int_eq(res.exit_code, -1);
    ck_assert_int_ge(res.cpu_ms, 0);      /* the spawner outlives the group and reports */
    ck_assert_int_lt(mono_ms() - t0, 10000);
    ck_assert_str_eq(res.error, "killed by signal 9 (SIGKILL) after timeout (300ms): stuck");
}
END_TEST

START_TEST(timeout_kills_the_whole_group)
{
    exec_request req = sh_req(script("sleep 1000 & echo $! > @D/bg; wait"));
    exec_result res;

    req.timeout_ms = 300;
    req.grace_ms = 300;
    run(&req, &res);
    ck_assert(res.timed_out);
    ck_assert_msg(wait_dead(read_pid("bg"), 5000), "background sleep survived the timeout");
}
END_TEST

struct canceller {
    atomic_bool flag;
    int after_ms;
};

static void *cancel_later(void *arg)
{
    struct canceller *c = arg;

    tu_sleep_ms(c->after_ms);
    atomic_store(&c->flag, true);
    return NULL;
}

START_TEST(cancel_flag_kills_the_group)
{
    exec_request req = sh_req(script("trap '' TERM; sleep 1000 & echo $! > @D/bg; echo $$ > @D/sh; wait"));
    struct canceller c = { .after_ms = 200 };
    exec_result res;
    pthread_t t;

    atomic_init(&c.flag, false);
    req.cancel = &c.flag;
    req.grace_ms = 300;
    ck_assert_int_eq(pthread_create(&t, NULL, cancel_later, &c), 0);
    run(&req, &res);
    pthread_join(t, NULL);
    ck_assert(!res.ok);
    ck_assert(res.cancelled);
    ck_assert(!res.timed_out);
    ck_assert_int_eq(res.term_signal, SIGKILL);
    ck_assert_str_eq(res.error, "killed by signal 9 (SIGKILL) after cancellation");
    ck_assert_int_lt(res.duration_ms, 30000);
    ck_assert(wait_dead(read_pid("sh"), 5000));
    ck_assert_msg(wait_dead(read_pid("bg"), 5000), "background sleep survived cancellation");
}
END_TEST

START_TEST(cancel_before_start)
{
    exec_request req = sh_req("exec sleep 1000");
    atomic_bool flag;
    exec_result res;

    atomic_init(&flag, true);
    req.cancel = &flag;
    run(&req, &res);
    ck_assert(res.cancelled);
    ck_assert(!res.ok);
    ck_assert_int_lt(res.duration_ms, 30000);
}
END_TEST

/* The pool is SIGKILLed mid-job: the command and its child die too. */
START_TEST(commands_die_with_the_pool)
{
    pid_t pool, cmd, bg;
    int st;

    pool = fork();
    ck_assert_int_ge(pool, 0);
    if (pool == 0) {
        exec_request req = sh_req(script("echo $$ > @D/sh; sleep 1000 & echo $! > @D/bg; wait"));
        exec_result res;
        _exit(exec_run(&req, &res) == 0 ? 0 : 1);
    }
    bg = read_pid("bg");
    cmd = read_pid("sh");
    ck_assert(!tu_pid_dead(cmd));
    ck_assert(!tu_pid_dead(bg));
    ck_assert_int_eq(kill(pool, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pool, &st, 0), pool);
    ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    ck_assert_msg(wait_dead(cmd, 10000), "command %d survived the pool", (int)cmd);
    ck_assert_msg(wait_dead(bg, 10000), "grandchild %d survived the pool", (int)bg);
}
END_TEST

START_TEST(stray_background_process_is_killed)
{
    exec_request req = sh_req(script("sleep 1000 >/dev/null 2>&1 & echo $! > @D/bg; exit 0"));
    exec_result res;

    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    ck_assert_msg(wait_dead(read_pid("bg"), 5000), "stray survived a successful job");
}
END_TEST

/* A stray holding stderr open: the result must not wait for its EOF. */
START_TEST(stray_holding_stderr_does_not_delay)
{
    exec_request req = sh_req(script("sleep 1000 & echo $! > @D/bg; echo bye >&2; exit 5"));
    exec_result res;

    run(&req, &res);
    ck_assert_int_eq(res.exit_code, 5);
    ck_assert_str_eq(res.error, "exit status 5: bye");
    ck_assert_int_lt(res.duration_ms, 30000);
    ck_assert(wait_dead(read_pid("bg"), 5000));
}
END_TEST

struct bg_run {
    exec_request req;
    exec_result res;
    int rc;
};

static void *bg_run_main(void *arg)
{
    struct bg_run *r = arg;

    r->rc = exec_run(&r->req, &r->res);
    return NULL;
}

/* The running command's fds, looked at from outside: stdin, stdout and
 * stderr are pipes, and nothing else of the pool's got through. */
START_TEST(only_stdio_reaches_the_command)
{
    /* Not close-on-exec, as a careless fd elsewhere in the pool might be. */
    int leaky = open(file("marker"), O_WRONLY | O_CREAT, 0600);
    struct canceller c;
    struct bg_run r = { .req = sh_req(script("echo $$ > @D/sh; exec sleep 1000")) };
    char path[128], target[512], seen[4096] = "";
    pthread_t t;
    pid_t cmd;
    DIR *d;
    struct dirent *e;

    ck_assert_int_ge(leaky, 3);
    atomic_init(&c.flag, false);
    r.req.cancel = &c.flag;
    ck_assert_int_eq(pthread_create(&t, NULL, bg_run_main, &r), 0);
    cmd = read_pid("sh");
    tu_sleep_ms(200);                      /* let "exec sleep" happen */
    snprintf(path, sizeof path, "/proc/%d/fd", (int)cmd);
    d = opendir(path);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        char link[400];
        ssize_t n;
        if (e->d_name[0] == '.')
            continue;
        snprintf(link, sizeof link, "%s/%.200s", path, e->d_name);
        n = readlink(link, target, sizeof target - 1);
        ck_assert_int_gt(n, 0);
        target[n] = '\0';
        snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s%.16s=%.512s",
                 seen[0] ? " " : "", e->d_name, strncmp(target, "pipe:", 5) ? target : "pipe");
    }
    closedir(d);
    atomic_store(&c.flag, true);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.rc, 0);
    ck_assert(r.res.cancelled);
    /* readdir order is the fd order for /proc/PID/fd */
    ck_assert_str_eq(seen, "0=pipe 1=pipe 2=pipe");
    close(leaky);
}
END_TEST

START_TEST(rusage_is_reported)
{
    exec_request req = sh_req("i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done");
    exec_result res;

    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    ck_assert_int_gt(res.cpu_ms, 0);
    ck_assert_int_gt(res.max_rss_kb, 0);
    ck_assert_int_ge(res.duration_ms, res.cpu_ms / 2);  /* one process: cpu <= wall */
}
END_TEST

#define THREADS 8
#define RUNS 50

struct worker {
    int id, wrong;
    char first_error[256];
};

static void *worker_main(void *arg)
{
    static const char *t[] = { "true", NULL }, *f[] = { "false", NULL };
    struct worker *w = arg;

    for (int i = 0; i < RUNS; i++) {
        bool ok = (i + w->id) % 2 == 0;
        exec_request req = { .argv = ok ? t : f, .payload = "{}", .payload_len = 2,
                             .timeout_ms = 60000, .grace_ms = 1000 };
        exec_result res;
        int rc = exec_run(&req, &res);
        if (rc != 0 || res.ok != ok || res.exit_code != (ok ? 0 : 1) || res.term_signal != 0 ||
            strcmp(res.error, ok ? "" : "exit status 1") != 0) {
            if (!w->wrong++)
                snprintf(w->first_error, sizeof w->first_error, "run %d rc %d: %.200s", i, rc, res.error);
        }
    }
    return NULL;
}

START_TEST(many_threads_at_once)
{
    struct worker w[THREADS];
    pthread_t th[THREADS];
    int i;

    for (i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .id = i };
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < THREADS; i++)
        ck_assert_msg(w[i].wrong == 0, "thread %d: %d wrong results, first: %s", i, w[i].wrong,
                      w[i].first_error);
}
END_TEST

/* Many threads, each command reading its own payload: no job's stdin stays
 * open in the spawner or another job's command (that would hang cat). */
struct catter {
    int id, wrong;
};

static void *catter_main(void *arg)
{
    struct catter *c = arg;
    const char *argv[] = { "sh", "-c", "cat >/dev/null; echo done >&2; exit 7", NULL };

    for (int i = 0; i < 20; i++) {
        char payload[64];
        exec_request req = { .argv = argv, .payload = payload, .timeout_ms = 10000 };
        exec_result res;
        req.payload_len = (size_t)snprintf(payload, sizeof payload, "{\"i\":%d,\"t\":%d}", i, c->id);
        if (exec_run(&req, &res) != 0 || res.exit_code != 7 || strcmp(res.error, "exit status 7: done"))
            c->wrong++;
    }
    return NULL;
}

START_TEST(concurrent_stdin_pipes_do_not_leak)
{
    struct catter c[THREADS];
    pthread_t th[THREADS];
    int i;

    for (i = 0; i < THREADS; i++) {
        c[i] = (struct catter){ .id = i };
        ck_assert_int_eq(pthread_create(&th[i], NULL, catter_main, &c[i]), 0);
    }
    for (i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < THREADS; i++)
        ck_assert_int_eq(c[i].wrong, 0);
}
END_TEST

/* The parent of pid (the ppid field of /proc/PID/stat); -1 if it is gone. */
static pid_t parent_of(pid_t pid)
{
    char path[64], buf[512], *rp;
    size_t n;
    FILE *f;
    int ppid = -1;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    rp = strrchr(buf, ')');
    if (!rp || sscanf(rp + 2, "%*c %d", &ppid) != 1)
        return -1;
    return (pid_t)ppid;
}

static void *run_in_thread(void *arg)
{
    exec_result res;
    ck_assert_int_eq(exec_run(arg, &res), 0);
    return NULL;
}

/* Commands are children of a spawner, a child of the pool process, not of
 * the thread that happened to start it: that thread's exit changes nothing
 * for later commands (one at a time, they all go to the same spawner). */
START_TEST(one_spawner_outlives_the_thread_that_started_it)
{
    exec_request req = sh_req(script("echo $PPID > @D/p1"));   /* sh_req, script: static */
    exec_result res;
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, run_in_thread, &req), 0);
    pthread_join(t, NULL);
    req = sh_req(script("echo $PPID > @D/p2"));
    run(&req, &res);
    ck_assert_msg(res.ok, "%s", res.error);
    pid_t a = read_pid("p1"), b = read_pid("p2");
    ck_assert_int_eq(a, b);
    ck_assert_int_ne(a, getpid());
    ck_assert_int_eq(parent_of(a), getpid());
}
END_TEST

/* The spawner SIGKILLed while a command runs: the command and its child
 * die too, the attempt is pgq's failure (-1), and the next command gets a
 * new spawner. */
START_TEST(spawner_killed_mid_job)
{
    struct bg_run r = { .req = sh_req(script("echo $$ > @D/sh; sleep 1000 & echo $! > @D/bg; wait")) };
    exec_request next;
    exec_result res;
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, bg_run_main, &r), 0);
    pid_t sh = read_pid("sh"), bg = read_pid("bg"), sp = parent_of(sh);
    ck_assert_int_gt(sp, 1);
    ck_assert_int_ne(sp, getpid());
    ck_assert_int_eq(parent_of(sp), getpid());
    ck_assert_int_eq(kill(sp, SIGKILL), 0);
    pthread_join(t, NULL);
    ck_assert_int_eq(r.rc, -1);
    ck_assert_msg(strstr(r.res.error, "spawner died"), "%s", r.res.error);
    ck_assert_msg(wait_dead(sh, 10000), "command %d survived its spawner", (int)sh);
    ck_assert_msg(wait_dead(bg, 10000), "grandchild %d survived the spawner", (int)bg);

    next = sh_req(script("echo $PPID > @D/p; exit 3"));   /* static: after r is done */
    run(&next, &res);
    ck_assert_int_eq(res.exit_code, 3);
    pid_t sp2 = read_pid("p");
    ck_assert_int_ne(sp2, sp);
    ck_assert_int_eq(parent_of(sp2), getpid());
}
END_TEST

/* A process forked from a pool that has a spawner (a plugin, a test) runs
 * its commands under a spawner of its own, so they die with it, not with
 * the process it was forked from. */
START_TEST(forked_pool_gets_its_own_spawner)
{
    exec_request warm = sh_req("exit 0");
    exec_result res;
    pid_t pool, cmd, bg;
    int st;

    run(&warm, &res);                   /* this process's spawner exists now */
    ck_assert(res.ok);
    pool = fork();
    ck_assert_int_ge(pool, 0);
    if (pool == 0) {
        exec_request req = sh_req(script("echo $$ > @D/sh; sleep 1000 & echo $! > @D/bg; wait"));
        _exit(exec_run(&req, &res) == 0 ? 0 : 1);
    }
    bg = read_pid("bg");
    cmd = read_pid("sh");
    ck_assert_int_eq(parent_of(parent_of(cmd)), pool);
    ck_assert_int_eq(kill(pool, SIGKILL), 0);
    ck_assert_int_eq(waitpid(pool, &st, 0), pool);
    ck_assert_msg(wait_dead(cmd, 10000), "command %d survived the forked pool", (int)cmd);
    ck_assert_msg(wait_dead(bg, 10000), "grandchild %d survived the forked pool", (int)bg);
}
END_TEST

/* One command of concurrent_commands_spread_over_spawners, with its own
 * argv and script (sh_req's and script()'s are static). */
struct ppid_run {
    struct bg_run r;
    const char *argv[4];
    char script[600];
};

/* Commands that run at the same time are spread over several spawners (one
 * would make them wait for each other's execve), never more than twice
 * the CPUs, all of them children of this process. */
START_TEST(concurrent_commands_spread_over_spawners)
{
    struct ppid_run p[THREADS];
    pthread_t th[THREADS];
    pid_t seen[THREADS];
    int nseen = 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

    for (int i = 0; i < THREADS; i++) {
        snprintf(p[i].script, sizeof p[i].script, "echo $PPID > %s/ppid%d; sleep 0.5", dir, i);
        p[i].argv[0] = "sh";
        p[i].argv[1] = "-c";
        p[i].argv[2] = p[i].script;
        p[i].argv[3] = NULL;
        p[i].r = (struct bg_run){ .req = { .argv = p[i].argv, .timeout_ms = 60000 } };
        ck_assert_int_eq(pthread_create(&th[i], NULL, bg_run_main, &p[i].r), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < THREADS; i++) {
        char name[32];
        ck_assert_msg(p[i].r.rc == 0 && p[i].r.res.ok, "%d: %s", i, p[i].r.res.error);
        snprintf(name, sizeof name, "ppid%d", i);
        pid_t sp = read_pid(name);
        int k = 0;
        while (k < nseen && seen[k] != sp)
            k++;
        if (k == nseen) {
            ck_assert_int_eq(parent_of(sp), getpid());
            seen[nseen++] = sp;
        }
    }
    ck_assert_int_ge(nseen, 2);
    ck_assert_int_le(nseen, ncpu * 2 < THREADS ? ncpu * 2 : THREADS);
}
END_TEST

Suite *exec_suite(void)
{
    Suite *s = suite_create("exec");
    TCase *tc = tcase_create("exec");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, payload_arrives_on_stdin);
    tcase_add_test(tc, megabyte_payload_arrives_whole);
    tcase_add_test(tc, environment_is_inherited_plus_extra);
    tcase_add_test(tc, exit_zero_is_success_and_stderr_ignored);
    tcase_add_test(tc, exit_status_and_stderr_become_the_error);
    tcase_add_test(tc, stderr_is_made_storable);
    tcase_add_test(tc, killed_by_signal);
    tcase_add_test(tc, long_stderr_keeps_whole_lines_of_the_tail);
    tcase_add_test(tc, missing_command_cannot_run);
    tcase_add_test(tc, non_executable_cannot_run);
    tcase_add_test(tc, check_approves_exactly_what_exec_runs);
    tcase_add_test(tc, command_ignoring_stdin_does_not_hang);
    tcase_add_test(tc, stdout_is_kept_up_to_out_max);
    tcase_add_test(tc, big_stdout_stderr_and_unread_stdin_do_not_hang);
    tcase_add_test(tc, result_is_cut_at_a_whole_character_and_said);
    tcase_add_test(tc, timeout_sigterm_ends_command);
    tcase_add_test(tc, timeout_escalates_to_sigkill);
    tcase_add_test(tc, timeout_kills_the_whole_group);
    tcase_add_test(tc, cancel_flag_kills_the_group);
    tcase_add_test(tc, cancel_before_start);
    tcase_add_test(tc, commands_die_with_the_pool);
    tcase_add_test(tc, stray_background_process_is_killed);
    tcase_add_test(tc, stray_holding_stderr_does_not_delay);
    tcase_add_test(tc, only_stdio_reaches_the_command);
    tcase_add_test(tc, rusage_is_reported);
    tcase_add_test(tc, many_threads_at_once);
    tcase_add_test(tc, concurrent_stdin_pipes_do_not_leak);
    tcase_add_test(tc, one_spawner_outlives_the_thread_that_started_it);
    tcase_add_test(tc, spawner_killed_mid_job);
    tcase_add_test(tc, forked_pool_gets_its_own_spawner);
    tcase_add_test(tc, concurrent_commands_spread_over_spawners);
    suite_add_tcase(s, tc);
    return s;
}
