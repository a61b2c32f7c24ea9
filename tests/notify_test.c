/* pgq-pool speaks systemd's notification protocol (pool/notify.c), tested
 * without systemd: the test binds a unix datagram socket of its own, starts
 * pgq-pool with NOTIFY_SOCKET naming it (and WATCHDOG_USEC, WATCHDOG_PID as
 * a unit with WatchdogSec= would pass them), and reads what arrives: READY=1
 * once the pool started, WATCHDOG=1 from the heartbeat loop, STOPPING=1
 * after SIGTERM, and an exit 0; a pool that cannot start (no schema) exits
 * 1 without READY=1. Each receive waits at most 60 s (a bound
 * against a hang, not a timing). In a build without libsystemd the pool
 * sends nothing; the test then says so and checks only that it runs. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-notify.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("notify_test: mkdtemp");
        abort();
    }
}

static void remove_dir(void)
{
    int st;
    free(tu_sh(tu_fmt("rm -rf '%s'", dir), &st));
}

static void setup(void)
{
    tu_reset();
}

static void teardown(void)
{
    tu_check_invariants();
}

/* One datagram (NUL-terminated in buf), or "" when none came within the
 * socket's receive bound. */
static const char *recv_state(int fd, char *buf, size_t len)
{
    ssize_t n;
    do
        n = recv(fd, buf, len - 1, 0);
    while (n < 0 && errno == EINTR);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

/* Read datagrams until one holds line (a whole line of it); all of them
 * are appended to seen, for the failure message. */
static bool wait_for(int fd, const char *line, char *seen, size_t seenlen)
{
    char buf[4096];
    for (int i = 0; i < 1000; i++) {
        const char *m = recv_state(fd, buf, sizeof buf);
        if (!*m)
            return false;
        size_t off = strlen(seen);
        snprintf(seen + off, seenlen - off, "[%s] ", m);
        size_t ll = strlen(line);
        for (const char *p = m; (p = strstr(p, line)); p += ll)
            if ((p == m || p[-1] == '\n') && (p[ll] == '\0' || p[ll] == '\n'))
                return true;
    }
    return false;
}

/* Bind a datagram socket at path, receives bounded by 60 s. */
static int bind_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    ck_assert_int_lt(strlen(path), sizeof sa.sun_path);
    strcpy(sa.sun_path, path);
    ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "bind %s: %s", path,
                  strerror(errno));
    struct timeval tv = { .tv_sec = 60 };
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    return fd;
}

/* Start pgq-pool -c ini --db url with its output in log, as systemd would
 * for NotifyAccess=main, WatchdogSec=1s (pings every half second, twice
 * per heartbeat); it dies with the test. */
