/* pgq-chaos: several pools on one database under continuous load, while a
 * driver injects faults at random intervals; then checks that nothing was
 * lost, no run_once effect repeated, and the state machine's invariants
 * hold. `make chaos` runs it long (CHAOS_SECONDS); the chaos suite of
 * `make test` runs it short.
 *
 *   pgq-chaos [--db URL] [--seconds N] [--pools N] [--workers N] [--rate N]
 *             [--idle N] [--seed N] [--faults LIST]
 *
 * Faults (--faults, comma-separated; default all that the set-up allows):
 *   kill       SIGKILL a pool, start a new one in its place
 *   stop       SIGSTOP a pool past its lease (2 x lease_ttl), then SIGCONT:
 *              its jobs are reaped by the others and its late completions
 *              must change nothing
 *   terminate  pg_terminate_backend every pool connection
 *   restart    pg_ctl restart -m fast        } need PGQ_PG_BINDIR and
 *   crash      pg_ctl restart -m immediate   } PGQ_PG_DATADIR (make test's)
 *   slots      open connections until the server refuses more, hold 3 s
 *   pin        an idle-in-transaction session holding an xid for 10 s (4 s in
 *              runs shorter than two minutes)
 *   idle       hold --idle idle connections (default 300) for 5 s
 *
 * The load: jobs of type "chaos" run by the test plugin's ledger_job
 * (tests/plugins/pool_plugin.c): half write a run_once effect into
 * test_ledger, 10% of attempts fail (before, inside or after the effect).
 * Every job has an idempotency key, so the producer retries an add whose
 * outcome it could not learn (connection broken at commit) without making
 * a second job: the keys it was told about are the jobs that must exist.
 *
 * Recovery time of a fault: from the moment it ends (the pool restarted,
 * the server back, the connections released) until the first job finishes
 * after it. Exit 0 when every check passed; the report goes to stdout. */
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pgq.h"

#define MAX_POOLS 8
#define LEASE_MS 2000

enum fault { F_KILL, F_STOP, F_TERMINATE, F_RESTART, F_CRASH, F_SLOTS, F_PIN, F_IDLE, NFAULTS };
static const char *const fault_names[NFAULTS] = { "kill", "stop", "terminate", "restart",
                                                  "crash", "slots", "pin", "idle" };

static struct {
    const char *url, *bindir, *pool_bin, *plugin;
    const char *pg_bindir, *pg_datadir, *pg_runas, *pg_log;
    char dir[256], ini[300];
    int seconds, npools, workers, rate, idle;
    unsigned seed;
    bool enabled[NFAULTS];
} opt = { .seconds = 60, .npools = 3, .workers = 4, .rate = 200, .idle = 300 };

static pid_t pools[MAX_POOLS];
static int pool_gen[MAX_POOLS];
static atomic_long keys_acked;      /* jobs the producer was told exist */
static atomic_bool producing = true;
static long fault_count[NFAULTS];
static double recovery_ms[NFAULTS][4096];
static int failures;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("chaos: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("chaos: FAILED: ");
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    failures++;
}

/* ---- the driver's own database access: survives restarts ----------------- */

static PGconn *conn_new(void)
{
    PGconn *c = PQconnectdb(opt.url);
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* One integer from sql, retried (reconnecting) for up to 60 s while the
 * server is away. -1 when it never answered. */
static long long q(PGconn **c, const char *sql)
{
    int64_t until = now_ms() + 60000;
    for (;;) {
        if (!*c)
            *c = conn_new();
        if (*c) {
            PGresult *r = PQexec(*c, sql);
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
                long long v = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
                PQclear(r);
                return v;
            }
            if (PQresultStatus(r) == PGRES_COMMAND_OK) {
                PQclear(r);
                return 0;
            }
            bool broken = PQstatus(*c) != CONNECTION_OK;
            if (!broken)
                fprintf(stderr, "chaos: %s: %s", sql, PQresultErrorMessage(r));
            PQclear(r);
            if (!broken)
                return -1;
            PQfinish(*c);
            *c = NULL;
        }
        if (now_ms() > until)
            return -1;
        sleep_ms(200);
    }
}

static long long finished(PGconn **c)
{
    return q(c, "SELECT count(*) FROM pgq.jobs WHERE state IN ('done', 'dead')");
}

/* ---- pools --------------------------------------------------------------- */

