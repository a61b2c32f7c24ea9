/* Test helpers: see testutil.h. */
#include "testutil.h"
#include "../core/migrations.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *tu_db_url(void)
{
    const char *u = getenv("PGQ_TEST_DATABASE_URL");
    ck_assert_msg(u && *u, "PGQ_TEST_DATABASE_URL is not set");
    return u;
}

const char *tu_test_dir(void)
{
    const char *d = getenv("PGQ_TEST_DIR");
    return d && *d ? d : "tests";
}

const char *tu_bin_dir(void)
{
    const char *d = getenv("PGQ_BIN_DIR");
    return d && *d ? d : "build";
}

pgq_conn *tu_connect(void)
{
    char err[512];
    pgq_conn *c = NULL;
    ck_assert_msg(pgq_connect(tu_db_url(), &c, err, sizeof err) == 0, "connect: %s", err);
    return c;
}

/* One raw connection per (forked) test process. */
static PGconn *raw;

PGconn *tu_pg(void)
{
    if (!raw || PQstatus(raw) != CONNECTION_OK) {
        PQfinish(raw);
        raw = PQconnectdb(tu_db_url());
        ck_assert_msg(PQstatus(raw) == CONNECTION_OK, "raw connect: %s", PQerrorMessage(raw));
    }
    return raw;
}

char *tu_db_url_for(const char *dbname)
{
    PQconninfoOption *opts = PQconninfo(tu_pg());
    char *s = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&s, &len);
    ck_assert_ptr_nonnull(f);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "dbname") == 0)
            continue;
        fprintf(f, "%s='", o->keyword);
        for (const char *v = o->val; *v; v++)
            fprintf(f, "%s%c", *v == '\'' || *v == '\\' ? "\\" : "", *v);
        fputs("' ", f);
    }
    fprintf(f, "dbname='%s'", dbname);
    fclose(f);
    PQconninfoFree(opts);
    return s;
}

PGresult *tu_query(PGconn *pg, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    ck_assert_msg(st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK, "SQL failed: %s\n%s",
                  PQresultErrorMessage(r), sql);
    return r;
}

static PGresult *run(const char *sql, int n, const char *const *params)
{
    return tu_query(tu_pg(), sql, n, params);
}

void tu_exec(const char *sql, int n, const char *const *params)
{
    PQclear(run(sql, n, params));
}

