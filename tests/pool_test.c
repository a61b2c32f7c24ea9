/* Crash and fault tests of pgq-pool (DESIGN.md promises 3-10, "Runtime"):
 * real pgq-pool processes against a real PostgreSQL. Each test writes its
 * pool.ini and handler scripts into a temp dir, starts pools with
 * fork+exec (stdout and stderr to a log file that is printed when a check
 * fails), does harm — kill -9, SIGTERM, SIGSTOP, pg_terminate_backend, a
 * PostgreSQL restart, a hanging handler, a reload — and then asserts
 * outcomes in the database and on the processes. Waits are bounded (60 s)
 * and nothing asserts a timing; the figures that matter (recovery after
 * kill -9, drain times, the scale run) are printed as "pool_test: ...".
 * Every pool gets PR_SET_PDEATHSIG, so a failing test, whose process exits
 * at once, takes its pools (and their handlers) with it. Handlers are sh
 * scripts written by the tests and tests/plugins/pool_plugin.c.
 * PGQ_POOL_SCALE_JOBS=N shrinks the scale run (e.g. under a sanitizer);
 * PGQ_POOL_TEST_KEEP=1 keeps the temp dir with the pools' logs.
 *
 *   crash    kill -9 with exec jobs in flight: the handlers die with the
 *            pool, a second pool finishes the jobs after lease expiry
 *   drain    SIGTERM: short jobs finish, long ones (exec, in-process,
 *            in-process ignoring the cancel) are released, a second SIGTERM
 *            exits at once and the leases are reclaimed
 *   faults   pg_terminate_backend of every pool connection, a PostgreSQL
 *            restart, the database closed for longer than a lease, a
 *            hanging exec handler killed at its timeout
 *   fencing  a pool frozen with SIGSTOP past its lease changes nothing
 *            (exec handler with pgq once, plugin with run_once)
 *   scale    3 pools x 4 workers, 20,000 jobs, 10% failures, run_once
 *            effects checked against a ledger, one pool killed midway
 *   idle     an idle pool does not spin
 *   config   bad files, --check, usage
 *   embed    examples/embed-demo
 *   reload   SIGHUP adds a job type without dropping in-flight jobs
 *   metrics  a scrape of metrics_listen, checked by promtool and against the jobs run */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define WAIT_MS 60000

/* ---- time, strings, files ------------------------------------------------ */

/* Evaluate cond every 25 ms until it holds or ms pass; its last value. */
#define WAIT_UNTIL(cond, ms)                                                                 \
    ({                                                                                       \
        int64_t end_ = tu_now_ms() + (ms);                                                      \
        bool ok_;                                                                            \
        while (!(ok_ = (cond)) && tu_now_ms() < end_)                                           \
            tu_sleep_ms(25);                                                                    \
        ok_;                                                                                 \
    })


/* The suite's temp dir (made and removed by the runner process, an
 * unchecked fixture) and the test's own dir inside it. */
static char suite_dir[64];
static char dir[128];

static const char *in_dir(const char *name)
{
    return tu_fmt("%s/%s", dir, name);
}

/* The whole file, malloc'd; NULL if it cannot be read. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 8192, n = 0, r;
    char *b = malloc(cap);
    ck_assert_ptr_nonnull(b);
    while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n < 4096) {
            cap *= 2;
            b = realloc(b, cap);
            ck_assert_ptr_nonnull(b);
        }
    }
    fclose(f);
    b[n] = '\0';
    return b;
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* How many handlers wrote their started-ID-ATTEMPT file into the test dir. */
static int started_files(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, "started-", 8) == 0;
    if (d)
        closedir(d);
    return n;
}

/* An executable sh script in the test dir; $D is the dir, $PGQ the pgq CLI.
 * Files it writes for the test go through a rename, so the test never reads
 * half a pid. */
static const char *script(const char *name, const char *body)
{
    const char *path = in_dir(name);
    tu_write_file(path, tu_fmt("#!/bin/sh\nD='%s'\nPGQ='%s/pgq'\n"
                               "put() { echo \"$2\" > \"$D/$1.tmp\" && mv \"$D/$1.tmp\" \"$D/$1\"; }\n%s",
                               dir, tu_bin_dir(), body));
    ck_assert_int_eq(chmod(path, 0755), 0);
    return path;
}

static const char *plugin(void)
{
    const char *p = tu_fmt("%s/tests/plugins/pool_plugin.so", tu_bin_dir());
    ck_assert_msg(exists(p), "%s is not built (make builds tests/plugins/*.c)", p);
    return p;
}

/* The mode of the pools a test starts: 0 writes no `batch` key (the
 * default, adaptive), 1 is strict; the "strict" group sets it in its
 * fixture (each test runs in a child of its own). */
static int g_batch;

static void strict_mode(void)
{
    g_batch = 1;
}

/* A pool.ini with the test timings: leases of 1 s renewed every 200 ms,
 * a 100 ms fallback poll. batch 0: no batch key. jobs: the [job ...]
 * sections. */
static const char *pool_ini_batch(const char *name, int workers, int batch,
                                  const char *shutdown_timeout, const char *jobs)
{
    const char *path = in_dir(name);
    tu_write_file(path, tu_fmt("[pool]\nworkers = %d\n%slease_ttl = 1s\nheartbeat = 200ms\n"
                               "poll = 100ms\nshutdown_timeout = %s\n\n%s",
                               workers, batch ? tu_fmt("batch = %d\n", batch) : "",
                               shutdown_timeout, jobs));
    return path;
}

static const char *pool_ini(const char *name, int workers, const char *shutdown_timeout,
                            const char *jobs)
{
    return pool_ini_batch(name, workers, g_batch, shutdown_timeout, jobs);
}

/* ---- processes ------------------------------------------------------------ */

static pid_t read_pid(const char *name)
{
    char *s = read_file(in_dir(name));
    ck_assert_msg(s != NULL, "no pid file %s", name);
    pid_t pid = (pid_t)strtol(s, NULL, 10);
    free(s);
    ck_assert_int_gt(pid, 1);
    return pid;
}

static pid_t parent_of(pid_t pid)
{
    char buf[512];
    FILE *f = fopen(tu_fmt("/proc/%d/stat", (int)pid), "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    int ppid = -1;
    return rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 ? (pid_t)ppid : -1;
}

struct pool {
    pid_t pid;
    char name[32];
    char log[160];
    bool exited;
    int status;
};

static struct pool pools[8];
static int npools;

static char *pool_log(const struct pool *p)
{
    char *s = read_file(p->log);
    return s ? s : strdup("");
}

static int log_count(const struct pool *p, const char *needle)
{
    char *s = pool_log(p);
    int n = 0;
    for (char *q = s; (q = strstr(q, needle)) != NULL; q += strlen(needle))
        n++;
    free(s);
    return n;
}

/* Print the last lines of every pool's log and the job counts: called
 * before a failing check aborts the test. */
static void dump_logs(void)
{
    for (int i = 0; i < npools; i++) {
        char *s = pool_log(&pools[i]), *start = s + strlen(s);
        for (int lines = 0; start > s && lines <= 80; start--)
            lines += start[-1] == '\n';
        fprintf(stderr, "---- pool %s (pid %d), log %s:\n%s", pools[i].name, (int)pools[i].pid,
                pools[i].log, start);
        free(s);
    }
    PGresult *r = PQexec(tu_pg(), "SELECT state, count(*) FROM pgq.jobs GROUP BY 1 ORDER BY 1");
    for (int i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++)
        fprintf(stderr, "---- jobs %s: %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
    PQclear(r);
}

#define P_ASSERT(cond, ...)                                                                  \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            dump_logs();                                                                     \
            ck_abort_msg(__VA_ARGS__);                                                       \
        }                                                                                    \
    } while (0)

/* True once the pool process has exited (and then reaped: status kept). */
static bool pool_gone(struct pool *p)
{
    int st;
    if (!p->exited && waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->exited = true;
        p->status = st;
    }
    return p->exited;
}

static const char *status_text(int st)
{
    if (WIFEXITED(st))
        return tu_fmt("exit status %d", WEXITSTATUS(st));
    if (WIFSIGNALED(st))
        return tu_fmt("killed by signal %d", WTERMSIG(st));
    return tu_fmt("status 0x%x", st);
}

/* Start pgq-pool -c ini --db URL, dying with this test process; returns
 * once it logged that it started. */
/* Start pgq-pool -c ini and wait until it says it started or exits. */
static struct pool *pool_try_start(const char *name, const char *ini)
{
    ck_assert_int_lt(npools, (int)(sizeof pools / sizeof pools[0]));
    /* Counted only once it has a pid (below): kill_pools() must never see
     * pid 0, as kill(0, SIGKILL) would kill this test's process group --
     * the runner and make with it. */
    struct pool *p = &pools[npools];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->log, sizeof p->log, "%s/%s.log", dir, name);
    const char *bin = tu_fmt("%s/pgq-pool", tu_bin_dir());
    const char *url = tu_db_url();
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        unsetenv("DATABASE_URL");
        execl(bin, "pgq-pool", "-c", ini, "--db", url, (char *)NULL);
        dprintf(2, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    npools++;
    WAIT_UNTIL(log_count(p, "pool: started ") > 0 || pool_gone(p), WAIT_MS);
    return p;
}

static struct pool *pool_start(const char *name, const char *ini)
{
    struct pool *p = pool_try_start(name, ini);
    bool up = log_count(p, "pool: started ") > 0 && !pool_gone(p);
    P_ASSERT(up, "pool %s did not start (%s)", name,
             p->exited ? status_text(p->status) : "still starting after 60 s");
    return p;
}

static void pool_signal(struct pool *p, int sig)
{
    P_ASSERT(!pool_gone(p), "pool %s already gone (%s)", p->name, status_text(p->status));
    ck_assert_int_eq(kill(p->pid, sig), 0);
}

/* A pool that exits at once (second signal) leaves its threads unjoined,
 * by design: ThreadSanitizer's "thread leak" is no fault then. */
static bool allow_thread_leak;

/* The first sanitizer report line in the pool's log, or NULL. */
static const char *sanitizer_report(const struct pool *p)
{
    char *s = pool_log(p), *save = NULL;
    const char *found = NULL;
    for (char *line = strtok_r(s, "\n", &save); line && !found; line = strtok_r(NULL, "\n", &save))
        if ((strncmp(line, "WARNING: ", 9) == 0 || strncmp(line, "ERROR: ", 7) == 0 ||
             strncmp(line, "==", 2) == 0) && strstr(line, "Sanitizer") &&
            !(allow_thread_leak && strstr(line, "thread leak")))
            found = tu_fmt("%s", line);
    free(s);
    return found;
}

/* Wait for the pool to exit; assert it did, with status `want_code`
 * (-1: any non-zero exit). Returns how long it took. */
static int64_t pool_wait_exit(struct pool *p, int want_code)
{
    int64_t t0 = tu_now_ms();
    P_ASSERT(WAIT_UNTIL(pool_gone(p), WAIT_MS), "pool %s did not exit within 60 s", p->name);
    int64_t took = tu_now_ms() - t0;
    bool ok = WIFEXITED(p->status) &&
              (want_code < 0 ? WEXITSTATUS(p->status) != 0 : WEXITSTATUS(p->status) == want_code);
    P_ASSERT(ok, "pool %s: %s, want %s", p->name, status_text(p->status),
             want_code < 0 ? "a non-zero exit" : tu_fmt("exit status %d", want_code));
    /* under SANITIZER=address|thread a report is a failure too */
    const char *report = sanitizer_report(p);
    P_ASSERT(!report, "pool %s: sanitizer report in its log: %s", p->name, report);
    return took;
}

static void kill_pools(void)
{
    for (int i = 0; i < npools; i++) {
        if (!pools[i].exited && pools[i].pid > 0) {
            kill(pools[i].pid, SIGKILL);
            waitpid(pools[i].pid, NULL, 0);
            pools[i].exited = true;
        }
    }
    npools = 0;
}

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* ---- the database ---------------------------------------------------------- */

static long long q0(const char *sql)
{
    return tu_int(sql, 0, NULL);
}

static long long q1(const char *sql, long long a)
{
    const char *p[] = { tu_lld(a) };
    return tu_int(sql, 1, p);
}

/* Text result of sql with one integer param, in a tu_fmt() buffer. */
static const char *t1(const char *sql, long long a)
{
    const char *p[] = { tu_lld(a) };
    char *v = tu_text(sql, 1, p);
    const char *r = tu_fmt("%s", v ? v : "(null)");
    free(v);
    return r;
}

/* A job's history: "attempt:outcome:error" per attempt, in order. */
static const char *history(long long id)
{
    return t1("SELECT coalesce(string_agg(attempt || ':' || outcome || ':' || coalesce(error, ''),"
              " ',' ORDER BY id), '') FROM pgq.job_attempts WHERE job_id = $1", id);
}

/* Done at its first attempt by an exec handler: no history row, its RSS on
 * the job row (migration 017). */
static bool exec_done_first_time(long long id)
{
    return q1("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND state = 'done' AND attempts = 1"
              " AND max_rss_kb > 0 AND NOT EXISTS (SELECT 1 FROM pgq.job_attempts a"
              " WHERE a.job_id = $1)", id) == 1;
}

static const char *job_state(long long id)
{
    return t1("SELECT state FROM pgq.jobs WHERE id = $1", id);
}

static long long njobs(const char *state)
{
    const char *p[] = { state };
    return tu_int("SELECT count(*) FROM pgq.jobs WHERE state = $1", 1, p);
}

static long long nfinished(void)
{
    return q0("SELECT count(*) FROM pgq.jobs WHERE state IN ('done', 'dead')");
}

static long long add_job(const char *type, const char *payload)
{
    char err[512];
    pgq_add_result r;
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_add(c, type, payload, NULL, &r, err, sizeof err) == 0, "add: %s", err);
    pgq_disconnect(c);
    return r.id;
}

/* n jobs of one type and payload, in batches of 1000. */
static void add_jobs(const char *type, const char *payload, int n)
{
    char err[512];
    static pgq_add_item items[1000];
    static pgq_add_result res[1000];
    pgq_conn *c = tu_connect();
    for (int done = 0; done < n;) {
        int k = n - done < 1000 ? n - done : 1000;
        for (int i = 0; i < k; i++)
            items[i] = (pgq_add_item){ type, payload, PGQ_ADD_OPTS_INIT };
        ck_assert_msg(pgq_add_batch(c, items, (size_t)k, res, err, sizeof err) == 0, "add: %s",
                      err);
        done += k;
    }
    pgq_disconnect(c);
}

