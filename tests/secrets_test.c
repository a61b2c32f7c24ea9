/* Secrets never print, and the URL reaches handlers whole (issue 15).
 *
 * Every case runs the programs as a user would, with a password that is a
 * marker no other text contains, and greps all they print (stdout, stderr,
 * the pool's log, /proc/PID/cmdline) for it. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MARK "Zq7sekritMARK"
#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-secrets-test.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tu_reset();
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)!system(cmd);
    tu_check_invariants();
}

static const char *in_dir(const char *name)
{
    return tu_fmt("%s/%s", dir, name);
}

/* The test database's URL with user:MARK@ (trust authentication ignores
 * the password, so it still connects) and a query string appended. */
static const char *url_with_password(const char *query)
{
    const char *url = tu_db_url();
    const char *at = strchr(strstr(url, "://") + 3, '@');
    ck_assert_ptr_nonnull(at);
    const char *base = tu_fmt("%.*s:%s%s", (int)(at - url), url, MARK, at);
    return query ? tu_fmt("%s%s%s", base, strchr(base, '?') ? "&" : "?", query) : base;
}

static void no_marker(const char *what, const char *text)
{
    ck_assert_msg(!text || !strstr(text, MARK), "the password shows in %s:\n%s", what, text);
}

static char *read_cmdline(pid_t pid)
{
    char path[64], buf[16384];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return NULL;
    for (ssize_t i = 0; i < n; i++)
        if (!buf[i])
            buf[i] = ' ';
    buf[n] = '\0';
    return strdup(buf);
}

static pid_t start_pool(const char *ini, const char *const *extra, const char *log)
{
    const char *bin = tu_fmt("%s/pgq-pool", tu_bin_dir());
    const char *argv[12] = { "pgq-pool", "-c", ini };
    int n = 3;
    for (size_t i = 0; extra[i] && n < 11; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return tu_spawn_logged(log, NULL, bin, argv);
}

/* The file's text, or NULL while it does not exist. */
static char *slurp(const char *path)
{
    return access(path, F_OK) == 0 ? tu_slurp(path) : NULL;
}

static bool wait_for(const char *path, const char *needle, int ms)
{
    for (int waited = 0; waited < ms; waited += 20) {
        char *text = slurp(path);
        bool found = text && strstr(text, needle);
        free(text);
        if (found)
            return true;
        nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
    }
    return false;
}

static void stop_pool(pid_t pid)
{
    kill(pid, SIGTERM);
    int st;
    for (int i = 0; i < 3000; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return;
        nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
}

static const char *write_ini(const char *jobs)
{
    const char *path = in_dir("pool.ini");
    tu_write_file(path, tu_fmt("[pool]\nworkers = 1\nlease_ttl = 2s\nheartbeat = 200ms\n"
                               "poll = 100ms\nshutdown_timeout = 5s\n\n%s", jobs));
    return path;
}

/* The pool's --db password leaves its argv once it has read it, and the
 * warning says what to use instead. */
START_TEST(pool_db_password_leaves_ps)
{
    const char *ini = write_ini("[job t]\nhandler = exec /bin/true\n");
    const char *log = in_dir("pool.log");
    pid_t pid = start_pool(ini, ARGV("--db", url_with_password(NULL)), log);
    ck_assert_msg(wait_for(log, "pool: started ", 30000), "the pool did not start:\n%s",
                  slurp(log));
    char *cmd = read_cmdline(pid);
    ck_assert_ptr_nonnull(cmd);
    no_marker("/proc/PID/cmdline", cmd);
    ck_assert_msg(strstr(cmd, ":***@"), "cmdline without the masked URL: %s", cmd);
    free(cmd);
    stop_pool(pid);
    char *text = slurp(log);
    no_marker("the pool's log", text);
    ck_assert_msg(strstr(text, "pgq-pool: warning: the --db URL holds a password"),
                  "no warning: %s", text);
    free(text);
}
END_TEST

/* --db-file: the URL comes from a file; nothing about it in argv, no
 * warning; a bad file is named. */
START_TEST(db_file_keeps_the_url_out_of_argv)
{
    const char *f = in_dir("db.url");
    tu_write_file(f, tu_fmt("%s\n", url_with_password(NULL)));
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, "--db-file", f, "stats", "--json"), 60);
    ck_assert_msg(r.code == 0 && strstr(r.out, "\"queues\""), "exit %d: %s%s", r.code, r.out,
                  r.err);
    ck_assert_str_eq(r.err, "");
    tu_run_free(&r);

    tu_write_file(f, tu_fmt("%s\n%s\n", url_with_password(NULL), url_with_password(NULL)));
    r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, tu_fmt("--db-file=%s", f), "stats"), 60);
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.err, tu_fmt("pgq: --db-file %s:2: a second non-empty line (the file "
                                   "holds one database URL)\n", f));
    no_marker("stderr", r.err);
    tu_run_free(&r);

    tu_write_file(f, "\n\n");
    r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, "--db-file", f, "stats"), 60);
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.err, tu_fmt("pgq: --db-file %s: the file is empty (give one database "
                                   "URL)\n", f));
    tu_run_free(&r);

    r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, "--db-file", in_dir("none"), "stats"), 60);
    ck_assert_int_eq(r.code, 1);
    ck_assert_str_eq(r.err, tu_fmt("pgq: --db-file %s: No such file or directory\n",
                                   in_dir("none")));
    tu_run_free(&r);

    /* the pool takes it too */
    const char *ini = write_ini("[job t]\nhandler = exec /bin/true\n");
    tu_write_file(f, tu_fmt("%s\n", url_with_password(NULL)));
    const char *log = in_dir("pool.log");
    pid_t pid = start_pool(ini, ARGV("--db-file", f), log);
    ck_assert_msg(wait_for(log, "pool: started ", 30000), "the pool did not start:\n%s",
                  slurp(log));
    stop_pool(pid);
    char *text = slurp(log);
    no_marker("the pool's log", text);
    ck_assert_msg(!strstr(text, "warning"), "a warning with --db-file: %s", text);
    free(text);
}
END_TEST