long long tu_int(const char *sql, int n, const char *const *params)
{
    PGresult *r = run(sql, n, params);
    ck_assert_msg(PQntuples(r) == 1 && !PQgetisnull(r, 0, 0), "expected one value: %s", sql);
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

char *tu_text(const char *sql, int n, const char *const *params)
{
    PGresult *r = run(sql, n, params);
    ck_assert_msg(PQntuples(r) == 1, "expected one row: %s", sql);
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

void tu_reset(void)
{
    tu_exec("TRUNCATE pgq.jobs, pgq.job_types, pgq.job_attempts, pgq.effects, pgq.workers,"
            " pgq.actions, pgq.queues, pgq.cron, pgq.type_limits, pgq.job_deps RESTART IDENTITY CASCADE", 0, NULL);
}

void tu_type(const char *type, const char *queue, const char *require, int max_retries,
             int64_t backoff_base_ms)
{
    char err[512];
    pgq_field fields[16];
    size_t n = 0;
    char *spec = strdup(require ? require : ""), *save = NULL;
    for (char *tok = strtok_r(spec, ",", &save); tok && n < 16;
         tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        ck_assert_ptr_nonnull(colon);
        *colon = '\0';
        fields[n++] = (pgq_field){ tok, colon + 1 };
    }
    pgq_type_def d = { .type = type, .queue = queue, .required = fields, .nrequired = n,
                       .max_retries = max_retries, .priority = PGQ_DEFAULT, .timeout_ms = 0,
                       .backoff_base_ms = backoff_base_ms,
                       /* the default cap (1 h) unless the base is above it */
                       .backoff_max_ms = backoff_base_ms > 3600000 ? backoff_base_ms : -1 };
    pgq_conn *c = tu_connect();
    ck_assert_msg(pgq_types_register(c, &d, 1, err, sizeof err) == 0, "register: %s", err);
    pgq_disconnect(c);
    free(spec);
}

void tu_reap_until(pgq_conn *c, int want)
{
    char err[512];
    int total = 0;
    for (int i = 0; i < 6000 && total < want; i++) {
        int n = 0;
        ck_assert_msg(pgq_reap(c, 100, &n, err, sizeof err) == 0, "reap: %s", err);
        total += n;
        if (total < want)
            nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
    }
    ck_assert_int_ge(total, want);
}

struct tu_barrier {
    pthread_barrier_t b;
};

tu_barrier *tu_barrier_new(int n)
{
    tu_barrier *b = malloc(sizeof *b);
    ck_assert_ptr_nonnull(b);
    pthread_barrier_init(&b->b, NULL, (unsigned)n);
    return b;
}

void tu_barrier_wait(tu_barrier *b)
{
    pthread_barrier_wait(&b->b);
}

void tu_barrier_free(tu_barrier *b)
{
    if (!b)
        return;
    pthread_barrier_destroy(&b->b);
    free(b);
}

void tu_check_invariants(void)
{
    PGresult *r = PQexec(tu_pg(), "SELECT job_id, invariant, detail FROM pgq.check_invariants()"
                                  " ORDER BY job_id LIMIT 20");
    ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "pgq.check_invariants(): %s",
                  PQresultErrorMessage(r));
    char msg[4096] = "";
    size_t used = 0;
    for (int i = 0; i < PQntuples(r) && used < sizeof msg - 1; i++)
        used += (size_t)snprintf(msg + used, sizeof msg - used, "\n  job %s: %s (%s)",
                                 PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    int n = PQntuples(r);
    PQclear(r);
    ck_assert_msg(n == 0, "the state machine's invariants are broken:%s", msg);
}

char *tu_slurp(const char *path)
{
    /* Read to the end rather than to the size fstat gives: /proc files
     * report 0 bytes. */
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    size_t cap = 4096, n = 0, got;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    while ((got = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            cap *= 2;
            s = realloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
    }
    ck_assert_msg(!ferror(f), "cannot read %s", path);
    s[n] = '\0';
    fclose(f);
    return s;
}

const char *tu_fmt(const char *fmt, ...)
{
    static _Thread_local char ring[64][4096];
    static _Thread_local int next;
    char *b = ring[next++ % 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof ring[0], fmt, ap);
    va_end(ap);
    ck_assert(n >= 0 && (size_t)n < sizeof ring[0]);
    return b;
}

const char *tu_lld(long long v)
{
    return tu_fmt("%lld", v);
}

bool tu_pid_dead(pid_t pid)
{
    char buf[512];
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return true;
    FILE *f = fopen(tu_fmt("/proc/%d/stat", (int)pid), "r");
    if (!f)
        return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The state follows the command name, which may itself hold ')'. */
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

void tu_write_file(const char *path, const char *text)
{
    const char *t = tu_fmt("%s.tmp", path);
    FILE *f = fopen(t, "w");
    ck_assert_msg(f != NULL, "%s: %s", t, strerror(errno));
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_msg(rename(t, path) == 0, "rename %s: %s", t, strerror(errno));
}

int tu_count_lines(const char *text)
{
    int n = 0;
    for (const char *p = text; p && *p; p++)
        n += *p == '\n';
    return n;
}

int tu_file_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

int64_t tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tu_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

struct buf {
    char *p;
    size_t n, cap;
};

/* Read what is there into b; false at EOF (or error). */
static bool drain(int fd, struct buf *b)
{
    if (b->cap - b->n < 4096) {
        b->cap = b->cap * 2 + 4096;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    ssize_t r = read(fd, b->p + b->n, b->cap - b->n - 1);
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (r <= 0)
        return false;
    b->n += (size_t)r;
    return true;
}

/* In the child: what tu_run_cmd promises about its environment. */
static void child_env(const char *const *env)
{
    unsetenv("DATABASE_URL");
    unsetenv("PGQ_JOB_ID");
    unsetenv("PGQ_LEASE_TOKEN");
    for (size_t i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        if (eq) {
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(eq - env[i]), env[i]);
            setenv(name, eq + 1, 1);
        } else {
            unsetenv(env[i]);
        }
    }
}

pid_t tu_spawn_logged(const char *log, const char *const *env, const char *path,
                      const char *const *argv)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);   /* the test died before the prctl */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (fd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        child_env(env);
        execv(path, (char *const *)argv);
        dprintf(2, "exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
    return pid;
}

tu_run tu_run_cmd(const char *cwd, const char *const *env, const char *stdin_path,
                  const char *path, const char *const *argv, int timeout_s)
{
    int po[2], pe[2];
    ck_assert_int_eq(pipe2(po, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(pe, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        if (in < 0 || (cwd && chdir(cwd) < 0))
            _exit(126);
        dup2(in, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        child_env(env);
        execv(path, (char *const *)argv);
        dprintf(2, "exec %s: %s\n", path, strerror(errno));
        _exit(126);
    }
    close(po[1]);
    close(pe[1]);

    /* Both pipes at once: a child that fills one while we block on the
     * other would never exit. */
    struct buf out = { malloc(8192), 0, 8192 }, err = { malloc(8192), 0, 8192 };
    struct pollfd fds[2] = { { po[0], POLLIN, 0 }, { pe[0], POLLIN, 0 } };
    int64_t deadline = tu_now_ms() + (int64_t)timeout_s * 1000;
    ck_assert(out.p && err.p);
    while (fds[0].fd >= 0 || fds[1].fd >= 0) {
        if (tu_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            ck_abort_msg("%s: no exit within %d s", path, timeout_s);
        }
        int r = poll(fds, 2, 1000);
        if (r < 0 && errno == EINTR)
            continue;
        ck_assert_int_ge(r, 0);
        for (int k = 0; k < 2; k++) {
            if (fds[k].fd < 0 || !fds[k].revents)
                continue;
            if (!drain(fds[k].fd, k == 0 ? &out : &err)) {
                close(fds[k].fd);
                fds[k].fd = -1;
            }
        }
    }
    /* The pipes closed, but a child may close them and keep running. */
    int st;
    pid_t w;
    while ((w = waitpid(pid, &st, WNOHANG)) == 0) {
        if (tu_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            ck_abort_msg("%s: no exit within %d s", path, timeout_s);
        }
        nanosleep(&(struct timespec){ 0, 10 * 1000000 }, NULL);
    }
    if (w < 0)
        ck_abort_msg("waitpid %s: %s", path, strerror(errno));
    out.p[out.n] = '\0';
    err.p[err.n] = '\0';
    return (tu_run){ WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), out.p, err.p };
}

void tu_run_free(tu_run *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

char *tu_sh(const char *cmd, int *status)
{
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    ck_assert_ptr_nonnull(m);
    FILE *p = popen(tu_fmt("( %s ) 2>&1", cmd), "r");
    ck_assert_msg(p, "%s", cmd);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0)
        fwrite(buf, 1, n, m);
    *status = pclose(p);
    fclose(m);
    return out;
}

int tu_nmigrations(void)
{
    return (int)pgq_nmigrations;
}

int tu_nmigrations_after(int v)
{
    int n = 0;
    for (size_t i = 0; i < pgq_nmigrations; i++)
        n += pgq_migrations[i].version > v;
    return n;
}

int tu_prev_version(void)
{
    return pgq_nmigrations > 1 ? pgq_migrations[pgq_nmigrations - 2].version : 0;
}

bool tu_pool_has_systemd(void)
{
    int st;
    char *out = tu_sh(tu_fmt("grep -c libsystemd.so.0 '%s/pgq-pool'", tu_bin_dir()), &st);
    bool yes = atoi(out) > 0;
    free(out);
    return yes;
}