/* The pool is registered in pgq.workers. */
static long long registered(const struct pool *p)
{
    return q1("SELECT count(*) FROM pgq.workers WHERE pid = $1", p->pid);
}

/* Wait until no job is ready or running, failing only when nothing has
 * moved for 60 s (a big run may take longer than that in all). */
static void wait_all_finished(long long total)
{
    long long last = -1;
    int64_t moved = tu_now_ms();
    for (;;) {
        long long fin = nfinished();
        if (fin == total)
            return;
        if (fin != last) {
            last = fin;
            moved = tu_now_ms();
        }
        P_ASSERT(tu_now_ms() - moved < WAIT_MS, "stuck at %lld of %lld jobs finished for 60 s", fin,
                 total);
        tu_sleep_ms(100);
    }
}

/* The run_once checks against test_ledger: no effect twice, every effect
 * recorded done has its row, and every done job has its effect (unless its
 * payload says "effect": 0), or else an effect in doubt (a worker died, or
 * its connection broke, inside it: not run again, by design). Returns how
 * many done jobs have an effect in doubt. */
static long long check_ledger(void)
{
    long long rows = q0("SELECT count(*) FROM test_ledger");
    long long distinct = q0("SELECT count(*) FROM (SELECT DISTINCT job_id, key FROM test_ledger)"
                            " x");
    P_ASSERT(rows == distinct, "an effect ran twice: %lld ledger rows, %lld distinct", rows,
             distinct);
    long long missing = q0("SELECT count(*) FROM pgq.effects e WHERE e.state = 'done' AND NOT "
                           "EXISTS (SELECT 1 FROM test_ledger l WHERE l.job_id = e.job_id)");
    P_ASSERT(missing == 0, "%lld effects recorded done have no ledger row", missing);
    long long stray = q0("SELECT count(*) FROM test_ledger l WHERE NOT EXISTS (SELECT 1 FROM "
                         "pgq.effects e WHERE e.job_id = l.job_id AND e.key = l.key)");
    P_ASSERT(stray == 0, "%lld ledger rows without a run_once record", stray);
    long long lost = q0("SELECT count(*) FROM pgq.jobs j WHERE j.state = 'done'"
                        " AND coalesce(j.payload->>'effect', '1') <> '0'"
                        " AND NOT EXISTS (SELECT 1 FROM test_ledger l WHERE l.job_id = j.id)"
                        " AND NOT EXISTS (SELECT 1 FROM pgq.effects_in_doubt d"
                        "  WHERE d.job_id = j.id)");
    P_ASSERT(lost == 0, "%lld done jobs have no effect (and none in doubt)", lost);
    long long twice = q0("SELECT count(*) FROM (SELECT job_id FROM pgq.job_attempts WHERE outcome "
                         "= 'done' GROUP BY job_id HAVING count(*) > 1) x");
    P_ASSERT(twice == 0, "%lld jobs have more than one done attempt", twice);
    return q0("SELECT count(*) FROM pgq.jobs j WHERE j.state = 'done' AND EXISTS (SELECT 1 FROM "
              "pgq.effects_in_doubt d WHERE d.job_id = j.id)");
}

/* ---- fixtures -------------------------------------------------------------- */

static void make_suite_dir(void)
{
    snprintf(suite_dir, sizeof suite_dir, "/tmp/pgq-pool-test.XXXXXX");
    if (!mkdtemp(suite_dir)) {
        perror("pool_test: mkdtemp");
        abort();
    }
}

/* PGQ_POOL_TEST_KEEP=1 keeps the dir (pool logs, scripts) for a look. */
static void remove_suite_dir(void)
{
    char cmd[128];
    const char *keep = getenv("PGQ_POOL_TEST_KEEP");
    if (keep && *keep && strcmp(keep, "0") != 0) {
        fprintf(stderr, "pool_test: kept %s\n", suite_dir);
        return;
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", suite_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pool_test: could not remove %s\n", suite_dir);
}

static bool allow_connections(bool allow, char *why, size_t whylen);

static void setup(void)
{
    char why[512];
    (void)allow_connections(true, why, sizeof why);   /* whatever a failed test left */
    snprintf(dir, sizeof dir, "%s/%d", suite_dir, (int)getpid());
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    npools = 0;
    tu_reset();
    tu_exec("CREATE TABLE IF NOT EXISTS test_ledger (job_id bigint, key text)", 0, NULL);
    tu_exec("TRUNCATE test_ledger", 0, NULL);
}

static void teardown(void)
{
    kill_pools();
    tu_exec("DROP TABLE IF EXISTS test_ledger", 0, NULL);
    tu_check_invariants();
}

/* ---- crash: kill -9 ------------------------------------------------------- */

/* Attempt 1 starts a grandchild, writes both pids and hangs; later
 * attempts succeed. */
static const char *hang_then_succeed(void)
{
    return script("hang.sh",
                  "if [ \"$PGQ_ATTEMPT\" -gt 1 ]; then exit 0; fi\n"
                  "sleep 1000 &\n"
                  "put gc-$PGQ_JOB_ID $!\n"
                  "put sh-$PGQ_JOB_ID $$\n"
                  "wait\n");
}

START_TEST(kill9_handlers_die_and_jobs_recover)
{
    const char *ini = pool_ini("a.ini", 3, "30s",
                               tu_fmt("[job hang]\nhandler = exec %s\nmax_retries = 3\n"
                                   "backoff_base = 0\n", hang_then_succeed()));
    struct pool *a = pool_start("a", ini);
    long long ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = add_job("hang", "{}");
    pid_t procs[9];
    const char *what[9];
    int nprocs = 0;
    for (int i = 0; i < 3; i++) {
        const char *sh = tu_fmt("sh-%lld", ids[i]);
        P_ASSERT(WAIT_UNTIL(exists(in_dir(sh)), WAIT_MS), "job %lld's handler did not start",
                 ids[i]);
        pid_t shpid = read_pid(sh), sup = parent_of(shpid);
        what[nprocs] = "command";
        procs[nprocs++] = shpid;
        what[nprocs] = "its child";
        procs[nprocs++] = read_pid(tu_fmt("gc-%lld", ids[i]));
        /* the exec supervisor, between the pool and the command */
        P_ASSERT(sup > 1 && parent_of(sup) == a->pid, "handler %d: parent %d is not a child of "
                 "the pool %d", (int)shpid, (int)sup, (int)a->pid);
        what[nprocs] = "exec supervisor";
        procs[nprocs++] = sup;
    }
    P_ASSERT(njobs("running") == 3, "3 jobs should be running");
    for (int i = 0; i < nprocs; i++)
        P_ASSERT(!tu_pid_dead(procs[i]), "process %d died early", (int)procs[i]);

    pool_signal(a, SIGKILL);
    int64_t t0 = tu_now_ms();
    P_ASSERT(WAIT_UNTIL(pool_gone(a), WAIT_MS), "the pool survived SIGKILL");
    tu_check_invariants();
    for (int i = 0; i < nprocs; i++)
        P_ASSERT(WAIT_UNTIL(tu_pid_dead(procs[i]), 10000), "%s %d outlived the killed pool",
                 what[i], (int)procs[i]);
    int64_t t_dead = tu_now_ms() - t0;
    P_ASSERT(njobs("running") == 3, "the jobs should still be leased to the dead pool");

    struct pool *b = pool_start("b", ini);
    P_ASSERT(WAIT_UNTIL(njobs("done") == 3, WAIT_MS), "pool b did not finish the jobs");
    int64_t t_done = tu_now_ms() - t0;
    for (int i = 0; i < 3; i++) {
        const char *h = history(ids[i]);
        P_ASSERT(strcmp(h, "1:lease_expired:lease expired,2:done:") == 0, "job %lld: history %s",
                 ids[i], h);
        P_ASSERT(q1("SELECT attempts FROM pgq.jobs WHERE id = $1", ids[i]) == 2, "attempts");
    }
    P_ASSERT(log_count(b, "expired lease") > 0, "pool b's reaper did not log the reap");
    fprintf(stderr, "pool_test: kill -9: handlers gone %lld ms after the kill, all jobs done "
            "after %lld ms (lease_ttl 1s)\n", (long long)t_dead, (long long)t_done);
    pool_signal(b, SIGTERM);
    pool_wait_exit(b, 0);
    P_ASSERT(njobs("done") == 3 && q0("SELECT count(*) FROM pgq.jobs") == 3, "jobs lost");
}
END_TEST

/* ---- drain: SIGTERM ------------------------------------------------------- */

START_TEST(sigterm_drains_short_jobs)
{
    const char *sh = script("wait-go.sh",
                            "put started-$PGQ_JOB_ID $$\n"
                            "while [ ! -e \"$D/go\" ]; do sleep 0.05; done\n"
                            "exit 0\n");
    struct pool *a = pool_start("a", pool_ini("a.ini", 3, "30s",
                                              tu_fmt("[job short]\nhandler = exec %s\n", sh)));
    long long ids[2] = { add_job("short", "{}"), add_job("short", "{}") };
    for (int i = 0; i < 2; i++)
        P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld", ids[i]))), WAIT_MS),
                 "job %lld did not start", ids[i]);
    P_ASSERT(registered(a) == 1, "the pool is not in pgq.workers");

    pool_signal(a, SIGTERM);
    int64_t t0 = tu_now_ms();
    P_ASSERT(WAIT_UNTIL(log_count(a, "shutting down") > 0, WAIT_MS), "no shutdown logged");
    /* Claiming has stopped: jobs added now stay where they are. */
    long long late[2] = { add_job("short", "{}"), add_job("short", "{}") };
    tu_sleep_ms(500);
    P_ASSERT(!pool_gone(a), "the pool exited with jobs in flight");
    P_ASSERT(njobs("running") == 2, "the in-flight jobs should still run");
    tu_write_file(in_dir("go"), "");
    int64_t t_go = tu_now_ms();
    pool_wait_exit(a, 0);
    fprintf(stderr, "pool_test: SIGTERM drain: exit %lld ms after the jobs were let go "
            "(%lld ms after SIGTERM)\n", (long long)(tu_now_ms() - t_go), (long long)(tu_now_ms() - t0));
    for (int i = 0; i < 2; i++) {
        P_ASSERT(strcmp(job_state(ids[i]), "done") == 0, "job %lld: %s", ids[i],
                 job_state(ids[i]));
        P_ASSERT(exec_done_first_time(ids[i]), "job %lld: history %s", ids[i], history(ids[i]));
        P_ASSERT(strcmp(job_state(late[i]), "ready") == 0 &&
                 q1("SELECT attempts FROM pgq.jobs WHERE id = $1", late[i]) == 0 &&
                 strcmp(history(late[i]), "") == 0, "job %lld added during the drain was "
                 "claimed: %s, history %s", late[i], job_state(late[i]), history(late[i]));
    }
    P_ASSERT(registered(a) == 0, "the pool is still in pgq.workers");
}
END_TEST

/* Two `long` jobs (hang_then_succeed) into ids; once both hang, procs gets
 * each one's shell and grandchild pids. */
static void start_hanging_jobs(long long ids[2], pid_t procs[4])
{
    ids[0] = add_job("long", "{}");
    ids[1] = add_job("long", "{}");
    for (int i = 0; i < 2; i++) {
        P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("sh-%lld", ids[i]))), WAIT_MS),
                 "job %lld did not start", ids[i]);
        procs[2 * i] = read_pid(tu_fmt("sh-%lld", ids[i]));
        procs[2 * i + 1] = read_pid(tu_fmt("gc-%lld", ids[i]));
    }
}

/* A handler that hangs (with a grandchild) on attempt 1, writing pids. */
START_TEST(sigterm_releases_long_jobs)
{
    struct pool *a = pool_start("a", pool_ini("a.ini", 2, "1s",
                                              tu_fmt("[job long]\nhandler = exec %s\n",
                                                  hang_then_succeed())));
    long long ids[2];
    pid_t procs[4];
    start_hanging_jobs(ids, procs);
    pool_signal(a, SIGTERM);
    int64_t took = pool_wait_exit(a, 0);
    fprintf(stderr, "pool_test: SIGTERM with hanging jobs, shutdown_timeout 1s: exit after %lld "
            "ms\n", (long long)took);
    for (int i = 0; i < 4; i++)
        P_ASSERT(WAIT_UNTIL(tu_pid_dead(procs[i]), 10000), "handler process %d outlived the pool",
                 (int)procs[i]);
    for (int i = 0; i < 2; i++) {
        P_ASSERT(strcmp(job_state(ids[i]), "ready") == 0, "job %lld: %s", ids[i],
                 job_state(ids[i]));
        P_ASSERT(q1("SELECT attempts FROM pgq.jobs WHERE id = $1", ids[i]) == 0,
                 "a released attempt was counted");
        P_ASSERT(q1("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND lease_token IS NULL", ids[i])
                 == 1, "lease kept");
        P_ASSERT(strcmp(history(ids[i]), "1:released:released (not counted)") == 0,
                 "job %lld: history %s", ids[i], history(ids[i]));
    }
    P_ASSERT(registered(a) == 0, "the pool is still in pgq.workers");
    P_ASSERT(log_count(a, "released") == 2, "two releases should be logged");
}
END_TEST

/* In-process handlers at the shutdown deadline: one that watches
 * pgq_ctx_cancelled stops and its job is released by its worker; one that
 * ignores it is left behind (10 s later) and its job released for it. */
