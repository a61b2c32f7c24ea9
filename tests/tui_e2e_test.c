/* pgq top end to end, in a real terminal: the real binary runs in a
 * detached tmux session on a private server (tmux -L pgqtest-<pid>, no
 * terminal needed), the screen is read back with capture-pane and driven
 * with send-keys. Every wait polls the screen with a bound (20 s) and
 * never asserts timing. Covers: dead letters and their last errors listed;
 * R then y requeues them (the database agrees, the screen updates, the
 * action is recorded); Enter shows a job's attempt history; resizing to
 * 80x24 and back keeps the frame; q exits 0 and SIGTERM ends it cleanly,
 * both with the terminal restored (alternate screen off, the text from
 * before the dashboard visible again); a read-only role is told so. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char sock[64];
static char exitfile[128], pidfile[128];

static void setup(void)
{
    tu_reset();
    snprintf(sock, sizeof sock, "pgqtest-%d", (int)getpid());
    snprintf(exitfile, sizeof exitfile, "/tmp/pgq-tui-%d.exit", (int)getpid());
    snprintf(pidfile, sizeof pidfile, "/tmp/pgq-tui-%d.pid", (int)getpid());
    unlink(exitfile);
    unlink(pidfile);
}

static void teardown(void)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "tmux -L %s kill-server >/dev/null 2>&1", sock);
    if (system(cmd) < 0)
        perror("tmux kill-server");
    unlink(exitfile);
    unlink(pidfile);
    tu_check_invariants();
}

/* Run a tmux command on the private server; assert it worked. */
static void tmux(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tmux(const char *fmt, ...)
{
    char args[2048], cmd[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "tmux -L %s %s", sock, args);
    int rc = system(cmd);
    ck_assert_msg(rc == 0, "failed (%d): %s", rc, cmd);
}

/* Output of a tmux command (malloc'd). */
static char *tmux_out(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tmux -L %s %s 2>/dev/null", sock, args);
    FILE *f = popen(cmd, "r");
    ck_assert_ptr_nonnull(f);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0)
        n += got;
    buf[n] = '\0';
    pclose(f);
    return buf;
}

static char *screen(void)
{
    return tmux_out("capture-pane -p -t top");
}

/* Wait until the screen shows every one of the NULL-terminated texts;
 * returns the screen (malloc'd). Fails with the last screen after 20 s. */
static char *wait_for(const char *first, ...)
{
    const char *want[16];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *w = first; w && n < 16; w = va_arg(ap, const char *))
        want[n++] = w;
    va_end(ap);
    char *s = NULL;
    for (int i = 0; i < 200; i++) {
        free(s);
        s = screen();
        size_t ok = 0;
        while (ok < n && strstr(s, want[ok]))
            ok++;
        if (ok == n)
            return s;
        tu_sleep_ms(100);
    }
    for (size_t k = 0; k < n; k++)
        ck_assert_msg(strstr(s, want[k]), "the screen never showed \"%s\":\n%s", want[k], s);
    return s;
}

static void keys(const char *k)
{
    tmux("send-keys -t top %s", k);
}

/* Start pgq top (as `url`) in a session of w x h, after printing a marker
 * line, writing its pid and, when it ends, its exit status to files. */
static void start_top(const char *url, int w, int h)
{
    tmux("new-session -d -s top -x %d -y %d \"sh -c 'echo BEFORE-TOP; echo \\$\\$ > %s;"
         " exec %s/pgq top --db \\\"%s\\\" --refresh 300ms' ; echo EXIT=\\$? > %s; sleep 600\"",
         w, h, pidfile, tu_bin_dir(), url, exitfile);
    free(wait_for(" pgq top ", "1 Overview", NULL));
}

/* The dashboard's exit status (from the file), waiting for it. */
static int exit_status(void)
{
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(exitfile, "r");
        int code = -1;
        if (f) {
            int got = fscanf(f, "EXIT=%d", &code);
            fclose(f);
            if (got == 1)
                return code;
        }
        tu_sleep_ms(100);
    }
    ck_abort_msg("pgq top did not exit");
    return -1;
}

/* After the dashboard ended: the alternate screen is off and the line
 * printed before it started is visible again. */