/* An exec handler's DATABASE_URL is the pool's whole URL, however long
 * (it was cut at 1,186 bytes, which can drop a trailing sslmode=). */
START_TEST(exec_handler_gets_the_whole_url)
{
    char pad[3001];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    char *url;   /* longer than tu_fmt's buffers */
    ck_assert_int_gt(asprintf(&url, "%s?application_name=%s&connect_timeout=10", tu_db_url(),
                              pad), 0);
    const char *out = in_dir("url.out");
    const char *sh = in_dir("h.sh");
    tu_write_file(sh, tu_fmt("#!/bin/sh\nprintf %%s \"$DATABASE_URL\" > '%s'\n", out));
    chmod(sh, 0755);
    const char *ini = write_ini(tu_fmt("[job t]\nhandler = exec %s\n", sh));
    const char *log = in_dir("pool.log");
    pid_t pid = start_pool(ini, ARGV("--db", url), log);
    ck_assert_msg(wait_for(log, "pool: started ", 30000), "the pool did not start:\n%s",
                  slurp(log));
    pgq_conn *c = tu_connect();
    pgq_add_result res;
    char err[512];
    ck_assert_msg(pgq_add(c, "t", "{}", NULL, &res, err, sizeof err) == 0, "%s", err);
    pgq_disconnect(c);
    bool done = false;
    for (int i = 0; i < 1500 && !done; i++) {
        done = tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'done'", 0, NULL) == 1;
        if (!done)
            nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
    }
    stop_pool(pid);
    ck_assert_msg(done, "the job did not finish:\n%s", slurp(log));
    char *got = tu_slurp(out);
    ck_assert_ptr_nonnull(got);
    ck_assert_uint_eq(strlen(got), strlen(url));
    ck_assert_str_eq(got, url);
    free(got);
    free(url);
}
END_TEST

/* The failure catalogue: every way a connection can fail, through the
 * CLI, the pool and its --check, with a marked password: none prints it. */
static void cli_fails_quietly(const char *url)
{
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, "--db", url, "stats"), 60);
    ck_assert_msg(r.code != 0, "pgq stats with %s succeeded", url);
    no_marker("pgq's stdout", r.out);
    no_marker("pgq's stderr", r.err);
    ck_assert_msg(strstr(r.err, "pgq stats: ") || strstr(r.err, "pgq: "), "no error: %s", r.err);
    tu_run_free(&r);

    r = tu_run_cmd(dir, (const char *const[]){ tu_fmt("DATABASE_URL=%s", url), NULL }, NULL,
                   pgq, ARGV(pgq, "stats"), 60);
    ck_assert_int_ne(r.code, 0);
    no_marker("pgq's stdout (DATABASE_URL)", r.out);
    no_marker("pgq's stderr (DATABASE_URL)", r.err);
    tu_run_free(&r);

    const char *ini = write_ini(tu_fmt("[database]\nurl = %s\n\n[job t]\nhandler = exec "
                                       "/bin/true\n", url));
    r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, "-c", ini, "stats"), 60);
    ck_assert_int_ne(r.code, 0);
    no_marker("pgq's stderr ([database] url)", r.err);
    tu_run_free(&r);

    const char *pool = tu_fmt("%s/pgq-pool", tu_bin_dir());
    r = tu_run_cmd(dir, NULL, NULL, pool, ARGV(pool, "-c", ini, "--check"), 60);
    no_marker("pgq-pool --check's stdout", r.out);
    no_marker("pgq-pool --check's stderr", r.err);
    tu_run_free(&r);
}