START_TEST(sigterm_releases_in_process_handlers)
{
    struct pool *a = pool_start("a", pool_ini("a.ini", 2, "1s",
                                              tu_fmt("[job polite]\nhandler = plugin %s polite_job\n"
                                                  "[job stubborn]\nhandler = plugin %s "
                                                  "stubborn_job\n", plugin(), plugin())));
    const char *payload = tu_fmt("{\"sleep_ms\": 600000, \"dir\": \"%s\"}", dir);
    long long polite = add_job("polite", payload);
    long long stubborn = add_job("stubborn", payload);
    /* The handlers themselves, not just the claims (a job claimed but not
     * yet started is released without its handler ever being asked). */
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld-1", polite))) &&
                        exists(in_dir(tu_fmt("started-%lld-1", stubborn))), WAIT_MS),
             "the handlers did not start");
    pool_signal(a, SIGTERM);
    int64_t took = pool_wait_exit(a, 0);
    fprintf(stderr, "pool_test: SIGTERM with in-process handlers, shutdown_timeout 1s: exit "
            "after %lld ms\n", (long long)took);
    long long ids[2] = { polite, stubborn };
    for (int i = 0; i < 2; i++) {
        P_ASSERT(strcmp(job_state(ids[i]), "ready") == 0 &&
                 q1("SELECT attempts FROM pgq.jobs WHERE id = $1", ids[i]) == 0,
                 "job %lld: %s", ids[i], job_state(ids[i]));
        P_ASSERT(strcmp(history(ids[i]), "1:released:released (not counted)") == 0,
                 "job %lld: history %s", ids[i], history(ids[i]));
    }
    P_ASSERT(log_count(a, tu_fmt("job=%lld type=stubborn: handler ignored the shutdown; released",
                              stubborn)) == 1, "the abandoned handler was not logged");
    P_ASSERT(registered(a) == 0, "the pool is still in pgq.workers");
}
END_TEST

START_TEST(second_sigterm_exits_at_once)
{
    const char *ini = pool_ini("a.ini", 2, "1h",
                               tu_fmt("[job long]\nhandler = exec %s\nbackoff_base = 0\n",
                                   hang_then_succeed()));
    struct pool *a = pool_start("a", ini);
    long long ids[2];
    pid_t procs[4];
    start_hanging_jobs(ids, procs);
    pool_signal(a, SIGTERM);
    /* one signal at a time: two pending SIGTERMs would be one */
    P_ASSERT(WAIT_UNTIL(log_count(a, "shutting down") > 0, WAIT_MS), "no shutdown logged");
    pool_signal(a, SIGTERM);
    allow_thread_leak = true;
    int64_t took = pool_wait_exit(a, -1);
    allow_thread_leak = false;
    fprintf(stderr, "pool_test: second SIGTERM (shutdown_timeout 1h): exit after %lld ms\n",
            (long long)took);
    P_ASSERT(log_count(a, "second ") == 1, "the second signal was not logged");
    for (int i = 0; i < 4; i++)
        P_ASSERT(WAIT_UNTIL(tu_pid_dead(procs[i]), 10000), "handler process %d outlived the pool",
                 (int)procs[i]);
    P_ASSERT(njobs("running") == 2, "the jobs should still be leased to the gone pool");

    /* Their leases expire; another pool reaps them and runs them again. */
    struct pool *b = pool_start("b", ini);
    P_ASSERT(WAIT_UNTIL(njobs("done") == 2, WAIT_MS), "the jobs were not reclaimed");
    for (int i = 0; i < 2; i++)
        P_ASSERT(strcmp(history(ids[i]), "1:lease_expired:lease expired,2:done:") == 0,
                 "job %lld: history %s", ids[i], history(ids[i]));
    pool_signal(b, SIGTERM);
    pool_wait_exit(b, 0);
}
END_TEST

/* ---- faults: connections, PostgreSQL, a hanging handler -------------------- */

#define LOAD_JOBS 600

static const char *load_ini(void)
{
    return pool_ini("a.ini", 4, "30s",
                    tu_fmt("[job load]\nhandler = plugin %s ledger_job\nmax_retries = 20\n"
                        "backoff_base = 0\n", plugin()));
}

/* Terminate every connection of application "pgq" but ours (the test's own
 * raw connection has no application name). How many were terminated. */
static long long terminate_pool_backends(void)
{
    return q0("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
              " WHERE application_name = 'pgq' AND datname = current_database()"
              " AND pid <> pg_backend_pid()");
}

/* The load: half the jobs write a run_once effect through the worker's
 * connection, half sleep and touch nothing (so a broken connection must
 * not cost them their attempt: the worker reconnects and records done). */
static void add_load(void)
{
    char err[512];
    static pgq_add_item items[LOAD_JOBS];
    static pgq_add_result res[LOAD_JOBS];
    for (int i = 0; i < LOAD_JOBS; i++)
        items[i] = (pgq_add_item){ "load", i % 2 ? "{\"sleep_ms\": 10}"
                                                 : "{\"sleep_ms\": 10, \"effect\": 0}",
                                   PGQ_ADD_OPTS_INIT };
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_add_batch(c, items, LOAD_JOBS, res, err, sizeof err) == 0, "add: %s", err);
    pgq_disconnect(c);
}

/* Every load job is done exactly once, effects are not repeated, jobs in
 * hand survived the fault; the pool is still up and stops cleanly. */