static pid_t pool_spawn(int i)
{
    char log[400];
    snprintf(log, sizeof log, "%s/pool%d.%d.log", opt.dir, i, pool_gen[i]++);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("chaos: fork");
        exit(2);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        unsetenv("DATABASE_URL");
        execl(opt.pool_bin, "pgq-pool", "-c", opt.ini, "--db", opt.url, "-q", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* A pool that exited by itself is a finding (it should outlive every fault):
 * say so and start another. */
static void reap_pools(void)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < opt.npools; i++) {
            if (pools[i] != pid)
                continue;
            fail("pool %d (pid %d) exited by itself (%s %d); see %s/pool%d.*.log", i, (int)pid,
                 WIFSIGNALED(st) ? "signal" : "status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), opt.dir, i);
            pools[i] = pool_spawn(i);
        }
    }
}

static void write_ini(void)
{
    snprintf(opt.ini, sizeof opt.ini, "%s/pool.ini", opt.dir);
    FILE *f = fopen(opt.ini, "w");
    if (!f) {
        perror(opt.ini);
        exit(2);
    }
    fprintf(f, "[pool]\nworkers = %d\nlease_ttl = %dms\nheartbeat = 400ms\npoll = 200ms\n"
            "shutdown_timeout = 5s\n\n[job chaos]\nhandler = plugin %s ledger_job\n"
            "max_retries = 50\nbackoff_base = 100ms\nbackoff_max = 1s\ntimeout = 30s\n",
            opt.workers, LEASE_MS, opt.plugin);
    fclose(f);
}

/* ---- the producer -------------------------------------------------------- */

static void *producer(void *arg)
{
    (void)arg;
    enum { BATCH = 20 };
    long next = 0;
    pgq_conn *c = NULL;
    char err[1024];
    int64_t every = 1000 * BATCH / (opt.rate > 0 ? opt.rate : 1);
    while (atomic_load(&producing)) {
        int64_t t0 = now_ms();
        static char keys[BATCH][32], payloads[BATCH][80];
        pgq_add_item items[BATCH];
        pgq_add_result res[BATCH];
        for (int i = 0; i < BATCH; i++) {
            long k = next + i;
            snprintf(keys[i], sizeof keys[i], "chaos-%ld", k);
            snprintf(payloads[i], sizeof payloads[i],
                     "{\"fail\": 10, \"sleep_ms\": %ld%s}", 5 + k % 40,
                     k % 2 ? "" : ", \"effect\": 0");
            items[i] = (pgq_add_item){ "chaos", payloads[i], PGQ_ADD_OPTS_INIT };
            items[i].opts.idempotency_key = keys[i];
        }
        /* the same keys until the batch is known committed */
        while (atomic_load(&producing)) {
            if (!c && pgq_connect(opt.url, &c, err, sizeof err) < 0) {
                c = NULL;
                sleep_ms(200);
                continue;
            }
            if (pgq_add_batch(c, items, BATCH, res, err, sizeof err) == 0)
                break;
            pgq_disconnect(c);
            c = NULL;
            sleep_ms(100);
        }
        if (!atomic_load(&producing))
            break;
        next += BATCH;
        atomic_store(&keys_acked, next);
        int64_t left = every - (now_ms() - t0);
        if (left > 0)
            sleep_ms(left);
    }
    pgq_disconnect(c);
    return NULL;
}

/* ---- faults -------------------------------------------------------------- */

static bool server_control(void)
{
    return opt.pg_bindir && *opt.pg_bindir && opt.pg_datadir && *opt.pg_datadir;
}

static bool pg_ctl_restart(const char *mode)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s '%s/pg_ctl' -D '%s' -w -t 120 restart -m %s >>'%s' 2>&1",
             opt.pg_runas ? opt.pg_runas : "", opt.pg_bindir, opt.pg_datadir, mode,
             opt.pg_log && *opt.pg_log ? opt.pg_log : "/dev/null");
    int rc = system(cmd);
    if (rc != 0)
        fail("%s: exit %d", cmd, rc);
    return rc == 0;
}

/* Up to n connections (fewer when the server refuses), held until closed. */
static int open_many(PGconn **cs, int n)
{
    int k = 0;
    for (; k < n; k++) {
        cs[k] = PQconnectdb(opt.url);
        if (PQstatus(cs[k]) != CONNECTION_OK) {
            PQfinish(cs[k]);
            break;
        }
    }
    return k;
}