START_TEST(failure_catalogue_never_prints_the_password)
{
    /* libpq's parse errors quote the piece they stumbled on */
    cli_fails_quietly(tu_fmt("postgresql://u:%s%%zz@127.0.0.1/db", MARK));
    cli_fails_quietly(tu_fmt("postgresql://u:%s@[::1/db", MARK));
    cli_fails_quietly(tu_fmt("host=127.0.0.1 password=%s bogus=1", MARK));
    cli_fails_quietly(tu_fmt("host=127.0.0.1 password='%s", MARK));
    /* refused connection, unknown host */
    cli_fails_quietly(tu_fmt("postgresql://u:%s@127.0.0.1:1/db", MARK));
    cli_fails_quietly(tu_fmt("postgresql://u:%s@no-such-host.invalid/db", MARK));
    /* wrong password: a role that must authenticate */
    tu_exec("DO $$ BEGIN CREATE ROLE pgq_pw_test LOGIN PASSWORD 'right'; EXCEPTION WHEN "
            "duplicate_object THEN NULL; END $$", 0, NULL);
    char *hba = tu_text("SHOW hba_file", 0, NULL);
    char *old = tu_slurp(hba);
    ck_assert_ptr_nonnull(old);
    char *with;   /* the file is longer than tu_fmt's buffers */
    ck_assert_int_gt(asprintf(&with, "host all pgq_pw_test 0.0.0.0/0 scram-sha-256\n%s", old),
                     0);
    tu_write_file(hba, with);
    free(with);
    tu_exec("SELECT pg_reload_conf()", 0, NULL);
    nanosleep(&(struct timespec){ 0, 300 * 1000 * 1000 }, NULL);
    const char *u = tu_db_url();
    const char *at = strchr(strstr(u, "://") + 3, '@');
    const char *wrong = tu_fmt("postgresql://pgq_pw_test:%s%s", MARK, at);
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run r = tu_run_cmd(dir, NULL, NULL, pgq, ARGV(pgq, "--db", wrong, "stats"), 60);
    /* restore before asserting, so a failure leaves the server as it was */
    tu_write_file(hba, old);
    tu_exec("SELECT pg_reload_conf()", 0, NULL);
    ck_assert_int_ne(r.code, 0);
    ck_assert_msg(strstr(r.err, "password authentication failed"), "not refused: %s", r.err);
    no_marker("pgq's stderr (wrong password)", r.err);
    tu_run_free(&r);
    tu_exec("DROP ROLE IF EXISTS pgq_pw_test", 0, NULL);
    free(old);
    free(hba);
}
END_TEST

/* The pool's log through the database going away and coming back (its
 * backends terminated: every connection fails and reconnects). */
START_TEST(reconnects_never_print_the_password)
{
    const char *ini = write_ini("[job t]\nhandler = exec /bin/true\n");
    const char *log = in_dir("pool.log");
    pid_t pid = start_pool(ini, ARGV("--db", url_with_password(NULL)), log);
    ck_assert_msg(wait_for(log, "pool: started ", 30000), "the pool did not start:\n%s",
                  slurp(log));
    tu_exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
            "pg_backend_pid() AND datname = current_database() AND backend_type = 'client "
            "backend'", 0, NULL);
    ck_assert_msg(wait_for(log, "reconnect", 30000), "no reconnect in the log:\n%s",
                  slurp(log));
    stop_pool(pid);
    char *text = slurp(log);
    no_marker("the pool's log", text);
    free(text);
}
END_TEST

Suite *secrets_suite(void)
{
    Suite *s = suite_create("secrets");
    TCase *tc = tcase_create("secrets");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pool_db_password_leaves_ps);
    tcase_add_test(tc, db_file_keeps_the_url_out_of_argv);
    tcase_add_test(tc, exec_handler_gets_the_whole_url);
    tcase_add_test(tc, failure_catalogue_never_prints_the_password);
    tcase_add_test(tc, reconnects_never_print_the_password);
    suite_add_tcase(s, tc);
    return s;
}