static void check_load_done(struct pool *a)
{
    wait_all_finished(LOAD_JOBS);
    P_ASSERT(njobs("done") == LOAD_JOBS, "only %lld of %d jobs done", njobs("done"), LOAD_JOBS);
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs") == LOAD_JOBS, "jobs lost or added");
    long long doubt = check_ledger();
    /* A job without database work whose worker's connection broke is
     * completed after the reconnect; at worst (lease gone meanwhile) it
     * is reaped and run again, but it never fails for it. */
    long long failed_pure = q0("SELECT count(*) FROM pgq.job_attempts a JOIN pgq.jobs j ON "
                               "j.id = a.job_id WHERE j.payload->>'effect' = '0' AND a.outcome"
                               " = 'failed'");
    P_ASSERT(failed_pure == 0, "%lld attempts of jobs in hand failed for the connection",
             failed_pure);
    fprintf(stderr, "pool_test:   %lld attempts for %d jobs (%lld failed, %lld lease expired), "
            "%lld effects in doubt\n", q0("SELECT count(*) FROM pgq.job_attempts"), LOAD_JOBS,
            q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'failed'"),
            q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'lease_expired'"), doubt);
    P_ASSERT(!pool_gone(a), "the pool died: %s", status_text(a->status));
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    P_ASSERT(registered(a) == 0, "the pool is still in pgq.workers");
}

START_TEST(terminate_backends_mid_load)
{
    struct pool *a = pool_start("a", load_ini());
    add_load();
    long long killed[3];
    for (int round = 0; round < 3; round++) {
        long long want = (round + 1) * LOAD_JOBS / 5;
        P_ASSERT(WAIT_UNTIL(njobs("done") >= want, WAIT_MS), "no progress to %lld done", want);
        killed[round] = terminate_pool_backends();
        P_ASSERT(killed[round] > 0, "round %d: no pool connection found", round + 1);
        tu_check_invariants();
        /* the listener and heartbeat are back before the next round */
        P_ASSERT(WAIT_UNTIL(q0("SELECT count(*) FROM pg_stat_activity WHERE application_name"
                               " = 'pgq' AND pid <> pg_backend_pid()") >= 2, WAIT_MS),
                 "the pool did not reconnect");
    }
    check_load_done(a);
    int reconnects = log_count(a, "reconnected");
    fprintf(stderr, "pool_test: pg_terminate_backend x3: %lld, %lld, %lld connections killed; "
            "%d reconnects logged\n", killed[0], killed[1], killed[2], reconnects);
    P_ASSERT(killed[0] >= 6, "round 1 killed %lld connections; 4 workers + heartbeat + listener",
             killed[0]);
    P_ASSERT(reconnects >= 6, "only %d reconnects logged", reconnects);
}
END_TEST

START_TEST(postgres_restart_mid_load)
{
    const char *bindir = getenv("PGQ_PG_BINDIR"), *data = getenv("PGQ_PG_DATADIR");
    const char *runas = getenv("PGQ_PG_RUNAS"), *pglog = getenv("PGQ_PG_LOG");
    if (!bindir || !*bindir || !data || !*data) {
        fprintf(stderr, "pool_test: postgres_restart_mid_load needs the server that make test "
                "starts (PGQ_PG_BINDIR, PGQ_PG_DATADIR); not run\n");
        return;
    }
    struct pool *a = pool_start("a", load_ini());
    add_load();
    P_ASSERT(WAIT_UNTIL(njobs("done") >= LOAD_JOBS / 4, WAIT_MS), "no progress");
    int64_t t0 = tu_now_ms();
    const char *cmd = tu_fmt("%s '%s/pg_ctl' -D '%s' -w -t 60 restart -m fast >>'%s' 2>&1",
                          runas ? runas : "", bindir, data, pglog && *pglog ? pglog : "/dev/null");
    int rc = system(cmd);
    P_ASSERT(rc == 0, "%s: %d", cmd, rc);
    int64_t t_restart = tu_now_ms() - t0;
    PQreset(tu_pg());
    tu_check_invariants();
    P_ASSERT(njobs("done") < LOAD_JOBS, "the load was over before the restart");
    check_load_done(a);
    int reconnects = log_count(a, "reconnected");
    fprintf(stderr, "pool_test: PostgreSQL restart (%lld ms) mid-load: all done %lld ms after "
            "it began; %d reconnects logged\n", (long long)t_restart, (long long)(tu_now_ms() - t0),
            reconnects);
    P_ASSERT(reconnects >= 6, "only %d reconnects logged", reconnects);
}
END_TEST

/* Like q0, but -1 instead of an abort when the query fails. */
static long long q_soft(const char *sql)
{
    PGresult *r = PQexec(tu_pg(), sql);
    long long v = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;
    PQclear(r);
    return v;
}

/* Let connections to the test database in, or not. From a connection to
 * "postgres": PostgreSQL will not close the database one is connected to.
 * False (with the reason in why) when that is not possible. */
static bool allow_connections(bool allow, char *why, size_t whylen)
{
    const char *keys[] = { "dbname", "dbname", NULL }, *vals[] = { tu_db_url(), "postgres", NULL };
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    PGresult *r = NULL;
    bool ok = false;
    if (PQstatus(pg) == CONNECTION_OK) {
        const char *db = PQdb(tu_pg());
        char *ident = PQescapeIdentifier(pg, db, strlen(db));
        r = PQexec(pg, tu_fmt("ALTER DATABASE %s ALLOW_CONNECTIONS %s", ident ? ident : "?",
                           allow ? "true" : "false"));
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQfreemem(ident);
    }
    if (!ok)
        snprintf(why, whylen, "%s", r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    PQclear(r);
    PQfinish(pg);
    return ok;
}

/* The database refuses the pool for longer than a lease: every job in
 * hand loses its lease meanwhile and is reaped once the database is back,
 * and still nothing is lost and no effect repeated. */
START_TEST(database_unreachable_past_lease)
{
    struct pool *a = pool_start("a", load_ini());
    add_load();
    P_ASSERT(WAIT_UNTIL(njobs("done") >= LOAD_JOBS / 4, WAIT_MS), "no progress");
    char why[512];
    if (!allow_connections(false, why, sizeof why)) {
        fprintf(stderr, "pool_test: database_unreachable_past_lease cannot close the database "
                "(%s); not run\n", why);
        return;
    }
    /* nothing may abort the test while the database is closed */
    long long killed = q_soft("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM "
                              "pg_stat_activity WHERE application_name = 'pgq' AND datname = "
                              "current_database() AND pid <> pg_backend_pid()");
    tu_sleep_ms(2500);   /* the outage: 2.5 lease TTLs */
    long long back = q_soft("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                            "'pgq' AND pid <> pg_backend_pid()");
    long long expired = q_soft("SELECT count(*) FROM pgq.jobs WHERE state = 'running' AND "
                               "lease_expires_at < now()");
    bool reopened = allow_connections(true, why, sizeof why);
    P_ASSERT(reopened, "cannot open the database again: %s", why);
    P_ASSERT(killed > 0, "no pool connection to cut");
    P_ASSERT(back == 0, "%lld pool connections got in during the outage", back);
    P_ASSERT(njobs("done") < LOAD_JOBS, "the load was over before the outage");
    check_load_done(a);
    fprintf(stderr, "pool_test: database refusing connections for 2.5 s mid-load: %lld "
            "connections cut, %lld leases expired meanwhile; %d reconnects logged\n", killed,
            expired, log_count(a, "reconnected"));
}
END_TEST

START_TEST(hanging_exec_killed_at_timeout)
{
    const char *sh = script("hang.sh",
                            "if [ \"$PGQ_ATTEMPT\" = 1 ]; then put hang $$; exec sleep 1000; fi\n"
                            "exit 0\n");
    struct pool *a = pool_start("a", pool_ini("a.ini", 2, "30s",
                                              tu_fmt("[job hang]\nhandler = exec %s\ntimeout = 1s\n"
                                                  "max_retries = 2\nbackoff_base = 0\n", sh)));
    long long id = add_job("hang", "{}");
    P_ASSERT(WAIT_UNTIL(strcmp(job_state(id), "done") == 0, WAIT_MS), "job not done: %s",
             job_state(id));
    P_ASSERT(tu_pid_dead(read_pid("hang")), "the hanging handler survived its timeout");
    const char *h = history(id);
    const char *want = "1:failed:killed by signal 15 (SIGTERM) after timeout (1s)";
    P_ASSERT(strncmp(h, want, strlen(want)) == 0 && strstr(h, ",2:done:") && !strstr(h, ",3:"),
             "history %s", h);
    P_ASSERT(q1("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1 AND attempt = 1"
                " AND term_signal = 15 AND exit_code IS NULL", id) == 1, "attempt 1: no signal");
    P_ASSERT(q1("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1 AND attempt = 2"
                " AND exit_code = 0 AND term_signal IS NULL", id) == 1, "attempt 2: no exit 0");
    P_ASSERT(q1("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1 AND cpu_ms >= 0"
                " AND max_rss_kb > 0 AND duration_ms > 0", id) == 2,
             "exec attempts must record cpu_ms, max_rss_kb and duration");
    P_ASSERT(q1("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1 AND attempt = 1"
                " AND duration_ms >= 1000", id) == 1, "attempt 1 ended before its timeout");
    P_ASSERT(log_count(a, tu_fmt("job=%lld type=hang: failed (attempt 1 of 3)", id)) == 1,
             "the failure was not logged");
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* An exec handler's first-time success has no history row (migration
 * 017): its CPU time and RSS are on the job row, and `pgq show` reports
 * the attempt from there with exit 0. */
START_TEST(exec_first_success_keeps_its_figures_on_the_job_row)
{
    const char *sh = script("ok.sh", "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done\nexit 0\n");
    struct pool *a = pool_start("a", pool_ini("a.ini", 2, "30s",
                                              tu_fmt("[job ok]\nhandler = exec %s\n", sh)));
    long long id = add_job("ok", "{}");
    P_ASSERT(WAIT_UNTIL(strcmp(job_state(id), "done") == 0, WAIT_MS), "job not done: %s",
             job_state(id));
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    P_ASSERT(q1("SELECT count(*) FROM pgq.job_attempts WHERE job_id = $1", id) == 0,
             "a first-time exec success wrote a history row");
    P_ASSERT(q1("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND cpu_ms >= 0 AND max_rss_kb > 0",
                id) == 1, "the job row has no CPU time or RSS");
    tu_run r = tu_run_cmd(NULL, (const char *const[]){ tu_fmt("DATABASE_URL=%s", tu_db_url()), NULL },
                          NULL, tu_fmt("%s/pgq", tu_bin_dir()),
                          (const char *const[]){ "pgq", "show", tu_lld(id), NULL }, 60);
    P_ASSERT(r.code == 0 && strstr(r.out, "history: 1\n") && strstr(r.out, "attempt 1 done at ") &&
             strstr(r.out, ", exit 0, cpu ") && strstr(r.out, " kB"), "pgq show: %s", r.out);
    tu_run_free(&r);
}
END_TEST

/* ---- fencing: SIGSTOP past the lease ---------------------------------------- */

static void append_b(const char *path)
{
    FILE *f = fopen(path, "a");
    ck_assert_ptr_nonnull(f);
    fputs("B\n", f);
    ck_assert_int_eq(fclose(f), 0);
}

static int effect_file(void *arg, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    append_b(arg);
    return 0;
}

static int effect_row(void *arg, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    const char *p[] = { tu_lld(*(long long *)arg) };
    tu_exec("INSERT INTO test_ledger (job_id, key) VALUES ($1, 'effect')", 1, p);
    return 0;
}

/* Pool a holds job id and is frozen; its lease expires; "pool-B" (this
 * test) reaps, claims and runs the effect under run_once, and keeps the
 * job leased (until finish_b), so that whatever a does once it resumes
 * meets a job that is running, under another token. */
struct stolen {
    pgq_conn *c;
    pgq_job *j;
};

static struct stolen freeze_and_steal(struct pool *a, long long id, pgq_once_fn fn, void *arg)
{
    char err[512];
    P_ASSERT(strcmp(job_state(id), "running") == 0, "job %lld: %s", id, job_state(id));
    pool_signal(a, SIGSTOP);
    P_ASSERT(WAIT_UNTIL(q1("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND lease_expires_at"
                           " < now()", id) == 1, WAIT_MS), "the lease did not expire");
    struct stolen b = { tu_connect(), NULL };
    tu_reap_until(b.c, 1);
    static const char *const q[] = { "default" };
    ck_assert_msg(pgq_claim(b.c, q, 1, "pool-B", 120000, &b.j, err, sizeof err) == 0, "%s", err);
    P_ASSERT(b.j && b.j->id == id && b.j->attempt == 2, "pool-B did not get the job back");
    pgq_once_result r = pgq_run_once(b.c, id, b.j->lease_token, "effect", fn, arg, err,
                                     sizeof err);
    P_ASSERT(r == PGQ_ONCE_RAN, "pool-B's effect: %s %s", pgq_once_result_name(r), err);
    return b;
}

static const char *effects(long long id)
{
    return t1("SELECT coalesce(string_agg(key || ':' || state || ':' || attempt, ','), '') FROM "
              "pgq.effects WHERE job_id = $1", id);
}

/* Pool a has resumed: it learns that it lost the lease and changes
 * nothing; pool-B then completes, and the job's story is pool-B's. */
static void check_fenced(struct pool *a, long long id, struct stolen *b)
{
    char err[512];
    P_ASSERT(WAIT_UNTIL(log_count(a, "lease lost") > 0, WAIT_MS), "pool a did not log its lost "
             "lease");
    tu_sleep_ms(500);   /* a's heartbeat and worker have had their say */
    const char *p[] = { tu_lld(id), b->j->lease_token };
    P_ASSERT(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND state = 'running' AND "
                    "lease_token = $2::uuid AND lease_owner = 'pool-B' AND attempts = 2", 2, p)
             == 1, "pool a touched the job pool-B holds: %s", job_state(id));
    P_ASSERT(strcmp(history(id), "1:lease_expired:lease expired") == 0, "history %s",
             history(id));
    P_ASSERT(strcmp(effects(id), "effect:done:2") == 0, "effects: %s", effects(id));

    bool lost = true;
    ck_assert_msg(pgq_complete(b->c, id, b->j->lease_token, NULL, &lost, err, sizeof err) == 0,
                  "%s", err);
    P_ASSERT(!lost, "pool-B lost the lease");
    pgq_job_free(b->j);
    pgq_disconnect(b->c);
    P_ASSERT(strcmp(job_state(id), "done") == 0, "job %lld: %s", id, job_state(id));
    P_ASSERT(strcmp(history(id), "1:lease_expired:lease expired,2:done:") == 0, "history %s",
             history(id));
    P_ASSERT(strcmp(t1("SELECT worker FROM pgq.job_attempts WHERE job_id = $1 AND attempt = 2",
                       id), "pool-B") == 0, "attempt 2 is not pool-B's");
    P_ASSERT(!pool_gone(a), "pool a died: %s", status_text(a->status));
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    P_ASSERT(strcmp(job_state(id), "done") == 0 && strcmp(effects(id), "effect:done:2") == 0,
             "job %lld after a stopped: %s, effects %s", id, job_state(id), effects(id));
}

START_TEST(sigstop_past_lease_exec_changes_nothing)
{
    const char *sh = script("frozen.sh",
                            "put started-$PGQ_JOB_ID-$PGQ_ATTEMPT x\n"
                            "while [ ! -e \"$D/go\" ]; do sleep 0.05; done\n"
                            "\"$PGQ\" once effect -- sh -c \"echo A >> '$D/ledger'\"\n"
                            "put rc-$PGQ_JOB_ID-$PGQ_ATTEMPT $?\n"
                            "exit 0\n");
    struct pool *a = pool_start("a", pool_ini("a.ini", 1, "30s",
                                              tu_fmt("[job frozen]\nhandler = exec %s\n"
                                                  "backoff_base = 0\n", sh)));
    long long id = add_job("frozen", "{}");
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld-1", id))), WAIT_MS), "not started");
    struct stolen b = freeze_and_steal(a, id, effect_file, (void *)in_dir("ledger"));
    /* a's handler (its own process group, still running) now tries the
     * effect with a's stale token: the database refuses (exit 5), where
     * a missing fence would say "skipped" (3) or run it. */
    tu_write_file(in_dir("go"), "");
    const char *rcfile = in_dir(tu_fmt("rc-%lld-1", id));
    P_ASSERT(WAIT_UNTIL(exists(rcfile), WAIT_MS), "a's handler did not try its effect");
    char *rc = read_file(rcfile);
    P_ASSERT(rc && strcmp(rc, "5\n") == 0, "pgq once in the frozen pool's handler exited %s, "
             "want 5 (lease lost)", rc ? rc : "?");
    free(rc);
    /* ... and a itself, resumed, completes nothing (its handler exited 0) */
    pool_signal(a, SIGCONT);
    check_fenced(a, id, &b);
    char *ledger = read_file(in_dir("ledger"));
    P_ASSERT(ledger && strcmp(ledger, "B\n") == 0, "ledger: [%s]", ledger ? ledger : "");
    free(ledger);
}
END_TEST

START_TEST(sigstop_past_lease_plugin_changes_nothing)
{
    struct pool *a = pool_start("a", pool_ini("a.ini", 1, "30s",
                                              tu_fmt("[job frozen]\nhandler = plugin %s frozen_job\n"
                                                  "backoff_base = 0\n", plugin())));
    long long id = add_job("frozen", tu_fmt("{\"dir\": \"%s\"}", dir));
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld-1", id))), WAIT_MS), "not started");
    struct stolen b = freeze_and_steal(a, id, effect_row, &id);
    /* a's handler, frozen with a, tries the effect as soon as it resumes
     * (with the job's token, straight to the database), then fails the
     * attempt, which a must not record either */
    tu_write_file(in_dir("go"), "");
    pool_signal(a, SIGCONT);
    const char *once = in_dir(tu_fmt("once-%lld-1", id));
    P_ASSERT(WAIT_UNTIL(exists(once), WAIT_MS), "a's handler did not try its effect");
    char *res = read_file(once);
    P_ASSERT(res && strcmp(res, "lease lost") == 0, "run_once in the resumed pool: %s",
             res ? res : "?");
    free(res);
    check_fenced(a, id, &b);
    P_ASSERT(q1("SELECT count(*) FROM test_ledger WHERE job_id = $1", id) == 1,
             "the effect ran %lld times", q1("SELECT count(*) FROM test_ledger WHERE job_id = $1",
                                             id));
}
END_TEST

/* The lease of a running job is taken away (the reaper's own statement, as
 * if it had expired): the pool's heartbeat notices, an exec handler gets
 * SIGTERM, an in-process one sees pgq_ctx_lease_lost, and the pool records
 * nothing for either. */
START_TEST(lease_lost_stops_handlers)
{
    const char *sh = script("trap.sh",
                            "trap 'put term-$PGQ_JOB_ID x; exit 143' TERM\n"
                            "put sh-$PGQ_JOB_ID $$\n"
                            "while :; do sleep 0.05; done\n");
    struct pool *a = pool_start("a", pool_ini("a.ini", 2, "30s",
                                              tu_fmt("[job shell]\nhandler = exec %s\n"
                                                  "max_retries = 0\n"
                                                  "[job inproc]\nhandler = plugin %s polite_job\n"
                                                  "max_retries = 0\n", sh, plugin())));
    long long ex = add_job("shell", "{}");
    long long in = add_job("inproc", tu_fmt("{\"sleep_ms\": 600000, \"dir\": \"%s\"}", dir));
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("sh-%lld", ex))) && njobs("running") == 2, WAIT_MS),
             "the jobs did not start");
    pid_t shpid = read_pid(tu_fmt("sh-%lld", ex));
    tu_exec("SELECT pgq.fail(id, lease_token, 'lease expired', 'lease_expired', NULL, NULL, NULL,"
            " NULL) FROM pgq.jobs WHERE state = 'running'", 0, NULL);
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("term-%lld", ex))), WAIT_MS),
             "the exec handler got no SIGTERM");
    P_ASSERT(WAIT_UNTIL(tu_pid_dead(shpid), 10000), "the exec handler survived");
    const char *flag = in_dir(tu_fmt("cancel-%lld-1", in));
    P_ASSERT(WAIT_UNTIL(exists(flag), WAIT_MS), "the in-process handler was not cancelled");
    char *text = read_file(flag);
    P_ASSERT(text && strcmp(text, "lease_lost=1") == 0, "in-process handler: %s",
             text ? text : "?");
    free(text);
    long long ids[2] = { ex, in };
    for (int i = 0; i < 2; i++)
        P_ASSERT(WAIT_UNTIL(log_count(a, tu_fmt("job=%lld: lease lost", ids[i])) == 1 &&
                            log_count(a, tu_fmt("job=%lld type=%s: lease lost", ids[i],
                                             i ? "inproc" : "shell")) == 1, WAIT_MS),
                 "job %lld: lease loss not logged", ids[i]);
    tu_sleep_ms(500);   /* anything the pool would still write, it has written */
    for (int i = 0; i < 2; i++)
        P_ASSERT(strcmp(job_state(ids[i]), "dead") == 0 &&
                 strcmp(history(ids[i]), "1:lease_expired:lease expired") == 0,
                 "job %lld: %s, history %s", ids[i], job_state(ids[i]), history(ids[i]));
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* ---- scale ---------------------------------------------------------------- */

START_TEST(three_pools_twenty_thousand_jobs)
{
    const char *env = getenv("PGQ_POOL_SCALE_JOBS");
    int total = env && atoi(env) > 0 ? atoi(env) : 20000;
    const char *ini = pool_ini("p.ini", 4, "30s",
                               tu_fmt("[job work]\nhandler = plugin %s ledger_job\nmax_retries = 2\n"
                                   "backoff_base = 10ms\nbackoff_max = 100ms\n", plugin()));
    struct pool *p[3] = { pool_start("p1", ini), pool_start("p2", ini), pool_start("p3", ini) };
    int64_t t0 = tu_now_ms();
    add_jobs("work", "{\"fail\": 10}", total);
    int64_t t_added = tu_now_ms() - t0;

    /* kill -9 one pool a third of the way, and start a new one */
    P_ASSERT(WAIT_UNTIL(nfinished() >= total / 3, 600000), "no progress");
    pool_signal(p[1], SIGKILL);
    P_ASSERT(WAIT_UNTIL(pool_gone(p[1]), WAIT_MS), "p2 survived SIGKILL");
    tu_check_invariants();
    long long at_kill = nfinished();
    struct pool *p4 = pool_start("p4", ini);

    wait_all_finished(total);
    int64_t wall = tu_now_ms() - t0;
    long long done = njobs("done"), dead = njobs("dead");
    P_ASSERT(done + dead == total && q0("SELECT count(*) FROM pgq.jobs") == total,
             "%lld done + %lld dead of %d", done, dead, total);
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE state IN ('ready', 'running')") == 0,
             "jobs left ready or running");
    long long doubt = check_ledger();
    /* every dead job used its 3 attempts, each one recorded */
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs j WHERE state = 'dead' AND (attempts <> 3 OR "
                "(SELECT count(*) FROM pgq.job_attempts a WHERE a.job_id = j.id AND a.outcome IN "
                "('failed', 'lease_expired')) <> 3)") == 0, "a dead job without its history");
    long long ledger = q0("SELECT count(*) FROM test_ledger");
    fprintf(stderr, "pool_test: scale: %d jobs (added in %lld ms), 3 pools x 4 workers, p2 "
            "killed -9 at %lld finished: %lld done, %lld dead, %lld attempts (%lld failed, %lld "
            "lease expired), %lld ledger rows, %lld effects in doubt; wall %lld ms\n",
            total, (long long)t_added, at_kill, done, dead,
            q0("SELECT count(*) FROM pgq.job_attempts"),
            q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'failed'"),
            q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'lease_expired'"), ledger,
            doubt, (long long)wall);
    struct pool *live[3] = { p[0], p[2], p4 };
    for (int i = 0; i < 3; i++)
        pool_signal(live[i], SIGTERM);
    for (int i = 0; i < 3; i++)
        pool_wait_exit(live[i], 0);
    P_ASSERT(q0("SELECT count(*) FROM pgq.workers") == 1, "only the killed pool's row may stay");
}
END_TEST