static void close_many(PGconn **cs, int n)
{
    for (int i = 0; i < n; i++)
        PQfinish(cs[i]);
}

static void inject(enum fault f, PGconn **db)
{
    int p = (int)(rand() % (unsigned)opt.npools);
    switch (f) {
    case F_KILL:
        kill(pools[p], SIGKILL);
        waitpid(pools[p], NULL, 0);
        sleep_ms(300);
        pools[p] = pool_spawn(p);
        break;
    case F_STOP:
        kill(pools[p], SIGSTOP);
        sleep_ms(2 * LEASE_MS + 500);
        kill(pools[p], SIGCONT);
        break;
    case F_TERMINATE:
        q(db, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
              "WHERE application_name = 'pgq' AND datname = current_database() AND pid <> "
              "pg_backend_pid()");
        break;
    case F_RESTART:
    case F_CRASH:
        PQfinish(*db);
        *db = NULL;
        pg_ctl_restart(f == F_RESTART ? "fast" : "immediate");
        break;
    case F_SLOTS: {
        static PGconn *cs[2000];
        int n = open_many(cs, 2000);
        sleep_ms(3000);
        close_many(cs, n);
        break;
    }
    case F_PIN: {
        PGconn *c = conn_new();
        if (c) {
            PQclear(PQexec(c, "BEGIN"));
            PQclear(PQexec(c, "SELECT txid_current()"));
            sleep_ms(opt.seconds >= 120 ? 10000 : 4000);   /* short runs: every fault once */
            PQclear(PQexec(c, "ROLLBACK"));
            PQfinish(c);
        }
        break;
    }
    case F_IDLE: {
        static PGconn *cs[2000];
        int want = opt.idle < 2000 ? opt.idle : 2000;
        int n = open_many(cs, want);
        if (n < want)
            say("idle: the server took %d of %d connections", n, want);
        sleep_ms(5000);
        close_many(cs, n);
        break;
    }
    default:
        break;
    }
}

