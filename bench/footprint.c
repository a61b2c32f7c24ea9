/* footprint.c -- `pgq-bench footprint`: what an idle pool costs. Runs the
 * real pgq-pool (not an embedded pool: its RSS is the program's own) with
 * a generated pool.ini -- --concurrency workers, poll, heartbeat and lease
 * at their defaults, one job type with the handler `exec /bin/true` -- and
 * no jobs. Once the pool is registered in pgq.workers and all its
 * connections are up (workers + heartbeat + listener), it waits 2 s, then
 * samples /proc/PID/status (VmRSS every second; VmHWM at the end) and
 * /proc/PID/stat (utime + stime at both ends) for --seconds. The server
 * side is sampled too when the database runs on this machine: the CPU of
 * the pool's backends (pg_stat_activity pids, /proc/PID/stat). Then
 * SIGTERM, and the pool must exit 0 and deregister itself. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_BACKENDS 300

/* utime + stime of pid in clock ticks; -1 when unreadable. */
static int64_t cpu_ticks(int pid)
{
    int ppid;
    int64_t self, children;
    return proc_stat(pid, &ppid, &self, &children) < 0 ? -1 : self;
}

/* A "Key:   123 kB" line of /proc/PID/status; -1 when absent. */
static int64_t status_kb(int pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    int64_t v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtoll(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* The pgq-pool next to this program, unless --pool-bin says otherwise. */
static int find_pool_bin(char *out, size_t len, char *err, size_t errlen)
{
    if (g_opts.pool_bin) {
        snprintf(out, len, "%s", g_opts.pool_bin);
    } else {
        char self[PATH_MAX - 16];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n < 0) {
            snprintf(err, errlen, "finding pgq-pool: /proc/self/exe: %s (use --pool-bin)",
                     strerror(errno));
            return -1;
        }
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(out, len, "%s/pgq-pool", self);
    }
    if (access(out, X_OK) != 0) {
        snprintf(err, errlen, "pgq-pool: %.700s is not an executable (%s); build it or give "
                 "--pool-bin", out, strerror(errno));
        return -1;
    }
    return 0;
}

/* Registered in pgq.workers, and how many connections it has open. */
static int pool_state(pgq_conn *c, int pid, bool *registered, long *conns, int *pids,
                      char *err, size_t errlen)
{
    char p[16];
    snprintf(p, sizeof p, "%d", pid);
    const char *params[] = { p };
    PGresult *r = bench_query(c, "looking for the pool",
        "SELECT EXISTS (SELECT 1 FROM pgq.workers WHERE pid = $1::int), a.pid"
        "  FROM (SELECT 1) AS one"
        "  LEFT JOIN pg_stat_activity a ON a.datname = current_database()"
        "   AND a.application_name = 'pgq' AND a.pid <> pg_backend_pid()"
        "   AND a.backend_type = 'client backend'",
        1, params, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    *registered = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    *conns = 0;
    for (int i = 0; i < PQntuples(r); i++)
        if (!PQgetisnull(r, i, 1) && *conns < MAX_BACKENDS)
            pids[(*conns)++] = atoi(PQgetvalue(r, i, 1));
    PQclear(r);
    return 0;
}

/* Sum of cpu_ticks over pids; -1 when any is unreadable (another host). */
static int64_t sum_ticks(const int *pids, long n)
{
    int64_t sum = 0;
    for (long i = 0; i < n; i++) {
        int64_t t = cpu_ticks(pids[i]);
        if (t < 0)
            return -1;
        sum += t;
    }
    return sum;
}

int run_footprint(void)
{
    char err[1024], msg[1200], bin[PATH_MAX], ini[PATH_MAX] = "", pooljs[384];
    pgq_conn *c = NULL;
    char *dburl = NULL;
    pid_t pid = -1;
    int rc = 1;
    static int pids[MAX_BACKENDS];
    long nconn = 0;
    bool registered = false;

    if (find_pool_bin(bin, sizeof bin, err, sizeof err) < 0) {
        fail_json(err);
        return 1;
    }
    if (bench_open(&c) < 0)
        return 1;
    struct pool_spec spec = {
        .workers = g_opts.concurrency, .poll = "1s", .heartbeat = "10s", .lease_ttl = "30s",
        .shutdown_timeout = "30s", .handler = "exec /bin/true",
    };
    pool_spec_json(&spec, pooljs, sizeof pooljs);
    if (pool_ini_write(&spec, ini, sizeof ini, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }

    const char *url = getenv("DATABASE_URL");
    char a_c[] = "-c", a_db[] = "--db", a_q[] = "-q";
    dburl = strdup(url ? url : "");
    char *argv[] = { bin, a_c, ini, a_db, dburl, a_q, NULL };
    if (!dburl) {
        fail_json("out of memory");
        goto out;
    }
    sigset_t none;
    sigemptyset(&none);
    pid_t parent = getpid();
    pid = fork();
    if (pid < 0) {
        snprintf(msg, sizeof msg, "fork: %s", strerror(errno));
        fail_json(msg);
        goto out;
    }
    if (pid == 0) {
        /* Async-signal-safe calls only. The pool must not outlive the
         * benchmark (the watchdog _exits): SIGTERM when we die. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127);
        dup2(2, 1);   /* stdout carries our JSON line only */
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(bin, argv);
        _exit(127);
    }

    const int pool_pid = pid;

    /* Up and idle: registered, every connection open. */
    long want = g_opts.concurrency + 2;
    int64_t deadline = now_ns() + 30LL * 1000000000;
    for (;;) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pid = -1;
            snprintf(msg, sizeof msg, "pgq-pool exited before it was up (%s %d); see stderr",
                     WIFEXITED(status) ? "exit" : "signal",
                     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            fail_json(msg);
            goto out;
        }
        if (pool_state(c, pid, &registered, &nconn, pids, err, sizeof err) < 0) {
            fail_json(err);
            goto out;
        }
        if (registered && nconn >= want)
            break;
        if (now_ns() > deadline) {
            snprintf(msg, sizeof msg, "pgq-pool not up after 30 s: %s, %ld of %ld connections",
                     registered ? "registered" : "not registered", nconn, want);
            fail_json(msg);
            goto out;
        }
        sleep_ms(100);
    }
    sleep_ms(2000);

    long hz = sysconf(_SC_CLK_TCK);
    int64_t rss_max = 0, rss = -1, n_rss = 0;
    int64_t c0 = cpu_ticks(pid), s0 = sum_ticks(pids, nconn), t0 = now_ns();
    for (long i = 1; i <= g_opts.seconds; i++) {
        int64_t at = t0 + i * 1000000000LL;
        sleep_ms((double)(at - now_ns()) / 1e6);
        rss = status_kb(pid, "VmRSS");
        if (rss > rss_max)
            rss_max = rss;
        n_rss += rss >= 0;
    }
    int64_t c1 = cpu_ticks(pid), s1 = sum_ticks(pids, nconn), t1 = now_ns();
    int64_t hwm = status_kb(pid, "VmHWM"), threads = status_kb(pid, "Threads");
    double secs = (double)(t1 - t0) / 1e9;
    double cpu = c0 >= 0 && c1 >= 0 ? 100.0 * (double)(c1 - c0) / (double)hz / secs : -1;
    double scpu = s0 >= 0 && s1 >= 0 ? 100.0 * (double)(s1 - s0) / (double)hz / secs : -1;

    /* Stop it: SIGTERM, exit 0 within shutdown_timeout (+10 s). */
    int64_t k0 = now_ns();
    kill(pid, SIGTERM);
    int status = 0, exit_code = -1;
    bool exited = false;
    while (now_ns() - k0 < 40LL * 1000000000) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            exited = true;
            break;
        }
        sleep_ms(20);
    }
    double stop_ms = (double)(now_ns() - k0) / 1e6;
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    pid = -1;
    if (exited && WIFEXITED(status))
        exit_code = WEXITSTATUS(status);
    long left = 0;
    if (pool_state(c, pool_pid, &registered, &left, pids, err, sizeof err) < 0) {
        fail_json(err);
        goto out;
    }
    bool ok = exited && exit_code == 0 && !registered && n_rss == g_opts.seconds && cpu >= 0;
    json_head(stdout, ok, true);
    printf(",\"pool\":%s,\"seconds\":%.1f,\"rss_kb\":%" PRId64 ",\"rss_kb_max\":%" PRId64 ","
           "\"hwm_kb\":%" PRId64 ",\"threads\":%" PRId64 ",\"connections\":%ld,"
           "\"cpu_percent\":%.3f,", pooljs, secs, rss, rss_max, hwm, threads, nconn, cpu);
    if (scpu >= 0)
        printf("\"server_cpu_percent\":%.3f,", scpu);
    else
        fputs("\"server_cpu_percent\":null,", stdout);
    printf("\"stop_ms\":%.0f,\"exit_code\":%d,\"deregistered\":%s}\n", stop_ms, exit_code,
           registered ? "false" : "true");
    rc = ok ? 0 : 1;
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (*ini)
        unlink(ini);
    free(dburl);
    pgq_disconnect(c);
    return rc;
}