/* ---- batching (batch = N) --------------------------------------------------- */

/* Batching pools under the scale test's conditions: claims and acks of 16
 * per statement, 10% injected failures around run_once, one pool kill -9'ed
 * with jobs buffered and acks pending. Everything finishes, no effect runs
 * twice, dead jobs have their whole history, and the survivors stop
 * cleanly. */
START_TEST(batched_pools_survive_kill9)
{
    int total = 3000;
    const char *ini = pool_ini_batch("b.ini", 4, 16, "30s",
                                     tu_fmt("[job work]\nhandler = plugin %s ledger_job\n"
                                         "max_retries = 2\nbackoff_base = 10ms\n"
                                         "backoff_max = 100ms\n", plugin()));
    struct pool *p[2] = { pool_start("b1", ini), pool_start("b2", ini) };
    add_jobs("work", "{\"fail\": 10}", total);
    P_ASSERT(WAIT_UNTIL(nfinished() >= total / 3, 600000), "no progress");
    pool_signal(p[1], SIGKILL);
    P_ASSERT(WAIT_UNTIL(pool_gone(p[1]), WAIT_MS), "b2 survived SIGKILL");
    tu_check_invariants();
    struct pool *p3 = pool_start("b3", ini);
    wait_all_finished(total);
    long long done = njobs("done"), dead = njobs("dead");
    P_ASSERT(done + dead == total, "%lld done + %lld dead of %d", done, dead, total);
    long long doubt = check_ledger();
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs j WHERE state = 'dead' AND (attempts <> 3 OR "
                "(SELECT count(*) FROM pgq.job_attempts a WHERE a.job_id = j.id AND a.outcome IN "
                "('failed', 'lease_expired')) <> 3)") == 0, "a dead job without its history");
    /* a job done after earlier attempts has its done attempt in the history */
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs j WHERE state = 'done' AND attempts > 1 AND NOT "
                "EXISTS (SELECT 1 FROM pgq.job_attempts a WHERE a.job_id = j.id AND a.outcome ="
                " 'done' AND a.attempt = j.attempts)") == 0, "a retried done job without its "
             "done attempt");
    fprintf(stderr, "pool_test: batched: %d jobs, 2 pools x 4 workers, batch 16, one killed -9:"
            " %lld done, %lld dead, %lld lease expired, %lld effects in doubt\n", total, done,
            dead, q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'lease_expired'"),
            doubt);
    pool_signal(p[0], SIGTERM);
    pool_signal(p3, SIGTERM);
    pool_wait_exit(p[0], 0);
    pool_wait_exit(p3, 0);
}
END_TEST

/* SIGTERM with jobs claimed into the buffer but not started: the running
 * ones finish, the buffered ones go back to ready without spending an
 * attempt, nothing stays running. */
START_TEST(batched_sigterm_releases_buffered)
{
    const char *ini = pool_ini_batch("r.ini", 2, 32, "30s",
                                     tu_fmt("[job nap]\nhandler = plugin %s stubborn_job\n",
                                         plugin()));
    struct pool *a = pool_start("r", ini);
    P_ASSERT(WAIT_UNTIL(registered(a) == 1, WAIT_MS), "the pool did not start");
    add_jobs("nap", tu_fmt("{\"sleep_ms\": 300, \"dir\": \"%s\"}", dir), 40);
    P_ASSERT(WAIT_UNTIL(njobs("running") >= 10, WAIT_MS), "the pool did not claim a batch");
    /* Both workers' handlers running, not just claimed: jobs that are only
     * in the buffer are released at shutdown, so a SIGTERM that came before
     * any handler started (a loaded machine) left none to finish. */
    P_ASSERT(WAIT_UNTIL(started_files() >= 2, WAIT_MS), "the handlers did not start");
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    long long done = njobs("done"), ready = njobs("ready");
    P_ASSERT(njobs("running") == 0, "%lld jobs left running", njobs("running"));
    P_ASSERT(done >= 2 && done + ready == 40, "%lld done, %lld ready of 40", done, ready);
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE state = 'ready' AND attempts <> 0") == 0,
             "a released job spent an attempt");
    P_ASSERT(log_count(a, "released") >= 1, "no release logged");
}
END_TEST

/* A lease lost while its job sits in the batch buffer, or after the job ran
 * but before its success was recorded: the heartbeat (or the ack's fence)
 * notices, the buffered job is never started, the success is not recorded,
 * and the job stays with whoever holds its lease now. The "thief" here is
 * the test, taking the lease in SQL as a reclaiming pool would. */
#define STEAL_SQL                                                                            \
    "WITH s AS (UPDATE pgq.jobs SET lease_token = gen_random_uuid(),"                         \
    "  lease_expires_at = now() + interval '1 hour' WHERE id = (%s) AND state = 'running'"    \
    "  RETURNING id) SELECT coalesce(max(id), 0) FROM s"
START_TEST(batched_lost_leases_are_dropped)
{
    struct pool *a = pool_start("l", pool_ini_batch("l.ini", 1, 16, "30s",
                                tu_fmt("[job work]\nhandler = plugin %s ledger_job\n",
                                    plugin())));
    add_jobs("work", "{\"sleep_ms\": 700, \"effect\": 1}", 12);
    P_ASSERT(WAIT_UNTIL(njobs("running") >= 6, WAIT_MS), "the pool did not claim a batch");
    /* The last job claimed is the last in the buffer: seconds from its start. */
    long long buffered = q0(tu_fmt(STEAL_SQL, "SELECT max(id) FROM pgq.jobs WHERE state = "
                                           "'running'"));
    P_ASSERT(buffered > 0, "no running job to take");
    P_ASSERT(WAIT_UNTIL(log_count(a, tu_fmt("job=%lld: lease lost (expired and reclaimed) while "
                                         "batched; dropped", buffered)) == 1, WAIT_MS),
             "job %lld: the lost buffered lease was not dropped", buffered);
    /* A job whose effect is written (it ran) but that is still running in
     * the database: its success waits to be recorded with the batch. */
    long long acked = 0;
    P_ASSERT(WAIT_UNTIL((acked = q0(tu_fmt(STEAL_SQL, "SELECT min(j.id) FROM pgq.jobs j WHERE "
                                    "j.state = 'running' AND EXISTS (SELECT 1 FROM test_ledger "
                                    "l WHERE l.job_id = j.id)"))) > 0, WAIT_MS),
             "no job caught between its end and its record");
    /* Caught after its handler returned, the ack's fence (or the
     * heartbeat) reports it; caught between the effect's row and the end
     * of its run_once (the same query finds it there, on a loaded machine
     * often), the handler's own end reports it, on its worker's line. */
    P_ASSERT(WAIT_UNTIL(log_count(a, tu_fmt("job=%lld: lease lost", acked)) +
                        log_count(a, tu_fmt("job=%lld type=work: lease lost", acked)) >= 1,
                        WAIT_MS),
             "job %lld: the lost ack was not reported", acked);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    /* Both still belong to the thief: nothing recorded over its lease. */
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE state = 'running' AND lease_expires_at >"
                " now() + interval '30 minutes'") == 2, "a taken lease was overwritten");
    P_ASSERT(q1("SELECT count(*) FROM test_ledger WHERE job_id = $1", buffered) == 0,
             "job %lld ran after its lease was lost in the buffer", buffered);
    P_ASSERT(q1("SELECT count(*) FROM test_ledger WHERE job_id = $1", acked) == 1,
             "job %lld: its effect is not there once", acked);
    P_ASSERT(njobs("done") + njobs("ready") == 10, "%lld done, %lld ready of 10 others",
             njobs("done"), njobs("ready"));
    P_ASSERT(q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'done'") == 0,
             "a done attempt recorded for a first try");
}
END_TEST

/* Connections terminated mid-load under batching: acks that could not be
 * recorded are kept and recorded after the reconnect. */
START_TEST(batched_terminate_backends_mid_load)
{
    struct pool *a = pool_start("a", pool_ini_batch("a.ini", 4, 8, "30s",
                                tu_fmt("[job load]\nhandler = plugin %s ledger_job\n"
                                    "max_retries = 20\nbackoff_base = 0\n", plugin())));
    add_load();
    for (int round = 0; round < 3; round++) {
        long long want = (round + 1) * LOAD_JOBS / 5;
        P_ASSERT(WAIT_UNTIL(njobs("done") >= want, WAIT_MS), "no progress to %lld done", want);
        P_ASSERT(terminate_pool_backends() > 0, "round %d: no pool connection found",
                 round + 1);
        P_ASSERT(WAIT_UNTIL(q0("SELECT count(*) FROM pg_stat_activity WHERE application_name"
                               " = 'pgq' AND pid <> pg_backend_pid()") >= 2, WAIT_MS),
                 "the pool did not reconnect");
    }
    check_load_done(a);
}
END_TEST

/* ---- adaptive (no batch key) ------------------------------------------------ */

/* A pool without a batch key (adaptive) running job type `type` with the
 * ledger plugin. */
static struct pool *ledger_pool(const char *name, int workers, const char *type)
{
    return pool_start(name, pool_ini_batch(tu_fmt("%s.ini", name), workers, 0, "30s",
                                           tu_fmt("[job %s]\nhandler = plugin %s ledger_job\n",
                                               type, plugin())));
}

/* Short jobs: a claim takes jobs for several workers and a buffer ahead,
 * so jobs share their claim's transaction (started_at is the claim's
 * now()). Strict mode would show one claim per job. */