/* ---- the run ------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: pgq-chaos [--db URL] [--seconds N] [--pools N] [--workers N] "
            "[--rate N] [--idle N] [--seed N] [--faults kill,stop,...]\n");
    exit(2);
}

static void parse_faults(const char *list)
{
    memset(opt.enabled, 0, sizeof opt.enabled);
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < NFAULTS && strcmp(fault_names[k], t) != 0)
            k++;
        if (k == NFAULTS) {
            fprintf(stderr, "pgq-chaos: unknown fault \"%s\" (kill, stop, terminate, restart, "
                    "crash, slots, pin, idle)\n", t);
            exit(2);
        }
        opt.enabled[k] = true;
    }
    free(copy);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check(PGconn **db, const char *what, const char *sql)
{
    long long n = q(db, sql);
    if (n != 0)
        fail("%s: %lld (%s)", what, n, sql);
}

int main(int argc, char **argv)
{
    const char *faults = NULL;
    opt.url = getenv("DATABASE_URL");
    opt.seed = (unsigned)time(NULL);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--db") == 0)
            opt.url = v;
        else if (strcmp(a, "--seconds") == 0)
            opt.seconds = atoi(v);
        else if (strcmp(a, "--pools") == 0)
            opt.npools = atoi(v);
        else if (strcmp(a, "--workers") == 0)
            opt.workers = atoi(v);
        else if (strcmp(a, "--rate") == 0)
            opt.rate = atoi(v);
        else if (strcmp(a, "--idle") == 0)
            opt.idle = atoi(v);
        else if (strcmp(a, "--seed") == 0)
            opt.seed = (unsigned)strtoul(v, NULL, 10);
        else if (strcmp(a, "--faults") == 0)
            faults = v;
        else
            usage();
    }
    if (!opt.url || !*opt.url || opt.npools < 2 || opt.npools > MAX_POOLS || opt.seconds < 1 ||
        opt.workers < 1)
        usage();
    opt.pg_bindir = getenv("PGQ_PG_BINDIR");
    opt.pg_datadir = getenv("PGQ_PG_DATADIR");
    opt.pg_runas = getenv("PGQ_PG_RUNAS");
    opt.pg_log = getenv("PGQ_PG_LOG");
    for (int k = 0; k < NFAULTS; k++)
        opt.enabled[k] = true;
    if (faults)
        parse_faults(faults);
    if (!server_control() && (opt.enabled[F_RESTART] || opt.enabled[F_CRASH])) {
        say("no PGQ_PG_BINDIR/PGQ_PG_DATADIR: restart and crash are left out");
        opt.enabled[F_RESTART] = opt.enabled[F_CRASH] = false;
    }
    srand(opt.seed);

    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    static char pool_bin[1100], plugin[1100];
    snprintf(pool_bin, sizeof pool_bin, "%s/pgq-pool", self);
    snprintf(plugin, sizeof plugin, "%s/tests/plugins/pool_plugin.so", self);
    opt.pool_bin = pool_bin;
    opt.plugin = plugin;
    snprintf(opt.dir, sizeof opt.dir, "/tmp/pgq-chaos.XXXXXX");
    if (!mkdtemp(opt.dir))
        return 2;
    write_ini();

    PGconn *db = NULL;
    if (q(&db, "CREATE TABLE IF NOT EXISTS test_ledger (job_id bigint, key text)") < 0)
        return 2;
    if (q(&db, "SELECT count(*) FROM pgq.jobs WHERE type = 'chaos'") != 0) {
        fprintf(stderr, "pgq-chaos: the database already holds chaos jobs: give it an empty "
                "pgq schema\n");
        return 2;
    }
    if (opt.enabled[F_CRASH] &&
        q(&db, "SELECT (current_setting('synchronous_commit') = 'off')::int") == 1) {
        /* a crash then loses the last commits by PostgreSQL's design: the
         * checks would blame pgq for what the set-up allowed */
        say("synchronous_commit is off: crash is left out (an immediate restart may lose "
            "commits; ALTER DATABASE ... SET synchronous_commit = on to include it)");
        opt.enabled[F_CRASH] = false;
    }
    say("seed %u, %d s, %d pools x %d workers, %d jobs/s offered, logs in %s", opt.seed,
        opt.seconds, opt.npools, opt.workers, opt.rate, opt.dir);
    for (int i = 0; i < opt.npools; i++)
        pools[i] = pool_spawn(i);
    sleep_ms(1000);
    pthread_t prod;
    pthread_create(&prod, NULL, producer, NULL);

    enum fault on[NFAULTS];
    int non = 0;
    for (int k = 0; k < NFAULTS; k++)
        if (opt.enabled[k])
            on[non++] = (enum fault)k;
    int64_t end = now_ms() + opt.seconds * 1000LL;
    while (now_ms() < end && non > 0) {
        sleep_ms(500 + rand() % 2500);
        reap_pools();
        if (now_ms() >= end)
            break;
        /* each kind in turn first, so a short run meets every one */
        long total = 0;
        for (int k = 0; k < NFAULTS; k++)
            total += fault_count[k];
        enum fault f = total < non ? on[total] : on[rand() % non];
        long long before = finished(&db);
        inject(f, &db);
        int64_t t_end = now_ms();
        /* recovered once a job finishes after the fault ended */
        long long base = finished(&db);
        (void)before;
        double rec = -1;
        while (now_ms() - t_end < 60000) {
            long long fin = finished(&db);
            if (fin > base || atomic_load(&keys_acked) <= base) {
                rec = (double)(now_ms() - t_end);
                break;
            }
            sleep_ms(20);
        }
        if (rec < 0)
            fail("no job finished within 60 s after fault %s", fault_names[f]);
        else if (fault_count[f] < 4096)
            recovery_ms[f][fault_count[f]] = rec;
        fault_count[f]++;
        reap_pools();
    }
    if (non == 0)
        sleep_ms(opt.seconds * 1000LL);
    atomic_store(&producing, false);
    pthread_join(prod, NULL);
    long long want = atomic_load(&keys_acked);

    /* Drain: everything ends done or dead; stuck = nothing moved for 60 s. */
    long long last = -1;
    int64_t moved = now_ms();
    for (;;) {
        reap_pools();
        long long fin = q(&db, "SELECT count(*) FROM pgq.jobs WHERE state IN ('done', 'dead') "
                               "AND type = 'chaos'");
        long long all = q(&db, "SELECT count(*) FROM pgq.jobs WHERE type = 'chaos'");
        if (fin == all && all >= want)
            break;
        if (fin != last) {
            last = fin;
            moved = now_ms();
        }
        if (now_ms() - moved > 60000) {
            fail("stuck at %lld of %lld jobs finished for 60 s", fin, all);
            break;
        }
        sleep_ms(200);
    }
    for (int i = 0; i < opt.npools; i++)
        kill(pools[i], SIGTERM);
    for (int i = 0; i < opt.npools; i++) {
        int st;
        waitpid(pools[i], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail("pool %d did not stop cleanly (%s %d)", i, WIFSIGNALED(st) ? "signal" : "exit",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
    }

    /* ---- the verdict ---- */
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT %lld - count(DISTINCT idempotency_key) FROM pgq.jobs WHERE "
             "type = 'chaos' AND idempotency_key ~ '^chaos-[0-9]+$' AND "
             "substr(idempotency_key, 7)::bigint < %lld", want, want);
    check(&db, "jobs acknowledged to the producer but missing (lost)", sql);
    check(&db, "jobs neither done nor dead",
          "SELECT count(*) FROM pgq.jobs WHERE type = 'chaos' AND state NOT IN ('done', 'dead')");
    check(&db, "run_once effects that ran twice",
          "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT job_id, key FROM test_ledger)"
          " x) FROM test_ledger");
    check(&db, "effects recorded done without their ledger row",
          "SELECT count(*) FROM pgq.effects e WHERE e.state = 'done' AND NOT EXISTS (SELECT 1 "
          "FROM test_ledger l WHERE l.job_id = e.job_id)");
    check(&db, "ledger rows without a run_once record",
          "SELECT count(*) FROM test_ledger l WHERE NOT EXISTS (SELECT 1 FROM pgq.effects e "
          "WHERE e.job_id = l.job_id AND e.key = l.key)");
    check(&db, "done jobs without their effect (and none in doubt)",
          "SELECT count(*) FROM pgq.jobs j WHERE j.type = 'chaos' AND j.state = 'done' AND "
          "coalesce(j.payload->>'effect', '1') <> '0' AND NOT EXISTS (SELECT 1 FROM test_ledger l"
          " WHERE l.job_id = j.id) AND NOT EXISTS (SELECT 1 FROM pgq.effects_in_doubt d WHERE "
          "d.job_id = j.id)");
    check(&db, "jobs with more than one done attempt",
          "SELECT count(*) FROM (SELECT job_id FROM pgq.job_attempts WHERE outcome = 'done' "
          "GROUP BY job_id HAVING count(*) > 1) x");
    check(&db, "pgq.check_invariants() rows", "SELECT count(*) FROM pgq.check_invariants()");

    say("%lld jobs (%lld done, %lld dead), %lld history rows (%lld failed, %lld lease expired), "
        "%lld effects, %lld in doubt",
        q(&db, "SELECT count(*) FROM pgq.jobs WHERE type = 'chaos'"),
        q(&db, "SELECT count(*) FROM pgq.jobs WHERE type = 'chaos' AND state = 'done'"),
        q(&db, "SELECT count(*) FROM pgq.jobs WHERE type = 'chaos' AND state = 'dead'"),
        q(&db, "SELECT count(*) FROM pgq.job_attempts"),
        q(&db, "SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'failed'"),
        q(&db, "SELECT count(*) FROM pgq.job_attempts WHERE outcome = 'lease_expired'"),
        q(&db, "SELECT count(*) FROM test_ledger"),
        q(&db, "SELECT count(*) FROM pgq.effects_in_doubt"));
    for (int k = 0; k < NFAULTS; k++) {
        if (!opt.enabled[k])
            continue;
        long c = fault_count[k] < 4096 ? fault_count[k] : 4096;
        if (c == 0) {
            say("%-9s survived 0", fault_names[k]);
            continue;
        }
        qsort(recovery_ms[k], (size_t)c, sizeof recovery_ms[k][0], cmp_double);
        say("%-9s survived %ld; recovery median %.0f ms, max %.0f ms", fault_names[k],
            fault_count[k], recovery_ms[k][c / 2], recovery_ms[k][c - 1]);
    }
    PQfinish(db);
    if (failures) {
        say("%d check%s FAILED (logs kept in %s)", failures, failures == 1 ? "" : "s", opt.dir);
        return 1;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", opt.dir);
    if (system(cmd) != 0)
        say("could not remove %s", opt.dir);
    say("all checks passed");
    return 0;
}