static void assert_terminal_restored(void)
{
    char *alt = tmux_out("display -p -t top '#{alternate_on}'");
    ck_assert_msg(alt[0] == '0', "alternate screen still on: %s", alt);
    free(alt);
    char *s = screen();
    ck_assert_msg(strstr(s, "BEFORE-TOP"), "the shell's screen is not back:\n%s", s);
    ck_assert_msg(!strstr(s, "1 Overview"), "the dashboard is still on screen:\n%s", s);
    free(s);
}

/* A job of type t that failed `fails` times, the last time for good. */
static int64_t dead_job(const char *t, int fails, const char *prefix)
{
    char err[512], msg[128];
    pgq_conn *c = tu_connect();
    pgq_add_result res;
    ck_assert_msg(pgq_add(c, t, "{\"user\":\"ada\"}", NULL, &res, err, sizeof err) == 0, "%s", err);
    for (int i = 1; i <= fails; i++) {
        const char *q[] = { "tuiq" };
        pgq_job *j = NULL;
        ck_assert_msg(pgq_claim(c, q, 1, "tuihost:1:w0", 30000, &j, err, sizeof err) == 0 && j,
                      "claim: %s", err);
        snprintf(msg, sizeof msg, "%s (attempt %d)", prefix, i);
        pgq_fail_result fr;
        ck_assert(pgq_fail(c, j->id, j->lease_token, msg, NULL, &fr, err, sizeof err) == 0);
        ck_assert_int_eq(fr.dead, i == fails);
        pgq_job_free(j);
    }
    pgq_disconnect(c);
    return res.id;
}