START_TEST(adaptive_claims_short_jobs_together)
{
    int total = 3000;
    struct pool *a = ledger_pool("s", 4, "quick");
    add_jobs("quick", "{\"effect\": 0}", total);
    wait_all_finished(total);
    long long claims = q0("SELECT count(DISTINCT started_at) FROM pgq.jobs");
    long long batched = q0("SELECT count(*) FROM pgq.jobs WHERE lease_owner LIKE '%/batch'");
    fprintf(stderr, "pool_test: adaptive: %d short jobs, 4 workers: %lld claims\n", total,
            claims);
    P_ASSERT(njobs("done") == total, "%lld done of %d", njobs("done"), total);
    P_ASSERT(claims <= total / 4, "%lld claims for %d short jobs: not claimed together",
             claims, total);
    P_ASSERT(batched == total, "%lld of %d jobs claimed by the batch", batched, total);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* Long jobs: nothing is held ahead -- never more jobs running in the
 * database than the pool has workers -- so another pool could take them. */
START_TEST(adaptive_holds_no_buffer_for_long_jobs)
{
    int total = 10;
    struct pool *a = ledger_pool("l", 2, "slow");
    P_ASSERT(WAIT_UNTIL(registered(a) == 1, WAIT_MS), "the pool did not start");
    /* One first, so that the pool has seen how long they are. */
    add_jobs("slow", "{\"sleep_ms\": 250, \"effect\": 0}", 1);
    P_ASSERT(WAIT_UNTIL(njobs("done") == 1, WAIT_MS), "the first job did not finish");
    add_jobs("slow", "{\"sleep_ms\": 250, \"effect\": 0}", total - 1);
    long long most = 0;
    int64_t until = tu_now_ms() + WAIT_MS;
    while (nfinished() < total && tu_now_ms() < until) {
        long long r = njobs("running");
        most = r > most ? r : most;
        tu_sleep_ms(10);
    }
    P_ASSERT(nfinished() == total, "%lld of %d finished", nfinished(), total);
    P_ASSERT(most <= 2, "%lld jobs running at once with 2 workers: long jobs were buffered",
             most);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* SIGTERM in the middle of many short jobs: the buffered ones go back to
 * ready without spending an attempt, the done ones are recorded, nothing
 * is left running. */
START_TEST(adaptive_sigterm_releases_buffered)
{
    int total = 20000;
    struct pool *a = ledger_pool("t", 4, "quick");
    add_jobs("quick", "{\"effect\": 0}", total);
    P_ASSERT(WAIT_UNTIL(njobs("done") >= 1000, WAIT_MS), "no progress");
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    long long done = njobs("done"), ready = njobs("ready");
    fprintf(stderr, "pool_test: adaptive SIGTERM: %lld done, %lld ready; %d released logged\n",
            done, ready, log_count(a, "claimed jobs not yet started"));
    P_ASSERT(njobs("running") == 0, "%lld jobs left running", njobs("running"));
    P_ASSERT(done + ready == total, "%lld done, %lld ready of %d", done, ready, total);
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE state = 'ready' AND attempts <> 0") == 0,
             "a released job spent an attempt: %s",
             tu_text("SELECT string_agg(j.id || ' attempts ' || j.attempts || ' ['"
                     " || coalesce((SELECT string_agg(a.attempt || ':' || a.outcome || ':'"
                     " || coalesce(a.error, ''), ', ' ORDER BY a.id) FROM pgq.job_attempts a"
                     " WHERE a.job_id = j.id), '') || ']', '; ')"
                     " FROM (SELECT * FROM pgq.jobs WHERE state = 'ready' AND attempts <> 0"
                     " ORDER BY id LIMIT 5) j", 0, NULL));
}
END_TEST

/* ---- idle ------------------------------------------------------------------ */

/* CPU time (user + system, all threads) of a process, in ms. */
static long long cpu_ms(pid_t pid)
{
    char buf[1024];
    FILE *f = fopen(tu_fmt("/proc/%d/stat", (int)pid), "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    unsigned long long ut = 0, st = 0;
    char *rp = strrchr(buf, ')');
    /* after "pid (comm)": state ppid pgrp session tty tpgid flags minflt cminflt majflt
     * cmajflt utime stime */
    ck_assert(rp && sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
                           &ut, &st) == 2);
    return (long long)(ut + st) * 1000 / sysconf(_SC_CLK_TCK);
}

/* An idle pool sleeps: no busy loop in its 8 workers, listener or
 * heartbeat (a spinning thread would burn a whole CPU). */
START_TEST(idle_pool_sleeps)
{
    struct pool *a = pool_start("a", pool_ini("a.ini", 8, "30s",
                                              "[job x]\nhandler = exec /bin/true\n"));
    tu_sleep_ms(500);
    long long c0 = cpu_ms(a->pid);
    int64_t t0 = tu_now_ms();
    tu_sleep_ms(3000);
    long long used = cpu_ms(a->pid) - c0;
    int64_t wall = tu_now_ms() - t0;
    fprintf(stderr, "pool_test: idle pool (8 workers, poll 100ms, heartbeat 200ms): %lld ms CPU "
            "in %lld ms\n", used, (long long)wall);
    P_ASSERT(used * 4 < wall, "an idle pool used %lld ms of CPU in %lld ms", used,
             (long long)wall);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* ---- config and usage ----------------------------------------------------- */

/* tests/ini/NAME, copied into the build dir: its relative handler paths
 * (./examples/plugin-demo.so) are relative to the config's directory. */
static const char *fixture(const char *name)
{
    char *text = tu_slurp(tu_fmt("%s/ini/%s", tu_test_dir(), name));
    char *bin = realpath(tu_bin_dir(), NULL);
    ck_assert_ptr_nonnull(bin);
    const char *path = tu_fmt("%s/%s", bin, name);
    free(bin);
    tu_write_file(path, text);
    free(text);
    return path;
}

/* pgq-pool ARGS run in the build dir, without a database in the
 * environment. */
static tu_run pool_cmd(const char *const *args)
{
    const char *argv[8] = { tu_fmt("%s/pgq-pool", tu_bin_dir()) };
    for (int i = 0; args[i]; i++) {
        ck_assert_int_lt(i, 6);
        argv[i + 1] = args[i];
    }
    return tu_run_cmd(tu_bin_dir(), NULL, NULL, argv[0], argv, 120);
}

/* Exit code, empty stdout and exactly the one line want on stderr. */
static void assert_refused(const char *const *args, int code, const char *want)
{
    tu_run r = pool_cmd(args);
    ck_assert_msg(r.code == code && strcmp(r.out, "") == 0 &&
                  strcmp(r.err, tu_fmt("%s\n", want)) == 0,
                  "pgq-pool %s %s: exit %d (want %d)\nstdout: [%s]\nstderr: [%s]\nwant:   [%s]",
                  args[0], args[1] ? args[1] : "", r.code, code, r.out, r.err, want);
    tu_run_free(&r);
}

START_TEST(bad_config_files)
{
    const char *f = fixture("pool-bad-workers.ini");
    assert_refused(ARGV("-c", f), 1,
                   tu_fmt("pgq-pool: %s:4: [pool] workers: \"0\" is out of range (1..256)", f));
    f = fixture("pool-bad-heartbeat.ini");
    assert_refused(ARGV("-c", f), 1,
                   tu_fmt("pgq-pool: %s:5: [pool] heartbeat: 2s must be shorter than lease_ttl (1s)",
                       f));
    f = fixture("pool-bad-key.ini");
    assert_refused(ARGV("-c", f), 1,
                   tu_fmt("pgq-pool: %s:7: [job mail] timout: unknown key; did you mean "
                       "\"timeout\"?", f));
    f = fixture("pool-bad-key.ini");   /* --check reads the file first, too */
    assert_refused(ARGV("--check", "-c", f), 1,
                   tu_fmt("pgq-pool: %s:7: [job mail] timout: unknown key; did you mean "
                       "\"timeout\"?", f));
    f = in_dir("absent.ini");
    assert_refused(ARGV("-c", f), 1, tu_fmt("pgq-pool: %s: cannot open: No such file or directory",
                                         f));
}
END_TEST

START_TEST(check_validates_handlers)
{
    const char *f = fixture("pool-check-good.ini");
    tu_run r = pool_cmd(ARGV("--check", "-c", f));
    ck_assert_msg(r.code == 0 && strcmp(r.out, tu_fmt("%s: ok (3 job types, 3 workers)\n", f)) == 0
                  && strcmp(r.err, "") == 0, "exit %d\nstdout: [%s]\nstderr: [%s]", r.code,
                  r.out, r.err);
    tu_run_free(&r);

    f = fixture("pool-check-missing-exec.ini");
    assert_refused(ARGV("--check", "-c", f), 1,
                   tu_fmt("pgq-pool: %s:9: [job report] handler: \"/nonexistent/pgq-report\" is "
                       "not an executable file", f));
    f = fixture("pool-check-missing-command.ini");
    assert_refused(ARGV("--check", "-c", f), 1,
                   tu_fmt("pgq-pool: %s:6: [job report] handler: \"pgq-no-such-command\" is not an "
                       "executable file on PATH", f));
    f = fixture("pool-check-missing-symbol.ini");
    assert_refused(ARGV("--check", "-c", f), 1,
                   tu_fmt("pgq-pool: %s:6: [job upper] handler: plugin %.*s/./examples/plugin-demo.so "
                       "has no symbol \"no_such_handler\"", f, (int)(strrchr(f, '/') - f), f));
    f = fixture("pool-check-callback.ini");
    const char *msg = tu_fmt("%s:6: [job send-email] handler: no callback \"send_email\" is "
                          "registered (callbacks exist only in programs embedding libpgq)", f);
    assert_refused(ARGV("--check", "-c", f), 1, tu_fmt("pgq-pool: %s", msg));

    /* a missing plugin file: dlerror's words are the system's */
    f = fixture("pool-check-missing-plugin.ini");
    r = pool_cmd(ARGV("--check", "-c", f));
    const char *want = tu_fmt("pgq-pool: %s:6: [job upper] handler: cannot load plugin: ", f);
    ck_assert_msg(r.code == 1 && strncmp(r.err, want, strlen(want)) == 0 &&
                  strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "exit %d, stderr [%s]",
                  r.code, r.err);
    tu_run_free(&r);

    /* relative handler paths are relative to the config's directory, from
     * any current directory (under systemd it is /); the shipped examples
     * pass */
    ck_assert_int_eq(mkdir(in_dir("sub"), 0755), 0);
    script("sub/h.sh", "exit 0\n");
    const char *rel = in_dir("rel.ini");
    tu_write_file(rel, "[job rel]\nhandler = exec sub/h.sh\n");
    const char *const shipped[] = { rel, tu_fmt("%s/../config/pool.ini", tu_test_dir()),
                                    tu_fmt("%s/../examples/demo.ini", tu_test_dir()),
                                    tu_fmt("%s/../examples/video/pool.ini", tu_test_dir()) };
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        const char *pool = tu_fmt("%s/pgq-pool", tu_bin_dir());
        r = tu_run_cmd("/", NULL, NULL, pool, ARGV(pool, "--check", "-c", shipped[i]), 120);
        ck_assert_msg(r.code == 0 && strstr(r.out, ": ok ("), "%s from /: exit %d [%s] [%s]",
                      shipped[i], r.code, r.out, r.err);
        tu_run_free(&r);
    }

    /* without --check, the same file does not start the pool */
    r = pool_cmd(ARGV("-c", fixture("pool-check-callback.ini"), "--db", tu_db_url()));
    ck_assert_msg(r.code == 1 && strstr(r.err, tu_fmt("ERROR pool: cannot start: %s\n", msg)) &&
                  !strstr(r.err, "started"), "exit %d, stderr [%s]", r.code, r.err);
    tu_run_free(&r);
    ck_assert_int_eq(q0("SELECT count(*) FROM pgq.workers"), 0);
}
END_TEST

START_TEST(usage)
{
    tu_run r = pool_cmd(ARGV("--help"));
    ck_assert_msg(r.code == 0 && strncmp(r.out, "usage: pgq-pool -c pool.ini", 27) == 0 &&
                  strcmp(r.err, "") == 0, "--help: exit %d [%s] [%s]", r.code, r.out, r.err);
    tu_run_free(&r);
    assert_refused(ARGV("--bogus"), 2,
                   "pgq-pool: unknown or incomplete argument \"--bogus\" (see --help)");
    assert_refused(ARGV("-c"), 2, "pgq-pool: unknown or incomplete argument \"-c\" (see --help)");
    assert_refused(ARGV("-q"), 2, "pgq-pool: -c pool.ini is required (see --help)");
}
END_TEST

/* ---- embedding ------------------------------------------------------------ */

START_TEST(embed_demo_runs)
{
    const int n = 25;
    /* The example's own job section (its typed job map, embed_jobs.h, is
     * generated from it), with this suite's pool timings. */
    char *example = tu_slurp(tu_fmt("%s/../examples/embed.ini", tu_test_dir()));
    char *job = strstr(example, "\n[job send-email]");
    ck_assert_ptr_nonnull(job);
    const char *ini = pool_ini("embed.ini", 3, "10s", tu_fmt("queues = emails\n%s", job));
    free(example);
    const char *outbox = in_dir("outbox");
    const char *demo = tu_fmt("%s/examples/embed-demo", tu_bin_dir());
    tu_run r = tu_run_cmd(dir, (const char *const[]){ tu_fmt("DATABASE_URL=%s", tu_db_url()), NULL },
                          NULL, demo, ARGV(demo, ini, tu_lld(n), outbox), 120);
    /* Every job started once and was done once (its events, counted by the
     * example's callback). */
    const char *want = tu_fmt("embed-demo: all jobs finished\nembed-demo: outcomes: started %d, "
                              "done %d, failed 0, dead 0, lease_lost 0, cancelled 0, snoozed 0, "
                              "released 0\n", n, n);
    ck_assert_msg(r.code == 0 && strcmp(r.out, want) == 0,
                  "embed-demo: exit %d\nstdout: [%s]\nstderr: [%s]", r.code, r.out, r.err);
    ck_assert_int_eq(q0("SELECT count(*) FROM pgq.jobs WHERE type = 'send-email' AND state = "
                        "'done'"), n);
    ck_assert_int_eq(q0("SELECT count(*) FROM pgq.jobs"), n);
    ck_assert_int_eq(tu_file_lines(outbox), n);
    /* one line per job, each job once, with the fields the handler got
     * from its typed view of the payload (the subject has quotes) */
    char *text = read_file(outbox);
    for (long long id = 1; id <= n; id++)
        ck_assert_msg(strstr(text, tu_fmt("job %lld: to user%lld@example.com, subject Hi \"there\"\n",
                                          id, id - 1)) != NULL, "no mail for job %lld:\n%s", id, text);
    free(text);
    ck_assert_int_eq(q0("SELECT count(*) FROM pgq.effects WHERE state = 'done'"), n);
    ck_assert_int_eq(q0("SELECT count(*) FROM pgq.workers"), 0);
    tu_run_free(&r);
}
END_TEST

/* ---- reload --------------------------------------------------------------- */

START_TEST(sighup_adds_a_job_type)
{
    /* Copies: tu_fmt's ring of 64 buffers is reused by the waits below,
     * and a slow run (TSan) went round it and wrote the broken file to "1". */
    char slow[1024], fresh[1024], v1[2048], ini[1024];
    snprintf(slow, sizeof slow, "%s", script("slow.sh",
                                             "put started-$PGQ_JOB_ID x\n"
                                             "while [ ! -e \"$D/go\" ]; do sleep 0.05; done\n"
                                             "exit 0\n"));
    snprintf(fresh, sizeof fresh, "%s", script("fresh.sh", "put fresh-$PGQ_JOB_ID x\nexit 0\n"));
    snprintf(v1, sizeof v1, "[job slow]\nhandler = exec %s\n", slow);
    snprintf(ini, sizeof ini, "%s", pool_ini("a.ini", 2, "30s", v1));
    struct pool *a = pool_start("a", ini);
    long long j1 = add_job("slow", "{}");
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld", j1))), WAIT_MS), "not started");

    char err[512];
    pgq_add_result ar;
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_add(c, "fresh", "{}", NULL, &ar, err, sizeof err) < 0,
                  "type fresh exists before the reload");

    pool_ini("a.ini", 2, "30s", tu_fmt("%s\n[job fresh]\nhandler = exec %s\n", v1, fresh));
    pool_signal(a, SIGHUP);
    P_ASSERT(WAIT_UNTIL(log_count(a, "reloaded job types") == 1, WAIT_MS), "no reload logged");
    long long ids[3];
    for (int i = 0; i < 3; i++) {
        ck_assert_msg(pgq_add(c, "fresh", "{}", NULL, &ar, err, sizeof err) == 0, "add: %s", err);
        ids[i] = ar.id;
    }
    for (int i = 0; i < 3; i++) {
        P_ASSERT(WAIT_UNTIL(strcmp(job_state(ids[i]), "done") == 0, WAIT_MS), "job %lld: %s",
                 ids[i], job_state(ids[i]));
        P_ASSERT(exists(in_dir(tu_fmt("fresh-%lld", ids[i]))) &&
                 exec_done_first_time(ids[i]), "job %lld: history %s", ids[i],
                 history(ids[i]));
    }
    /* the job in flight across the reload is still in hand, and finishes */
    P_ASSERT(strcmp(job_state(j1), "running") == 0, "job %lld: %s", j1, job_state(j1));
    tu_write_file(in_dir("go"), "");
    P_ASSERT(WAIT_UNTIL(strcmp(job_state(j1), "done") == 0, WAIT_MS), "job %lld: %s", j1,
             job_state(j1));
    P_ASSERT(exec_done_first_time(j1), "history %s", history(j1));

    /* a broken file is refused and the job types stay */
    tu_write_file(ini, "[pool]\nworkers = 2\n[job fresh]\nhandler = exec\n");
    pool_signal(a, SIGHUP);
    P_ASSERT(WAIT_UNTIL(log_count(a, "reload failed, keeping the old job types") == 1, WAIT_MS),
             "no failed reload logged");
    ck_assert_msg(pgq_add(c, "fresh", "{}", NULL, &ar, err, sizeof err) == 0, "add: %s", err);
    P_ASSERT(WAIT_UNTIL(strcmp(job_state(ar.id), "done") == 0, WAIT_MS), "job %lld: %s",
             (long long)ar.id, job_state(ar.id));
    pgq_disconnect(c);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* ---- pinned xmin ---------------------------------------------------------- */

/* Index and heap blocks of pgq.jobs' claim index and heap touched so far,
 * once every pool connection has gone (a backend flushes its statistics
 * when it exits). */
static long long claim_blocks(void)
{
    P_ASSERT(WAIT_UNTIL(q0("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgq'"
                           " AND datname = current_database()") == 0, WAIT_MS),
             "pool connections are still there");
    tu_sleep_ms(200);
    tu_exec("SELECT pg_stat_clear_snapshot()", 0, NULL);
    return q0("SELECT (SELECT idx_blks_hit + idx_blks_read FROM pg_statio_user_indexes"
              "          WHERE indexrelname = 'jobs_claim_idx')"
              "     + (SELECT heap_blks_hit + heap_blks_read FROM pg_statio_user_tables"
              "          WHERE schemaname = 'pgq' AND relname = 'jobs')");
}

/* Drain n new jobs with one pool and stop it; blocks touched per job. */
static double drain_blocks_per_job(const char *name, const char *ini, int n, long long before)
{
    struct pool *a = pool_start(name, ini);
    add_jobs("pinned", "{\"effect\":0}", n);
    long long total = q0("SELECT count(*) FROM pgq.jobs");
    P_ASSERT(WAIT_UNTIL(njobs("done") == total, WAIT_MS), "%lld of %lld done", njobs("done"),
             total);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    return (double)(claim_blocks() - before) / n;
}

/* A session holds a transaction with an xid open: no dead row of pgq.jobs
 * can be removed while it does. A pool claiming from the start of the claim
 * index would walk the entries of every job claimed since, more with every
 * job (quadratic); with claim hints its blocks per job stay level. */
START_TEST(pool_claims_stay_flat_under_a_pinned_xmin)
{
    PGconn *pin = PQconnectdb(tu_db_url());
    P_ASSERT(PQstatus(pin) == CONNECTION_OK, "pin: %s", PQerrorMessage(pin));
    PQclear(PQexec(pin, "BEGIN"));
    PGresult *x = PQexec(pin, "SELECT txid_current()");
    P_ASSERT(PQresultStatus(x) == PGRES_TUPLES_OK, "pin: %s", PQresultErrorMessage(x));
    PQclear(x);
    const char *ini = pool_ini("pin.ini", 4, "30s",
                               tu_fmt("[job pinned]\nhandler = plugin %s ledger_job\n", plugin()));
    long long b0 = claim_blocks();
    double first = drain_blocks_per_job("pin1", ini, 300, b0);
    long long b1 = claim_blocks();
    double second = drain_blocks_per_job("pin2", ini, 2700, b1);
    long long dead = q0("SELECT count(*) FROM pgq.jobs");   /* each left dead versions behind */
    fprintf(stderr, "pool_test: pinned xmin: claim index + heap blocks per job %.1f over the "
            "first 300 jobs, %.1f over the next 2,700 (%lld jobs done under the pin)\n",
            first, second, dead);
    P_ASSERT(second <= 2 * first + 4, "blocks per job grew from %.1f to %.1f while the xmin "
             "was pinned: claims walk the dead entries", first, second);
    PQclear(PQexec(pin, "COMMIT"));
    PQfinish(pin);
}
END_TEST

/* ---- operating: pause, cancel running (issue 12) --------------------------- */

/* A paused queue is claimed by no pool: jobs added stay ready while one
 * that was running finishes; after resume the pool takes them at once. */
START_TEST(paused_queue_is_not_claimed)
{
    const char *sh = script("gate.sh", "put started-$PGQ_JOB_ID $$\n"
                                       "while [ ! -e \"$D/go\" ]; do sleep 0.05; done\n");
    struct pool *a = pool_start("a", pool_ini("a.ini", 3, "30s",
                                              tu_fmt("[job gate]\nhandler = exec %s\n", sh)));
    long long first = add_job("gate", "{}");
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld", first))), WAIT_MS),
             "job %lld did not start", first);
    char err[512];
    pgq_conn *c = tu_connect();
    const char *q[] = { "default" };
    bool changed = false;
    P_ASSERT(pgq_pause(c, q, 1, true, "pool test", &changed, err, sizeof err) == 0, "%s", err);
    P_ASSERT(changed, "default was paused already");
    long long later[3] = { add_job("gate", "{}"), add_job("gate", "{}"), add_job("gate", "{}") };
    tu_sleep_ms(800);   /* four polls, and the listener woke a worker for each add */
    P_ASSERT(njobs("ready") == 3 && njobs("running") == 1, "paused: %lld ready, %lld running",
             njobs("ready"), njobs("running"));
    tu_write_file(in_dir("go"), "");
    P_ASSERT(WAIT_UNTIL(strcmp(job_state(first), "done") == 0, WAIT_MS),
             "the running job did not finish: %s", job_state(first));
    tu_sleep_ms(500);
    P_ASSERT(njobs("ready") == 3, "a job of the paused queue was claimed");
    P_ASSERT(pgq_pause(c, q, 1, false, "pool test", &changed, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 3; i++)
        P_ASSERT(WAIT_UNTIL(strcmp(job_state(later[i]), "done") == 0, WAIT_MS),
                 "job %lld after resume: %s", later[i], job_state(later[i]));
    P_ASSERT(q0("SELECT count(*) FROM pgq.actions WHERE action IN ('pause', 'resume')"
                " AND detail = 'pool test: default'") == 2, "pause and resume not recorded");
    pgq_disconnect(c);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* pgq cancel of a running exec job: the job is cancelled at once, its
 * command is stopped (told by NOTIFY pgq_cancel: the heartbeat here is 30 s,
 * and the command must be stopped well before the next one), its later exit
 * changes nothing, and the pool carries on. */
START_TEST(cancelled_running_job_is_stopped)
{
    const char *sh = script("forever.sh", "put started-$PGQ_JOB_ID $$\n"
                                          "trap 'put term-$PGQ_JOB_ID 1; exit 1' TERM\n"
                                          "while :; do sleep 0.05; done\n");
    const char *ini = in_dir("a.ini");
    tu_write_file(ini, tu_fmt("[pool]\nworkers = 2\nlease_ttl = 90s\nheartbeat = 30s\n"
                              "poll = 100ms\nshutdown_timeout = 5s\n\n[job forever]\n"
                              "handler = exec %s\ntimeout = 120s\n", sh));
    struct pool *a = pool_start("a", ini);
    long long id = add_job("forever", "{}");
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("started-%lld", id))), WAIT_MS),
             "job %lld did not start", id);
    char err[512];
    pgq_conn *c = tu_connect();
    int64_t ids[] = { id }, count = 0;
    bool done = false;
    int64_t t0 = tu_now_ms();
    P_ASSERT(pgq_cancel(c, ids, 1, "pool test", &done, &count, err, sizeof err) == 0, "%s", err);
    P_ASSERT(done && strcmp(job_state(id), "cancelled") == 0, "not cancelled: %s",
             job_state(id));
    P_ASSERT(WAIT_UNTIL(exists(in_dir(tu_fmt("term-%lld", id))), 20000),
             "the command of the cancelled job got no SIGTERM within 20 s (the heartbeat is "
             "30 s: was the pool told?)");
    fprintf(stderr, "pool_test: cancel of a running exec job: SIGTERM %lld ms after the cancel\n",
            (long long)(tu_now_ms() - t0));
    tu_sleep_ms(500);
    P_ASSERT(strcmp(job_state(id), "cancelled") == 0 &&
             strcmp(history(id), "1:cancelled:cancelled by pool test") == 0,
             "after the command's exit: %s, history %s", job_state(id), history(id));
    pgq_disconnect(c);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* Two pools with different [job T] sections no longer overwrite each
 * other's registered definition: the second refuses to start, naming the
 * first and what differs; `pgq types apply` replaces it on purpose, and a
 * pool whose section agrees then starts. */