static pid_t start_pool(const char *sock, const char *ini, const char *log, const char *url)
{
    const char *bin = tu_fmt("%s/pgq-pool", tu_bin_dir());
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int lfd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int nul = open("/dev/null", O_RDONLY);
        if (lfd < 0 || nul < 0)
            _exit(127);
        dup2(nul, 0);
        dup2(lfd, 1);
        dup2(lfd, 2);
        char wpid[32];
        snprintf(wpid, sizeof wpid, "%d", (int)getpid());
        if (sock) {
            setenv("NOTIFY_SOCKET", sock, 1);
            setenv("WATCHDOG_USEC", "1000000", 1);
            setenv("WATCHDOG_PID", wpid, 1);
        } else {
            unsetenv("NOTIFY_SOCKET");
            unsetenv("WATCHDOG_USEC");
            unsetenv("WATCHDOG_PID");
        }
        unsetenv("DATABASE_URL");
        execl(bin, "pgq-pool", "-c", ini, "--db", url, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Whether process pid has libsystemd mapped. */
static bool maps_libsystemd(pid_t pid)
{
    char *maps = tu_slurp(tu_fmt("/proc/%d/maps", (int)pid));
    bool yes = strstr(maps, "libsystemd.so") != NULL;
    free(maps);
    return yes;
}

START_TEST(pool_says_ready_watchdog_stopping)
{
    bool sd = tu_pool_has_systemd();
    const char *sock = tu_fmt("%s/notify.sock", dir);
    const char *ini = tu_fmt("%s/pool.ini", dir);
    const char *log = tu_fmt("%s/pool.log", dir);
    tu_write_file(ini, "[pool]\nworkers = 2\nlease_ttl = 2s\nheartbeat = 1s\npoll = 100ms\n"
                       "shutdown_timeout = 5s\n\n[job noop]\nhandler = exec true\n");

    int fd = bind_socket(sock);
    pid_t pid = start_pool(sock, ini, log, tu_db_url());

    char seen[16384] = "";
    int st = 0;
    if (!sd) {
        fprintf(stderr, "notify_test: pgq-pool built without libsystemd: it sends nothing; "
                        "only its run is checked\n");
        for (int i = 0; i < 600; i++) {   /* until it started: at most 60 s */
            char *l = tu_slurp(log);
            bool up = strstr(l, "pool: started ") != NULL;
            free(l);
            if (up)
                break;
            usleep(100000);
        }
    } else {
        bool ready = wait_for(fd, "READY=1", seen, sizeof seen);
        ck_assert_msg(ready, "no READY=1 (got %s); pool log:\n%s", seen, tu_slurp(log));
        /* READY=1 comes after the start: the pool's row exists by then */
        ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.workers", 0, NULL), 1);
        ck_assert_msg(maps_libsystemd(pid), "READY=1 came, but libsystemd is not loaded");
        bool wd = wait_for(fd, "WATCHDOG=1", seen, sizeof seen);
        ck_assert_msg(wd, "no WATCHDOG=1 after READY=1 (got %s)", seen);
    }
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    if (sd) {
        bool stopping = wait_for(fd, "STOPPING=1", seen, sizeof seen);
        ck_assert_msg(stopping, "no STOPPING=1 after SIGTERM (got %s); pool log:\n%s", seen,
                      tu_slurp(log));
        fprintf(stderr, "notify_test: pgq-pool sent %s\n", seen);
    }
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pgq-pool: status 0x%x; log:\n%s", st,
                  tu_slurp(log));
    close(fd);
}
END_TEST

/* A pool that cannot start (its database has no pgq schema) exits 1 and
 * never says READY=1: systemd sees the start fail instead of a service
 * that is up but does nothing. */
START_TEST(pool_that_cannot_start_is_never_ready)
{
    const char *sock = tu_fmt("%s/notify-fail.sock", dir);
    const char *ini = tu_fmt("%s/pool-fail.ini", dir);
    const char *log = tu_fmt("%s/pool-fail.log", dir);
    tu_write_file(ini, "[pool]\nworkers = 1\n\n[job noop]\nhandler = exec true\n");
    int fd = bind_socket(sock);
    char *url = tu_db_url_for("postgres");   /* exists, never migrated */
    pid_t pid = start_pool(sock, ini, log, url);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    char *out = tu_slurp(log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x, want exit 1; log:\n%s", st,
                  out);
    ck_assert_msg(strstr(out, "cannot start"), "no \"cannot start\" in the log:\n%s", out);
    /* everything it sent is queued by now: read without waiting */
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf - 1, MSG_DONTWAIT)) > 0) {
        buf[n] = '\0';
        ck_assert_msg(!strstr(buf, "READY=1"), "a pool that failed to start sent [%s]", buf);
    }
    free(out);
    free(url);
    close(fd);
}
END_TEST

/* Not under systemd (no NOTIFY_SOCKET), a pool does not load libsystemd
 * (and what it pulls in: ~1 MB of an idle pool's RSS). */
START_TEST(pool_outside_systemd_does_not_load_libsystemd)
{
    const char *ini = tu_fmt("%s/pool-plain.ini", dir);
    const char *log = tu_fmt("%s/pool-plain.log", dir);
    tu_write_file(ini, "[pool]\nworkers = 2\n\n[job noop]\nhandler = exec true\n");
    tu_write_file(log, "");
    pid_t pid = start_pool(NULL, ini, log, tu_db_url());
    bool up = false;
    for (int i = 0; i < 600 && !up; i++) {   /* until it started: at most 60 s */
        char *l = tu_slurp(log);
        up = strstr(l, "pool: started ") != NULL;
        free(l);
        if (!up)
            usleep(100000);
    }
    ck_assert_msg(up, "the pool did not start; log:\n%s", tu_slurp(log));
    bool loaded = maps_libsystemd(pid);
    kill(pid, SIGTERM);
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(!loaded, "a pool outside systemd loaded libsystemd");
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "pgq-pool: status 0x%x; log:\n%s", st,
                  tu_slurp(log));
}
END_TEST

Suite *notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("notify");
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_unchecked_fixture(tc, make_dir, remove_dir);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, pool_says_ready_watchdog_stopping);
    tcase_add_test(tc, pool_that_cannot_start_is_never_ready);
    tcase_add_test(tc, pool_outside_systemd_does_not_load_libsystemd);
    suite_add_tcase(s, tc);
    return s;
}
