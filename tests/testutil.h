/* Shared by the integration tests: the test database, raw SQL, resets.
 * All helpers ck_assert on failure, so a test never runs on a bad setup. */
#ifndef PGQ_TESTUTIL_H
#define PGQ_TESTUTIL_H

#include <check.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "pgq.h"

/* Generous per-test limit: tests assert outcomes, never speed. */
#define TU_TIMEOUT 600

const char *tu_db_url(void);
const char *tu_test_dir(void);      /* tests/ (PGQ_TEST_DIR) */
const char *tu_bin_dir(void);       /* where pgq is built (PGQ_BIN_DIR) */

pgq_conn *tu_connect(void);
PGconn *tu_pg(void);                /* a raw connection for checks, per process */

/* The test database's connection parameters with another dbname, as a
 * conninfo string (pgq_connect and --db take it); malloc'd. */
char *tu_db_url_for(const char *dbname);

/* Empty every pgq table (checked fixture: runs in the test's process). */
void tu_reset(void);

/* Run SQL with text params on pg; assert success and return the result
 * (the caller PQclears it). */
PGresult *tu_query(PGconn *pg, const char *sql, int n, const char *const *params);

/* The same on tu_pg(). Results: first column of the
 * first row as integer / malloc'd text (NULL for SQL NULL). */
void tu_exec(const char *sql, int n, const char *const *params);
long long tu_int(const char *sql, int n, const char *const *params);
char *tu_text(const char *sql, int n, const char *const *params);
/* Milliseconds of CLOCK_MONOTONIC, and a sleep of at least ms (EINTR resumed). */
int64_t tu_now_ms(void);
void tu_sleep_ms(long ms);

/* printf into one of a ring of buffers (per thread) for paths and SQL
 * params that live a few statements; asserts the text fits. */
const char *tu_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *tu_lld(long long v);

/* A whole file, malloc'd (asserts it can be read). */
char *tu_slurp(const char *path);

/* ---- processes and files (the tests that run programs) ---- */

/* Gone, or a zombie nobody reaped yet (the container's init may not reap,
 * and an orphan's reaper may be slow): dead either way. */
bool tu_pid_dead(pid_t pid);

/* Write text to path through a rename, so a reader (a handler script, a
 * pool reloading its config) never sees half of it; asserts it worked. */
void tu_write_file(const char *path, const char *text);

/* How many '\n' text holds / the file at path holds (0 if unreadable). */
int tu_count_lines(const char *text);
int tu_file_lines(const char *path);

/* What one run of a program produced; out and err are malloc'd and
 * NUL-terminated (tu_run_free). code: exit status, 128 + signal if killed. */
typedef struct tu_run {
    int code;
    char *out, *err;
} tu_run;

/* Run the program at path with argv (argv[0] included) to its end, stdin
 * from the file stdin_path (NULL: /dev/null), stdout and stderr captured. The child starts without
 * DATABASE_URL, PGQ_JOB_ID and PGQ_LEASE_TOKEN, so nothing leaks from the
 * test's environment; env then sets "K=V" entries and unsets bare "K" ones
 * (NULL: nothing more). cwd NULL: ours. It dies with the test process; the
 * test fails if it runs longer than timeout_s. */
tu_run tu_run_cmd(const char *cwd, const char *const *env, const char *stdin_path,
                  const char *path, const char *const *argv, int timeout_s);
void tu_run_free(tu_run *r);

/* Start path with argv in the background, stdin /dev/null, stdout and
 * stderr appended to log, the environment as tu_run_cmd sets it (env:
 * NAME=VALUE to set, NAME to unset; DATABASE_URL is unset first); it dies
 * with the test (PR_SET_PDEATHSIG). Returns its pid. */
pid_t tu_spawn_logged(const char *log, const char *const *env, const char *path,
                      const char *const *argv);

/* Run cmd with sh; what it printed (stdout and stderr together), malloc'd,
 * and *status its wait status (as pclose returns it). */
char *tu_sh(const char *cmd, int *status);
/* pgq-pool (in tu_bin_dir) was built to speak sd_notify: it loads
 * libsystemd.so.0 under systemd (pool/notify.c), so that name is in it. */
bool tu_pool_has_systemd(void);

/* Register a job type. require like "to:string,subject:string" or "". */
void tu_type(const char *type, const char *queue, const char *require, int max_retries,
             int64_t backoff_base_ms);

/* The migrations compiled in: how many, how many are newer than version
 * v, and the version before the newest. Versions may have gaps while
 * branches that each add one are merged (007 before 009 arrives), so
 * tests count the list instead of assuming 1..pgq_schema_version(). */
int tu_nmigrations(void);
int tu_nmigrations_after(int v);
int tu_prev_version(void);

/* Assert pgq.check_invariants() returns nothing (every integration test's
 * teardown, and the crash tests after each fault); the message lists the
 * violations. */
void tu_check_invariants(void);

/* Poll pgq_reap until it reaped at least `want` jobs (bounded: 60 s). */
void tu_reap_until(pgq_conn *c, int want);

/* Wait for all threads of a group to arrive (a start line for races). */
typedef struct tu_barrier tu_barrier;
tu_barrier *tu_barrier_new(int n);
void tu_barrier_wait(tu_barrier *b);
void tu_barrier_free(tu_barrier *b);

Suite *migrate_suite(void);
Suite *enqueue_suite(void);
Suite *claim_suite(void);
Suite *lease_suite(void);
Suite *once_suite(void);
Suite *admin_suite(void);
Suite *cli_suite(void);
Suite *pool_suite(void);
Suite *limits_suite(void);
Suite *events_suite(void);
Suite *pgbouncer_suite(void);
Suite *config_suite(void);
Suite *duration_suite(void);
Suite *exec_suite(void);
Suite *utf8_suite(void);
Suite *dburl_suite(void);
Suite *log_suite(void);
Suite *docs_suite(void);
Suite *slot_suite(void);
Suite *cron_suite(void);
Suite *cron_db_suite(void);
Suite *layout_suite(void);
Suite *typed_suite(void);      /* the typed job map (pgq types header), no database */
Suite *typed_db_suite(void);   /* ... and its round trip through a database */
Suite *tui_model_suite(void);
Suite *tui_e2e_suite(void);
Suite *notify_suite(void);
Suite *top_once_suite(void);
Suite *state_suite(void);
Suite *upgrade_suite(void);
Suite *results_suite(void);
Suite *deps_suite(void);
Suite *secrets_suite(void);
Suite *roles_suite(void);
Suite *chaos_suite(void);
Suite *failover_suite(void);
Suite *badinput_suite(void);

#endif