START_TEST(pools_do_not_overwrite_each_others_job_types)
{
    const char *a_ini = pool_ini("a.ini", 1, "5s", "[job shared]\nhandler = exec /bin/true\n"
                                                   "max_retries = 3\n");
    const char *b_ini = pool_ini("b.ini", 1, "5s", "[job shared]\nhandler = exec /bin/true\n"
                                                   "max_retries = 7\nqueue = other\n");
    struct pool *a = pool_start("a", a_ini);
    struct pool *b = pool_try_start("b", b_ini);
    P_ASSERT(pool_gone(b), "pool b started with a conflicting [job shared]");
    pool_wait_exit(b, 1);
    char *log = pool_log(b);
    P_ASSERT(strstr(log, "job type \"shared\": ") && strstr(log, "registered another definition")
             && strstr(log, "queue default vs other, max_retries 3 vs 7"), "pool b: %s", log);
    free(log);
    P_ASSERT(q0("SELECT max_retries FROM pgq.job_types WHERE type = 'shared'") == 3,
             "pool b replaced the definition");
    /* the operator's word replaces it; a pool that agrees starts */
    const char *pgq = tu_fmt("%s/pgq", tu_bin_dir());
    tu_run r = tu_run_cmd(dir, (const char *const[]){ tu_fmt("DATABASE_URL=%s", tu_db_url()),
                                                      NULL },
                          NULL, pgq, (const char *const[]){ pgq, "types", "apply", "-c", b_ini,
                                                            NULL }, 120);
    P_ASSERT(r.code == 0, "pgq types apply: %d %s", r.code, r.err);
    tu_run_free(&r);
    P_ASSERT(q0("SELECT max_retries FROM pgq.job_types WHERE type = 'shared'") == 7,
             "pgq types apply did not replace the definition");
    struct pool *b2 = pool_start("b2", b_ini);
    pool_signal(b2, SIGTERM);
    pool_wait_exit(b2, 0);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* ---- metrics -------------------------------------------------------------- */

/* One HTTP request to 127.0.0.1:port; the whole response (head and
 * body), malloc'd. */
static char *http(int port, const char *request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = { 30, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof a) == 0, "connect to :%d: %s",
                  port, strerror(errno));
    ck_assert_int_eq(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    ssize_t r;
    while ((r = read(fd, b + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n < 4096)
            b = realloc(b, cap *= 2);
    }
    close(fd);
    b[n] = '\0';
    return b;
}

/* The value of the sample line that starts with `series ` (name and
 * labels exactly), or -1 when there is none. */
static double sample(const char *text, const char *series)
{
    const char *key = tu_fmt("\n%s ", series);
    const char *at = strstr(text, key);
    return at ? strtod(at + strlen(key), NULL) : -1;
}

/* pgq-pool with [pool] metrics_listen: a scrape is valid by promtool, its
 * counters are the jobs the pool ran (5 done, 2 failed then dead), its
 * histograms counted every attempt, the fleet gauges agree with the
 * database; other paths and methods are refused; a second pool on the same
 * port does not start and says why. */
START_TEST(metrics_endpoint_counts_jobs)
{
    const char *ini = in_dir("m.ini");
    tu_write_file(ini, "[pool]\nworkers = 3\nlease_ttl = 1s\nheartbeat = 200ms\npoll = 100ms\n"
                       "metrics_listen = 127.0.0.1:0\n\n"
                       "[job ok]\nhandler = exec /bin/true\n\n"
                       "[job bad]\nhandler = exec /bin/false\nmax_retries = 1\n"
                       "backoff_base = 0s\n");
    struct pool *a = pool_start("m", ini);
    char *log = pool_log(a);
    const char *at = strstr(log, "serving http://127.0.0.1:");
    P_ASSERT(at, "no metrics address in the log");
    int port = atoi(at + strlen("serving http://127.0.0.1:"));
    free(log);
    P_ASSERT(port > 0, "port %d", port);
    add_jobs("ok", "{}", 5);
    add_jobs("bad", "{}", 2);
    wait_all_finished(7);
    /* Outcomes are counted once committed: the last may come a moment
     * after the database shows it. */
    char *text = NULL;
    P_ASSERT(WAIT_UNTIL((free(text), text = http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
                         sample(text, "pgq_jobs_done_total{type=\"ok\"}") == 5 &&
                         sample(text, "pgq_jobs_dead_total{type=\"bad\"}") == 2), WAIT_MS),
             "scrape: %s", text);
    P_ASSERT(strncmp(text, "HTTP/1.1 200 OK\r\n", 17) == 0 &&
             strstr(text, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
             "head: %.300s", text);
    const char *body = strstr(text, "\r\n\r\n") + 4;
    const char *file = in_dir("scrape.prom");
    tu_write_file(file, body);
    int st;
    char *out = tu_sh(tu_fmt("command -v promtool >/dev/null || { echo 'promtool not found: "
                       "scripts/deps.sh installs prometheus'; exit 99; }; promtool check "
                       "metrics < '%s' 2>&1", file), &st);
    P_ASSERT(st == 0 && !*out, "promtool check metrics: status %d: %s\n%s", st, out, body);
    free(out);
    const struct {
        const char *series;
        double want;
    } want[] = {
        { "pgq_jobs_started_total{type=\"ok\"}", 5 },
        { "pgq_jobs_done_total{type=\"ok\"}", 5 },
        { "pgq_jobs_failed_total{type=\"ok\"}", 0 },
        { "pgq_jobs_started_total{type=\"bad\"}", 4 },
        { "pgq_jobs_failed_total{type=\"bad\"}", 2 },
        { "pgq_jobs_dead_total{type=\"bad\"}", 2 },
        { "pgq_jobs_done_total{type=\"bad\"}", 0 },
        { "pgq_jobs_lease_lost_total{type=\"bad\"}", 0 },
        { "pgq_job_duration_seconds_count{type=\"ok\"}", 5 },
        { "pgq_job_duration_seconds_bucket{type=\"bad\",le=\"+Inf\"}", 4 },
        { "pgq_job_queue_wait_seconds_count{type=\"bad\"}", 4 },
        { "pgq_jobs{queue=\"default\",state=\"done\"}", 5 },
        { "pgq_jobs{queue=\"default\",state=\"dead\"}", 2 },
        { "pgq_jobs{queue=\"default\",state=\"ready\"}", 0 },
        { "pgq_pool_jobs_in_flight", 0 },
        { "pgq_pool_workers", 3 },
        { "pgq_pool_reconnects_total", 0 },
        { "pgq_pool_fleet_up", 1 },
        { tu_fmt("pgq_build_info{version=\"%s\",schema=\"%d\"}", PGQ_VERSION,
                 pgq_schema_version()), 1 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        P_ASSERT(sample(body, want[i].series) == want[i].want, "%s: %g, want %g\n%s",
                 want[i].series, sample(body, want[i].series), want[i].want, body);
    free(text);
    text = http(port, "GET /other HTTP/1.0\r\n\r\n");
    P_ASSERT(strncmp(text, "HTTP/1.1 404 ", 13) == 0, "%.200s", text);
    free(text);
    text = http(port, "POST /metrics HTTP/1.1\r\n\r\n");
    P_ASSERT(strncmp(text, "HTTP/1.1 405 ", 13) == 0, "%.200s", text);
    free(text);
    text = http(port, "nonsense\r\n\r\n");
    P_ASSERT(strncmp(text, "HTTP/1.1 400 ", 13) == 0, "%.200s", text);
    free(text);

    /* The port is taken: the second pool says so and exits. */
    const char *ini2 = in_dir("m2.ini");
    tu_write_file(ini2, tu_fmt("[pool]\nworkers = 1\nmetrics_listen = 127.0.0.1:%d\n", port));
    struct pool *b = pool_try_start("m2", ini2);
    pool_wait_exit(b, -1);
    log = pool_log(b);
    P_ASSERT(strstr(log, tu_fmt("[pool] metrics_listen = 127.0.0.1:%d: cannot listen: Address "
                                "already in use", port)), "pool m2: %s", log);
    free(log);
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
}
END_TEST

/* ---- dependencies: a fan-in across three pools --------------------------------- */

/* 100 parents and a child waiting for all of them, added in one batch
 * while three pools (adaptive batching: acks of several workers in one
 * statement) run them: the child runs once, after every parent, in one
 * attempt, and its run_once effect is written once. */
START_TEST(three_pools_run_a_fan_in_child_once)
{
    const char *ini = pool_ini("fan.ini", 4, "30s",
                               tu_fmt("[job work]\nhandler = plugin %s ledger_job\n", plugin()));
    struct pool *p[3] = { pool_start("f1", ini), pool_start("f2", ini), pool_start("f3", ini) };
    enum { PARENTS = 100 };
    static pgq_add_item items[PARENTS + 1];
    static pgq_add_result res[PARENTS + 1];
    static size_t all[PARENTS];
    for (int i = 0; i < PARENTS; i++) {
        items[i] = (pgq_add_item){ "work", "{\"effect\": 0}", PGQ_ADD_OPTS_INIT };
        all[i] = (size_t)i;
    }
    items[PARENTS] = (pgq_add_item){ "work", "{}", PGQ_ADD_OPTS_INIT };
    items[PARENTS].opts.after_items = all;
    items[PARENTS].opts.n_after_items = PARENTS;
    char err[512];
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_add_batch(c, items, PARENTS + 1, res, err, sizeof err) == 0, "%s", err);
    pgq_disconnect(c);
    long long child = res[PARENTS].id;
    wait_all_finished(PARENTS + 1);
    P_ASSERT(njobs("done") == PARENTS + 1, "%lld done", njobs("done"));
    P_ASSERT(q1("SELECT attempts FROM pgq.jobs WHERE id = $1", child) == 1, "child attempts: %s",
             history(child));
    P_ASSERT(q1("SELECT count(*) FROM test_ledger WHERE job_id = $1", child) == 1,
             "child's effect written %lld times", q1("SELECT count(*) FROM test_ledger WHERE"
                                                     " job_id = $1", child));
    /* (Not compared: the parents' finished_at with the child's started_at.
     * Both are now(), the start of their transactions, and the claim that
     * takes the child may be a transaction that began before the last
     * parent's completion did: its claim statement runs after that commit.
     * That the child cannot be claimed while a parent is not done is
     * deps: fan_in_of_100_parents_releases_the_child_once.) */
    for (int i = 0; i < 3; i++) {
        pool_signal(p[i], SIGTERM);
        pool_wait_exit(p[i], 0);
    }
}
END_TEST

/* ---- dependencies: the video pipeline example ------------------------------ */

/* examples/video: a pool of three idle workers and a chain transcode ->
 * thumbnails -> notify (enqueue.sh, pgq add --after). No step fails
 * (thumbnails would without the transcode's file, notify without both:
 * with three idle workers, each would run at once without --after), and
 * the notification is written once. */
START_TEST(video_pipeline_example_runs_in_order)
{
    const char *ini = tu_fmt("%s/../examples/video/pool.ini", tu_test_dir());
    struct pool *p = pool_start("video", ini);
    const char *out = in_dir("video-out");
    const char *sh = tu_fmt("%s/../examples/video/enqueue.sh", tu_test_dir());
    tu_run r = tu_run_cmd(dir, (const char *const[]){ tu_fmt("PGQ=%s/pgq", tu_bin_dir()), NULL },
                          NULL, sh, (const char *const[]){ sh, "/videos/holiday.mov", out,
                                                           "--db", tu_db_url(), NULL }, 120);
    P_ASSERT(r.code == 0, "enqueue.sh: exit %d [%s]", r.code, r.err);
    long long t = 0, th = 0, n = 0;
    P_ASSERT(sscanf(r.out, "%lld %lld %lld", &t, &th, &n) == 3, "enqueue.sh printed [%s]", r.out);
    tu_run_free(&r);
    P_ASSERT(WAIT_UNTIL(strcmp(job_state(n), "done") == 0 || strcmp(job_state(n), "cancelled") == 0,
                        WAIT_MS), "notify is %s", job_state(n));
    P_ASSERT(strcmp(job_state(t), "done") == 0 && strcmp(job_state(th), "done") == 0 &&
             strcmp(job_state(n), "done") == 0, "states %s %s %s", job_state(t), job_state(th),
             job_state(n));
    P_ASSERT(q0("SELECT count(*) FROM pgq.job_attempts WHERE outcome <> 'done'") == 0,
             "a step failed: %s", history(th));
    /* The order is the handlers' own check: thumbnails fails without the
     * transcode's file, notify without the thumbnails (no failed attempt
     * above), and the notification counts what it found. (Timestamps are
     * not compared: both are the start of their transactions, see
     * three_pools_run_a_fan_in_child_once.) */
    char *log = read_file(tu_fmt("%s/notifications.log", out));
    P_ASSERT(log && strcmp(log, tu_fmt("holiday ready: %s/holiday.mp4, 3 thumbnails\n", out)) == 0,
             "notifications.log: [%s]", log ? log : "(none)");
    free(log);
    pool_signal(p, SIGTERM);
    pool_wait_exit(p, 0);
}
END_TEST

/* ---- periodic jobs ([cron NAME]) -------------------------------------------- */

static const char *cron_ini(const char *name, const char *schedule)
{
    /* The jobs go to a queue no pool serves: they stay as they were added. */
    return pool_ini(name, 1, "5s",
                    tu_fmt("[job tick]\nqueue = cron-out\nhandler = exec /bin/true\n"
                           "require = n:number\n\n"
                           "[cron every]\nschedule = %s\ntype = tick\npayload = {\"n\": 1}\n",
                           schedule));
}

/* Issue 12: three pools with the same `@every 1s` schedule for 10 s make
 * one job per tick, 9 to 11 of them, and no tick twice (from the database:
 * each job records its tick). The schedule is registered here first, as a
 * pool registers it, so that its last tick before any job (t0) is known
 * exactly: read from a pool's registration, it could already be the first
 * job's tick on a loaded machine (a failure seen under ASan at load 30).
 * The pools' own registrations keep that tick (same schedule). The run
 * lasts ten ticks of the database's clock from the first job. */
START_TEST(three_pools_one_job_per_tick)
{
    const char *ini = cron_ini("cron.ini", "@every 1s");
    long long t0 = q0("SELECT (extract(epoch FROM pgq.cron_register('every', '@every 1s', 'UTC',"
                      " 'tick', NULL, date_trunc('second', now()),"
                      " date_trunc('second', now()) + interval '1 s', 'test')) * 1000)::bigint");
    struct pool *a = pool_start("a", ini), *b = pool_start("b", ini), *c = pool_start("c", ini);
    P_ASSERT(WAIT_UNTIL(q0("SELECT count(*) FROM pgq.jobs WHERE cron = 'every'") >= 1, WAIT_MS),
             "no job from the schedule");
    long long first = q0("SELECT (extract(epoch FROM min(cron_tick)) * 1000)::bigint"
                         " FROM pgq.jobs WHERE cron = 'every'");
    P_ASSERT(WAIT_UNTIL(q1("SELECT count(*) FROM pgq.cron WHERE last_tick >= "
                           "'epoch'::timestamptz + ($1::bigint + 9000) * interval '1 ms'", first) == 1,
                        WAIT_MS), "ten ticks did not pass");
    pool_signal(a, SIGTERM);
    pool_signal(b, SIGTERM);
    pool_signal(c, SIGTERM);
    pool_wait_exit(a, 0);
    pool_wait_exit(b, 0);
    pool_wait_exit(c, 0);
    long long n = q0("SELECT count(*) FROM pgq.jobs WHERE cron = 'every'");
    long long ticks = q0("SELECT count(DISTINCT cron_tick) FROM pgq.jobs WHERE cron = 'every'");
    long long t1 = q0("SELECT (extract(epoch FROM last_tick) * 1000)::bigint FROM pgq.cron");
    printf("cron: three pools, %lld ticks of the database's clock: %lld jobs, %lld distinct ticks; "
           "jobs added by pool a %d, b %d, c %d\n", (t1 - t0) / 1000, n, ticks,
           log_count(a, "cron: every: job="), log_count(b, "cron: every: job="),
           log_count(c, "cron: every: job="));
    P_ASSERT(ticks == n, "%lld jobs for %lld ticks: a tick was enqueued twice", n, ticks);
    P_ASSERT(n >= 9 && n <= 11 + (t1 - first - 9000) / 1000, "%lld jobs over %lld ms from the first",
             n, t1 - first);
    /* every job is a whole-second tick in (t0, t1], at run_at = its tick */
    P_ASSERT(q1("SELECT count(*) FROM pgq.jobs WHERE cron = 'every' AND cron_tick = run_at"
                " AND extract(milliseconds FROM cron_tick)::int % 1000 = 0"
                " AND cron_tick > 'epoch'::timestamptz + $1::bigint * interval '1 ms'", t0) == n,
             "jobs with ticks that are not the schedule's");
    P_ASSERT(q0("SELECT count(*) FROM pgq.jobs WHERE cron = 'every' AND type = 'tick' AND "
                "queue = 'cron-out' AND payload = '{\"n\": 1}'") == n, "jobs of another shape");
}
END_TEST

/* After downtime only the latest missed tick runs: a schedule whose last
 * job was ten minutes ago gets one catch-up job at once, for the current
 * tick, not ten. */
START_TEST(missed_ticks_give_one_catch_up)
{
    const char *ini = cron_ini("cron.ini", "@every 1m");
    /* as if the fleet last added a job ten minutes ago and then stopped */
    tu_exec("INSERT INTO pgq.cron (name, schedule, timezone, type, last_tick)"
            " VALUES ('every', '@every 1m', 'UTC', 'tick',"
            "         date_trunc('minute', now()) - interval '10 minutes')", 0, NULL);
    long long before = q0("SELECT (extract(epoch FROM date_trunc('minute', now())) * 1000)::bigint");
    struct pool *a = pool_start("a", ini);
    P_ASSERT(WAIT_UNTIL(q0("SELECT count(*) FROM pgq.jobs WHERE cron = 'every'") >= 1, WAIT_MS),
             "no catch-up job");
    long long after = q0("SELECT (extract(epoch FROM date_trunc('minute', now())) * 1000)::bigint");
    pool_signal(a, SIGTERM);
    pool_wait_exit(a, 0);
    long long n = q0("SELECT count(*) FROM pgq.jobs WHERE cron = 'every'");
    /* one job, or two if a minute began meanwhile */
    P_ASSERT(n == 1 || (n == 2 && after > before), "%lld jobs after ten missed ticks", n);
    P_ASSERT(q1("SELECT count(*) FROM pgq.jobs WHERE cron = 'every'"
                " AND cron_tick >= 'epoch'::timestamptz + $1::bigint * interval '1 ms'", before) == n,
             "a stale tick was enqueued");
    char *log = pool_log(a);
    P_ASSERT(strstr(log, "a catch-up run: ticks since ") != NULL, "log: %s", log);
    free(log);
}
END_TEST

Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    struct {
        const char *name;
        const TTest *tests[4];
    } groups[] = {
        { "crash", { kill9_handlers_die_and_jobs_recover } },
        { "drain", { sigterm_drains_short_jobs, sigterm_releases_long_jobs,
                     sigterm_releases_in_process_handlers, second_sigterm_exits_at_once } },
        { "faults", { terminate_backends_mid_load, postgres_restart_mid_load,
                      database_unreachable_past_lease, hanging_exec_killed_at_timeout } },
        { "exec", { exec_first_success_keeps_its_figures_on_the_job_row } },
        { "fencing", { sigstop_past_lease_exec_changes_nothing,
                       sigstop_past_lease_plugin_changes_nothing, lease_lost_stops_handlers } },
        { "scale", { three_pools_twenty_thousand_jobs } },
        { "batch", { batched_pools_survive_kill9, batched_sigterm_releases_buffered,
                     batched_terminate_backends_mid_load, batched_lost_leases_are_dropped } },
        { "adaptive", { adaptive_claims_short_jobs_together,
                        adaptive_holds_no_buffer_for_long_jobs,
                        adaptive_sigterm_releases_buffered } },
        /* The promises again with batch = 1 (the groups above run without
         * a batch key, the default). */
        { "strict", { kill9_handlers_die_and_jobs_recover, sigterm_drains_short_jobs,
                      lease_lost_stops_handlers, terminate_backends_mid_load } },
        { "idle", { idle_pool_sleeps } },
        { "pinned", { pool_claims_stay_flat_under_a_pinned_xmin } },
        { "config", { bad_config_files, check_validates_handlers, usage,
                      pools_do_not_overwrite_each_others_job_types } },
        { "embed", { embed_demo_runs } },
        { "reload", { sighup_adds_a_job_type } },
        { "operate", { paused_queue_is_not_claimed, cancelled_running_job_is_stopped } },
        { "metrics", { metrics_endpoint_counts_jobs } },
        { "deps", { video_pipeline_example_runs_in_order, three_pools_run_a_fan_in_child_once } },
        { "cron", { three_pools_one_job_per_tick, missed_ticks_give_one_catch_up } },
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_add_unchecked_fixture(tc, make_suite_dir, remove_suite_dir);
        if (strcmp(groups[g].name, "strict") == 0)
            tcase_add_checked_fixture(tc, strict_mode, NULL);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, TU_TIMEOUT);
        for (int i = 0; i < 4 && groups[g].tests[i]; i++)
            tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}