START_TEST(dead_letters_requeue_all)
{
    tu_type("tui-e2e", "tuiq", "", 0, 0);
    dead_job("tui-e2e", 1, "disk full on /var/spool");
    dead_job("tui-e2e", 1, "connection refused by smtp.example");
    dead_job("tui-e2e", 1, "template welcome.txt missing");
    start_top(tu_db_url(), 100, 30);
    keys("3");
    free(wait_for("DEAD LETTERS 3", "disk full on /var/spool (attempt 1)",
                  "connection refused by smtp.example", "template welcome.txt missing", NULL));
    keys("R");
    free(wait_for("Requeue all 3 dead jobs? (y/N)", NULL));
    keys("y");
    free(wait_for("requeued 3 dead jobs", "no dead letters", "DEAD LETTERS 0", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'", 0, NULL), 3);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'dead'", 0, NULL), 0);
    ck_assert_int_eq(tu_int("SELECT job_count FROM pgq.actions WHERE action = 'requeue'"
                            " AND detail = 'pgq top' AND db_user = current_user", 0, NULL), 3);
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
    assert_terminal_restored();
}
END_TEST

/* Any answer but y does nothing. */
START_TEST(requeue_needs_yes)
{
    tu_type("tui-e2e", "tuiq", "", 0, 0);
    int64_t id = dead_job("tui-e2e", 1, "kaput");
    start_top(tu_db_url(), 100, 30);
    keys("3");
    free(wait_for("DEAD LETTERS 1", "kaput", NULL));
    keys("r");
    char q[64];
    snprintf(q, sizeof q, "Requeue job %" PRId64 "? (y/N)", id);
    free(wait_for(q, NULL));
    keys("n");
    free(wait_for("nothing done", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'dead'", 0, NULL), 1);
    keys("r");
    free(wait_for(q, NULL));
    keys("y");
    free(wait_for("requeued 1 of 1 job", "no dead letters", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'ready'", 0, NULL), 1);
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
}
END_TEST

START_TEST(detail_shows_history)
{
    tu_type("tui-e2e", "tuiq", "", 2, 0);
    int64_t id = dead_job("tui-e2e", 3, "upstream said 503");
    start_top(tu_db_url(), 100, 30);
    keys("3");
    free(wait_for("DEAD LETTERS 1", NULL));
    keys("Enter");
    char title[64];
    snprintf(title, sizeof title, "job %" PRId64 "  type tui-e2e", id);
    free(wait_for(title, "ATTEMPTS (3)", "upstream said 503 (attempt 1)",
                  "upstream said 503 (attempt 2)", "\"user\": \"ada\"", NULL));
    keys("Escape");
    free(wait_for("DEAD LETTERS 1", NULL));
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
}
END_TEST

/* A done job's detail shows its result (and the note of a cut one). */
START_TEST(detail_shows_result)
{
    tu_type("tui-e2e", "tuiq", "", 2, 0);
    int64_t id = tu_int("SELECT id FROM pgq.add('tui-e2e', '{}')", 0, NULL);
    char *tok = tu_text("SELECT lease_token FROM pgq.claim('{tuiq}')", 0, NULL);
    ck_assert_ptr_nonnull(tok);
    const char *p[] = { tu_lld(id), tok };
    tu_exec("SELECT pgq.complete($1, $2, result => 'thumbnail at s3://b/42.png')", 2, p);
    free(tok);
    start_top(tu_db_url(), 100, 30);
    keys("4");
    free(wait_for("tui-e2e", NULL));
    keys("Enter");
    char title[64];
    snprintf(title, sizeof title, "job %" PRId64 "  type tui-e2e", id);
    free(wait_for(title, "RESULT", "thumbnail at s3://b/42.png", NULL));
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
}
END_TEST

START_TEST(resize_and_back)
{
    tu_type("tui-e2e", "tuiq", "", 0, 0);
    dead_job("tui-e2e", 1, "boom");
    start_top(tu_db_url(), 100, 30);
    free(wait_for("QUEUE", "tuiq", "POOLS", NULL));
    tmux("resize-window -t top -x 80 -y 24");
    char *s = wait_for("? help  q quit", NULL);
    char *size = tmux_out("display -p -t top '#{window_width}x#{window_height}'");
    ck_assert_str_eq(size, "80x24\n");
    free(size);
    free(s);
    s = wait_for(" pgq top ", "QUEUE", "tuiq", "? help  q quit", NULL);
    /* the status line is on the last row of 24 */
    int rows = 0;
    for (char *p = s; *p; p++)
        rows += *p == '\n';
    ck_assert_int_eq(rows, 24);
    char *end = strrchr(s, '\n');
    *end = '\0';
    char *last = strrchr(s, '\n');
    ck_assert_msg(last && strstr(last, "q quit"), "the status line is not the last row:\n%s", s);
    free(s);
    keys("3");
    free(wait_for("DEAD LETTERS 1", "boom", NULL));
    tmux("resize-window -t top -x 120 -y 40");
    free(wait_for(" pgq top ", "DEAD LETTERS 1", "boom", "? help  q quit", NULL));
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
    assert_terminal_restored();
}
END_TEST

START_TEST(sigterm_restores_terminal)
{
    start_top(tu_db_url(), 100, 30);
    free(wait_for("QUEUE", NULL));
    long pid = 0;
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld", &pid), 1);
    fclose(f);
    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill((pid_t)pid, SIGTERM), 0);
    ck_assert_int_eq(exit_status(), 0);
    assert_terminal_restored();
}
END_TEST

START_TEST(read_only_role_is_refused)
{
    if (tu_int("SELECT rolsuper::int FROM pg_roles WHERE rolname = current_user", 0, NULL) != 1)
        return;
    tu_exec("DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'pgq_tui_ro') THEN"
            " CREATE ROLE pgq_tui_ro LOGIN; END IF; END$$", 0, NULL);
    /* a viewer (README, "Roles and grants"): reads, may not act */
    tu_exec("DO $$BEGIN IF NOT pg_has_role('pgq_tui_ro', 'pgq_viewer', 'MEMBER') THEN"
            " GRANT pgq_viewer TO pgq_tui_ro; END IF; END$$", 0, NULL);
    tu_type("tui-e2e", "tuiq", "", 0, 0);
    dead_job("tui-e2e", 1, "nope");
    char *url = tu_text("SELECT $1::text || CASE WHEN $1 LIKE '%?%' THEN '&' ELSE '?' END"
                        " || 'user=pgq_tui_ro'", 1, (const char *[]){ tu_db_url() });
    start_top(url, 100, 30);
    free(wait_for("READ-ONLY", "pgq_tui_ro (read-only)", NULL));
    keys("3");
    free(wait_for("DEAD LETTERS 1", NULL));
    keys("R");
    free(wait_for("read-only: database role \"pgq_tui_ro\" may not change jobs", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE state = 'dead'", 0, NULL), 1);
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
    free(url);
}
END_TEST

/* Reopening / starts empty (typing used to append to the old filter:
 * "queue:tuiqstate:bogus"), and an unknown state is named with the states
 * there are (it used to say only "no job matches"). */
START_TEST(filter_reopens_empty_and_names_bad_state)
{
    tu_type("tui-e2e", "tuiq", "", 0, 0);
    dead_job("tui-e2e", 1, "gone");
    start_top(tu_db_url(), 100, 30);
    keys("4");
    free(wait_for("JOBS 1", NULL));
    keys("/");
    free(wait_for("filter (queue:Q type:T state:S text):", NULL));
    keys("queue:tuiq Enter");
    free(wait_for("filter applied", "filter: queue:tuiq", "JOBS 1", NULL));
    keys("/");
    keys("state:bogus");
    char *s = wait_for("filter (now queue:tuiq; empty clears, Esc keeps): state:bogus", NULL);
    ck_assert_ptr_null(strstr(s, "queue:tuiqstate"));
    ck_assert_ptr_null(strstr(s, "queue:tuiq state:bogus"));
    free(s);
    keys("Enter");
    free(wait_for("unknown state \"bogus\": waiting, ready, scheduled, running, done, dead, cancelled",
                  NULL));
    /* Esc keeps the filter in force */
    keys("Escape");
    free(wait_for("filter: queue:tuiq", "JOBS 1", NULL));
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
}
END_TEST

/* p on the Overview's queue row pauses the queue after a y, and again
 * resumes it; the row is marked; ? lists the key; no pool claims: "!". */
START_TEST(pause_and_resume_a_queue)
{
    tu_type("tui-e2e", "tuiq", "", 0, 0);
    pgq_conn *c = tu_connect();
    char err[512];
    pgq_add_result res;
    ck_assert(pgq_add(c, "tui-e2e", "{}", NULL, &res, err, sizeof err) == 0);
    pgq_disconnect(c);
    start_top(tu_db_url(), 100, 30);
    free(wait_for("! tuiq", "! no live pool serves it", NULL));
    keys("?");
    free(wait_for("pause / resume the queue under the cursor", NULL));
    keys("Escape");
    keys("p");
    free(wait_for("Pause queue \"tuiq\"? No pool claims from it; running jobs finish. (y/N)",
                  NULL));
    keys("n");
    free(wait_for("nothing done", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.queues WHERE paused", 0, NULL), 0);
    keys("p");
    free(wait_for("Pause queue \"tuiq\"?", NULL));
    keys("y");
    free(wait_for("queue tuiq paused: no pool claims from it", "P tuiq", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.queues WHERE paused AND queue = 'tuiq'", 0,
                            NULL), 1);
    keys("p");
    free(wait_for("Resume queue \"tuiq\"? Pools claim from it again. (y/N)", NULL));
    keys("y");
    free(wait_for("queue tuiq resumed", "! tuiq", NULL));
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.queues WHERE paused", 0, NULL), 0);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.actions WHERE action IN ('pause', 'resume')"
                            " AND detail LIKE 'pgq top%'", 0, NULL), 2);
    keys("q");
    ck_assert_int_eq(exit_status(), 0);
}
END_TEST

Suite *tui_e2e_suite(void)
{
    Suite *s = suite_create("tui_e2e");
    TCase *tc = tcase_create("tmux");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, dead_letters_requeue_all);
    tcase_add_test(tc, requeue_needs_yes);
    tcase_add_test(tc, detail_shows_history);
    tcase_add_test(tc, detail_shows_result);
    tcase_add_test(tc, resize_and_back);
    tcase_add_test(tc, sigterm_restores_terminal);
    tcase_add_test(tc, read_only_role_is_refused);
    tcase_add_test(tc, filter_reopens_empty_and_names_bad_state);
    tcase_add_test(tc, pause_and_resume_a_queue);
    suite_add_tcase(s, tc);
    return s;
}
