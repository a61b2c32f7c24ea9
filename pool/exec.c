/*
 * exec.c -- run one job's `exec` handler.
 *
 * A job's command gets the payload on stdin, the job's identity in its
 * environment, and fails with the tail of its stderr. The hard part is that
 * it must never outlive its job: not after a timeout, not after a lost
 * lease, not after the command itself exits leaving `cmd &` behind, and not
 * when the pool is SIGKILLed, grandchildren included. PR_SET_PDEATHSIG
 * covers only a direct child, so the design is a small supervisor:
 *
 *   pool thread --fork--> supervisor --fork--> command (exec) --> ...
 *                         \_______ one process group, led by the supervisor _/
 *
 * The supervisor makes itself a process-group leader, asks for a real-time
 * signal when its parent dies (PR_SET_PDEATHSIG), keeps it blocked and
 * waits for it and for SIGCHLD with sigwaitinfo; the death signal makes it
 * SIGKILL the whole group (kill(0, SIGKILL): itself, the command and every
 * descendant that stayed in the group). It re-checks getppid() after the
 * prctl because the pool may have died before it. It ignores SIGTERM, so the group-wide
 * SIGTERM of a timeout reaches the command but not the supervisor, which then
 * reports how the command ended: it forks the command into the same group,
 * waits for it with wait4 and writes {wait status, CPU ms, max RSS} into a
 * status pipe. If the exec fails, the command writes errno into that pipe
 * first, so "not found" comes back as a clear message. The pipe is
 * close-on-exec, so a running command does not hold it: it reaches EOF once
 * the supervisor is gone, which is how a SIGKILLed group is noticed.
 *
 * The pool thread meanwhile runs one poll() loop over three pipes: the
 * payload goes out in non-blocking writes (a command that never reads stdin
 * cannot block the pool), stderr comes in and only its tail is kept, the
 * status pipe says when the command is over. The poll timeout wakes it for
 * the deadline and every 100 ms for the cancel flag. Timeout or cancel:
 * SIGTERM to the group, a grace period, SIGKILL to the group. After the
 * command ended, however it ended, the group is SIGKILLed once more so no
 * stray background process outlives the job; stderr is then drained of what
 * is already there rather than read to EOF, because such strays may hold it
 * open. The supervisor is reaped last, so until then its pid cannot be
 * reused and kill(-pid) cannot hit a stranger.
 *
 * PR_SET_PDEATHSIG fires when the *thread* that forked exits, not only the
 * process: fine for pool workers, which live as long as the pool and wait
 * here until the command is over, but a caller must not run exec_run on a
 * thread that may exit while it runs. A command that moves itself to another
 * process group or session (setsid, setpgid) escapes all of this.
 *
 * The command's stdout goes to /dev/null: the pool's stderr is its log, one
 * line per event written with a single write, and with --tui the terminal
 * shows the dashboard; a handler's raw output would break both. What a
 * handler has to say about a failure belongs on stderr, which is captured.
 *
 * Between fork and exec only async-signal-safe calls are made: the path
 * search, argv, envp and every buffer are prepared before the fork.
 */
#include "exec.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "duration.h"
#include "utf8.h"

#define CANCEL_POLL_MS 100
#define TAIL_CAP 4096       /* raw stderr bytes kept: the last ones */
#define TAIL_MAX 2000       /* at most this much of it goes into the error */
#define DRAIN_READS 64      /* bound on reading stderr after the end, 4 KB each */

/* Messages on the status pipe. Each is written with one write() smaller than
 * PIPE_BUF, so it arrives whole even with two writers (command, supervisor). */
enum { MSG_SETUP = 1, MSG_EXEC, MSG_STATUS };

struct msg {
    int kind;
    int err;                /* errno: MSG_SETUP (supervisor), MSG_EXEC (execve) */
    int status;             /* wait status of the command: MSG_STATUS */
    int pad;
    int64_t cpu_ms;
    int64_t max_rss_kb;
};
_Static_assert(sizeof(struct msg) <= PIPE_BUF, "status messages must be atomic");

/* Everything the two children need, computed before the fork. */
struct spawn {
    const char *path;
    char *const *argv;
    char *const *envp;
    int in_r, null_w, err_w, st_w;  /* the command's stdin, stdout, stderr; status */
    pid_t pool_pid;
    int deathsig;
    int max_fd;                     /* for closing fds without close_range */
    sigset_t all, none;
};

/* The last TAIL_CAP bytes of a stream, and how much there was in total. */
struct tail {
    char buf[TAIL_CAP];
    size_t len;
    unsigned long long total;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static const char *errstr(int e, char *buf, size_t len)
{
    return strerror_r(e, buf, len);   /* GNU variant: thread-safe */
}

/* sigabbrev_np needs glibc 2.32; these are the signals a command dies of. */
static const char *signame(int sig, char *buf, size_t len)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP", [SIGINT] = "SIGINT", [SIGQUIT] = "SIGQUIT",
        [SIGILL] = "SIGILL", [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE", [SIGKILL] = "SIGKILL",
        [SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM", [SIGTERM] = "SIGTERM",
        [SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",
        [SIGSTOP] = "SIGSTOP", [SIGTSTP] = "SIGTSTP", [SIGTTIN] = "SIGTTIN",
        [SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG", [SIGXCPU] = "SIGXCPU",
        [SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
        [SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO", [SIGPWR] = "SIGPWR",
        [SIGSYS] = "SIGSYS",
    };

    if (sig > 0 && (size_t)sig < sizeof names / sizeof names[0] && names[sig])
        return names[sig];
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

/* ---- in the children: async-signal-safe only ---------------------------- */

static void child_report(int fd, int kind, int err)
{
    struct msg m = { .kind = kind, .err = err };
    ssize_t n;

    do
        n = write(fd, &m, sizeof m);
    while (n < 0 && errno == EINTR);
}

/* The supervisor's PR_SET_PDEATHSIG handler: the pool is gone, so is the job. */
static void close_from(int lowfd, int max_fd)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lowfd, ~0U, 0U) == 0)
        return;
#endif
    for (int fd = lowfd; fd < max_fd; fd++)
        close(fd);
}

/* The command: default signal dispositions (an ignored SIGPIPE or SIGTERM
 * would survive exec) and an empty mask (pool threads block everything). */
static _Noreturn void run_command(const struct spawn *sp)
{
    struct sigaction dfl;

    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);   /* SIGKILL, SIGSTOP, libc's own: EINVAL, fine */
    sigprocmask(SIG_SETMASK, &sp->none, NULL);
    execve(sp->path, sp->argv, sp->envp);
    child_report(3, MSG_EXEC, errno);
    _exit(127);
}

static _Noreturn void supervise(const struct spawn *sp)
{
    const int want[4] = { sp->in_r, sp->null_w, sp->err_w, sp->st_w };
    int moved[4], status, i;
    struct sigaction sa;
    struct rusage ru;
    struct msg m;
    pid_t pid;

    /* Every signal stays blocked (it was, across the fork): the death
     * signal and SIGCHLD are taken synchronously with sigwaitinfo below, not
     * by a handler. A handler interrupting a blocking wait4 proved
     * unreliable (under ThreadSanitizer's runtime it never ran), and
     * synchronous delivery needs no async-signal-safety reasoning at all. */
    setpgid(0, 0);
    prctl(PR_SET_NAME, "pgq-exec");      /* in ps/top, not a second pgq-pool */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGTERM, &sa, NULL);       /* the timeout's SIGTERM is for the command
                                          * (and blocked too: belt and braces) */
    sa.sa_handler = SIG_DFL;
    sigaction(SIGCHLD, &sa, NULL);       /* SIG_IGN would make wait4 fail; a blocked
                                          * SIGCHLD stays pending for sigwaitinfo */
    sigprocmask(SIG_SETMASK, &sp->all, NULL);
    if (prctl(PR_SET_PDEATHSIG, sp->deathsig) < 0) {
        child_report(sp->st_w, MSG_SETUP, errno);
        _exit(127);
    }
    if (getppid() != sp->pool_pid) {     /* the pool died before the prctl */
        kill(0, SIGKILL);
        _exit(127);
    }

    /* Lay out fds 0-3, then close everything else: other workers' pipes are
     * in here too (fork copies them all), and a supervisor holding another
     * job's stdin or status pipe would keep that job from seeing EOF. Going
     * through fds >= 4 first makes the dup2s safe whatever numbers the
     * pipes got. */
    for (i = 0; i < 4; i++) {
        moved[i] = fcntl(want[i], F_DUPFD, 4);
        if (moved[i] < 0) {
            child_report(sp->st_w, MSG_SETUP, errno);
            _exit(127);
        }
    }
    for (i = 0; i < 4; i++) {
        if (dup2(moved[i], i) < 0) {
            child_report(moved[3], MSG_SETUP, errno);
            _exit(127);
        }
    }
    fcntl(3, F_SETFD, FD_CLOEXEC);      /* the command must not hold the status pipe */
    close_from(4, sp->max_fd);

    /* vfork: the supervisor is single-threaded and only waits, so borrowing
     * its memory until the command's execve is safe, and it spares a copy of
     * the page tables the supervisor inherited from the (large, threaded)
     * pool. run_command only resets signals and calls execve or _exit. */
    pid = vfork();
    if (pid < 0) {
        child_report(3, MSG_SETUP, errno);
        _exit(127);
    }
    if (pid == 0)
        run_command(sp);
    /* Not holding the command's stdin lets the pool's writes fail with EPIPE
     * once the command is gone instead of filling a pipe nobody reads. */
    close(0);
    close(1);
    close(2);
    /* Wait for the command or the pool's death, whichever comes first. A
     * SIGCHLD raised between the wait4 and the sigwaitinfo stays pending,
     * so none is missed. */
    sigset_t waitset;
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    sigaddset(&waitset, sp->deathsig);
    for (;;) {
        pid_t done = wait4(pid, &status, WNOHANG, &ru);
        if (done == pid)
            break;
        if (done < 0 && errno != EINTR) {
            child_report(3, MSG_SETUP, errno);
            _exit(127);
        }
        if (sigwaitinfo(&waitset, NULL) == sp->deathsig) {
            kill(0, SIGKILL);            /* the pool is gone: the whole group goes */
            _exit(127);
        }
    }
    memset(&m, 0, sizeof m);
    m.kind = MSG_STATUS;
    m.status = status;
    m.cpu_ms = ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
               ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
    m.max_rss_kb = ru.ru_maxrss;        /* kilobytes on Linux */
    while (write(3, &m, sizeof m) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* ---- in the pool ---------------------------------------------------------- */

/* One candidate file: 0 if we may execute it, else why not. */
static int runnable(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
        return EACCES;
    return 0;
}

/* The PATH search of exec.h's contract, before the fork: the same function
 * answers `pgq-pool --check`, so it cannot approve what exec cannot find. */
int exec_resolve(const char *name, char **path, int *err)
{
    const char *dirs = getenv("PATH"), *p, *colon;
    size_t nlen = strlen(name);
    char *fallback = NULL;
    bool eacces = false;

    *path = NULL;
    *err = 0;
    if (strchr(name, '/')) {
        if ((*err = runnable(name)) == 0 && !(*path = strdup(name)))
            return -1;
        return 0;
    }
    if (nlen == 0) {
        *err = ENOENT;
        return 0;
    }
    if (!dirs || !*dirs) {
        size_t n = confstr(_CS_PATH, NULL, 0);
        if (n == 0 || !(fallback = malloc(n)))
            return -1;
        confstr(_CS_PATH, fallback, n);
        dirs = fallback;
    }
    for (p = dirs;; p = colon + 1) {
        size_t dlen;
        char *cand;
        int e;

        colon = strchr(p, ':');
        dlen = colon ? (size_t)(colon - p) : strlen(p);
        cand = malloc(dlen + nlen + 3);
        if (!cand) {
            free(fallback);
            return -1;
        }
        /* An empty entry means the current directory, as for execvp. */
        snprintf(cand, dlen + nlen + 3, "%.*s/%s", (int)(dlen ? dlen : 1), dlen ? p : ".", name);
        if ((e = runnable(cand)) == 0) {
            *path = cand;
            free(fallback);
            return 0;
        }
        eacces |= e == EACCES;
        free(cand);
        if (!colon)
            break;
    }
    free(fallback);
    *err = eacces ? EACCES : ENOENT;
    return 0;
}

static bool same_name(const char *a, const char *b)
{
    size_t n = strcspn(a, "=");

    return strncmp(a, b, n) == 0 && b[n] == '=';
}

/* environ minus the names in extra, plus extra. The strings are borrowed. */
static char **build_env(const char *const *extra)
{
    size_t n = 0, k = 0, m = 0, i, j;
    const char **envp;

    while (environ && environ[n])
        n++;
    while (extra && extra[k])
        k++;
    envp = malloc((n + k + 1) * sizeof *envp);
    if (!envp)
        return NULL;
    for (i = 0; i < n; i++) {
        for (j = 0; j < k && !same_name(extra[j], environ[i]); j++)
            ;
        if (j == k)
            envp[m++] = environ[i];
    }
    for (j = 0; j < k; j++)
        envp[m++] = extra[j];
    envp[m] = NULL;
    return (char **)envp;
}

static void tail_add(struct tail *t, const char *p, size_t n)
{
    size_t keep;

    t->total += n;
    if (n >= TAIL_CAP) {
        memcpy(t->buf, p + n - TAIL_CAP, TAIL_CAP);
        t->len = TAIL_CAP;
        return;
    }
    keep = t->len + n > TAIL_CAP ? TAIL_CAP - n : t->len;
    memmove(t->buf, t->buf + t->len - keep, keep);
    memcpy(t->buf + keep, p, n);
    t->len = keep + n;
}

/* The tail as text of at most max bytes: whole lines when it had to be cut
 * and a line break allows, no leading blank lines, no trailing whitespace,
 * and storable: NUL, control characters and invalid UTF-8 become '?'
 * (tabs and newlines stay, CRLF becomes LF). */
static void tail_text(const struct tail *t, char *dst, size_t max)
{
    const char *s = t->buf, *e = t->buf + t->len, *p;
    bool cut = t->total > t->len;
    size_t o = 0;

    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if ((size_t)(e - s) > max) {
        s = e - max;
        cut = true;
    }
    if (cut) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (nl && nl + 1 < e)
            s = nl + 1;
        else
            while (s < e && ((unsigned char)*s & 0xC0) == 0x80)
                s++;
    }
    for (p = s; p < e && isspace((unsigned char)*p); p++)
        if (*p == '\n')
            s = p + 1;
    for (p = s; p < e;) {
        unsigned char c = (unsigned char)*p;
        size_t n;

        if (c == '\r' && p + 1 < e && p[1] == '\n') {
            p++;
        } else if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F)) {
            dst[o++] = (char)c;
            p++;
        } else if (c >= 0x80 && (n = utf8_char_len((const unsigned char *)p, (size_t)(e - p))) > 0) {
            memcpy(dst + o, p, n);
            o += n;
            p += n;
        } else {
            dst[o++] = '?';
            p++;
        }
    }
    dst[o] = '\0';
}

static void set_error(exec_result *res, const exec_request *req, const struct tail *t, int run_errno)
{
    char what[160], tail[TAIL_MAX + 1], buf[64], dur[32];
    size_t room;
    int n;

    if (!res->started) {
        snprintf(res->error, sizeof res->error, "cannot run \"%s\": %s", req->argv[0],
                 errstr(run_errno, buf, sizeof buf));
        return;
    }
    if (res->ok) {
        res->error[0] = '\0';
        return;
    }
    if (res->exit_code >= 0)
        n = snprintf(what, sizeof what, "exit status %d", res->exit_code);
    else if (res->term_signal > 0)
        n = snprintf(what, sizeof what, "killed by signal %d (%s)", res->term_signal,
                     signame(res->term_signal, buf, sizeof buf));
    else
        n = snprintf(what, sizeof what, "ended, but its status was lost");
    if (res->timed_out)
        snprintf(what + n, sizeof what - (size_t)n, " after timeout (%s)",
                 pgq_duration_format(req->timeout_ms, dur, sizeof dur));
    else if (res->cancelled)
        snprintf(what + n, sizeof what - (size_t)n, " after cancellation");

    room = sizeof res->error - strlen(what) - sizeof ": ";
    tail_text(t, tail, room < TAIL_MAX ? room : TAIL_MAX);
    if (tail[0])
        snprintf(res->error, sizeof res->error, "%s: %.*s", what, (int)room, tail);
    else
        snprintf(res->error, sizeof res->error, "%s", what);
}

/* Read what is there, at most max_reads chunks (a writer that escaped the
 * group could otherwise keep us here). False once the stream is over. */
static bool read_stderr(int fd, struct tail *t, int max_reads)
{
    char buf[4096];

    for (int i = 0; i < max_reads;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            tail_add(t, buf, (size_t)n);
            i++;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && errno == EAGAIN;
    }
    return true;
}

int exec_run(const exec_request *req, exec_result *res)
{
    struct spawn sp;
    struct tail *tail = NULL;
    struct msg m;
    char *path = NULL, **envp = NULL, ebuf[128];
    int in_p[2] = { -1, -1 }, err_p[2] = { -1, -1 }, st_p[2] = { -1, -1 }, null_fd = -1;
    int run_errno = 0, sup_status = 0, rc = -1;
    size_t off = 0, mlen = 0;
    int64_t t0 = now_ms(), deadline = 0, kill_at = 0;
    enum { RUNNING, TERMINATING, KILLED } phase = RUNNING;
    bool got_status = false, st_eof = false, epipe = false, pipe_pending, masked = false;
    sigset_t oldmask, runmask, pipeset, pending;
    pid_t sup = -1;
    long open_max;

    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->cpu_ms = -1;
    res->max_rss_kb = -1;
    if (!req->argv || !req->argv[0]) {
        snprintf(res->error, sizeof res->error, "empty command");
        return -1;
    }
    tail = calloc(1, sizeof *tail);
    if (!tail || exec_resolve(req->argv[0], &path, &run_errno) < 0 ||
        !(envp = build_env(req->env_extra))) {
        snprintf(res->error, sizeof res->error, "out of memory");
        goto fail;
    }
    if (!path) {                        /* not found: a failed attempt, no fork */
        set_error(res, req, tail, run_errno);
        rc = 0;
        goto out;
    }

    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(err_p, O_CLOEXEC) < 0 || pipe2(st_p, O_CLOEXEC) < 0) {
        snprintf(res->error, sizeof res->error, "pipe: %s", errstr(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null_fd < 0) {
        snprintf(res->error, sizeof res->error, "/dev/null: %s", errstr(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    if (fcntl(in_p[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(err_p[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(st_p[0], F_SETFL, O_NONBLOCK) < 0) {
        snprintf(res->error, sizeof res->error, "fcntl: %s", errstr(errno, ebuf, sizeof ebuf));
        goto fail;
    }

    open_max = sysconf(_SC_OPEN_MAX);
    sp = (struct spawn){
        .path = path, .argv = (char *const *)req->argv, .envp = envp,
        .in_r = in_p[0], .null_w = null_fd, .err_w = err_p[1], .st_w = st_p[1],
        .pool_pid = getpid(), .deathsig = SIGRTMIN,
        .max_fd = open_max > 0 && open_max < 65536 ? (int)open_max : 65536,
    };
    sigfillset(&sp.all);
    sigemptyset(&sp.none);

    /* All signals blocked across the fork, so no handler of the caller's
     * runs in the supervisor before it installs its own. Afterwards SIGPIPE
     * stays blocked in this thread until the end: a write to a command that
     * has exited must fail with EPIPE, not kill the pool, whatever the
     * caller's mask and disposition. */
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    pthread_sigmask(SIG_SETMASK, &sp.all, &oldmask);
    masked = true;
    sigpending(&pending);
    pipe_pending = sigismember(&pending, SIGPIPE);
    sup = fork();
    if (sup == 0)
        supervise(&sp);
    runmask = oldmask;
    sigaddset(&runmask, SIGPIPE);
    pthread_sigmask(SIG_SETMASK, &runmask, NULL);
    if (sup < 0) {
        snprintf(res->error, sizeof res->error, "fork: %s", errstr(errno, ebuf, sizeof ebuf));
        goto fail;
    }
    setpgid(sup, sup);      /* also here, so the group exists before we may signal it */
    close_fd(&in_p[0]);
    close_fd(&err_p[1]);
    close_fd(&st_p[1]);
    close_fd(&null_fd);
    if (req->payload_len == 0)
        close_fd(&in_p[1]);
    deadline = req->timeout_ms > 0 ? t0 + req->timeout_ms : 0;

    while (!got_status && !st_eof) {
        struct pollfd pfd[3];
        int64_t now = now_ms(), wait = -1;
        nfds_t nfd = 0;
        int n;

        if (phase == RUNNING) {
            bool to = deadline && now >= deadline;
            bool cx = !to && req->cancel && atomic_load(req->cancel);
            if (to || cx) {
                res->timed_out = to;
                res->cancelled = cx;
                kill(-sup, SIGTERM);
                phase = TERMINATING;
                kill_at = now + (req->grace_ms > 0 ? req->grace_ms : 0);
            }
        }
        if (phase == TERMINATING && now >= kill_at) {
            kill(-sup, SIGKILL);
            phase = KILLED;
        }
        if (phase == RUNNING) {
            if (deadline)
                wait = deadline - now;
            if (req->cancel && (wait < 0 || wait > CANCEL_POLL_MS))
                wait = CANCEL_POLL_MS;
        } else if (phase == TERMINATING) {
            wait = kill_at - now;
        }
        /* KILLED: the dead supervisor's end of the status pipe closes. */

        int ist = (int)nfd, ierr = -1, iin = -1;
        pfd[nfd++] = (struct pollfd){ .fd = st_p[0], .events = POLLIN };
        if (err_p[0] >= 0) {
            ierr = (int)nfd;
            pfd[nfd++] = (struct pollfd){ .fd = err_p[0], .events = POLLIN };
        }
        if (in_p[1] >= 0) {
            iin = (int)nfd;
            pfd[nfd++] = (struct pollfd){ .fd = in_p[1], .events = POLLOUT };
        }
        n = poll(pfd, nfd, wait > INT_MAX ? INT_MAX : (int)wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(res->error, sizeof res->error, "poll: %s", errstr(errno, ebuf, sizeof ebuf));
            goto fail;
        }
        if (iin >= 0 && pfd[iin].revents) {
            ssize_t w = write(in_p[1], req->payload + off, req->payload_len - off);
            if (w > 0)
                off += (size_t)w;
            else if (w < 0 && errno == EPIPE)
                epipe = true;
            /* Done, or the command stopped reading (EPIPE): EOF either way. */
            if (off == req->payload_len || (w < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&in_p[1]);
        }
        if (ierr >= 0 && pfd[ierr].revents && !read_stderr(err_p[0], tail, 16))
            close_fd(&err_p[0]);
        while (pfd[ist].revents) {
            ssize_t r = read(st_p[0], (char *)&m + mlen, sizeof m - mlen);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                st_eof = r == 0 || errno != EAGAIN;
                break;
            }
            mlen += (size_t)r;
            if (mlen < sizeof m)
                continue;
            mlen = 0;
            if (m.kind == MSG_STATUS) {
                got_status = true;
                sup_status = m.status;
                res->cpu_ms = m.cpu_ms;
                res->max_rss_kb = m.max_rss_kb;
                break;
            }
            run_errno = m.err;          /* MSG_SETUP or MSG_EXEC: it never ran */
        }
    }

    /* The command is over (or its supervisor is dead): whatever it left in
     * the group goes now. The supervisor, not yet reaped, keeps the group id
     * from being reused. Then take the stderr that is already there. */
    kill(-sup, SIGKILL);
    if (err_p[0] >= 0)
        (void)read_stderr(err_p[0], tail, DRAIN_READS);
    {
        int sst;
        pid_t w;
        while ((w = waitpid(sup, &sst, 0)) < 0 && errno == EINTR)
            ;
        sup = -1;
        if (!got_status && w > 0)
            sup_status = sst;
    }

    res->started = run_errno == 0;
    if (res->started) {
        if (got_status && WIFEXITED(sup_status)) {
            res->exit_code = WEXITSTATUS(sup_status);
        } else if (WIFSIGNALED(sup_status)) {
            /* From the report: what killed the command. Without one: what
             * killed the supervisor, and the command with it (the group). */
            res->term_signal = WTERMSIG(sup_status);
        }
    }
    res->ok = res->started && res->exit_code == 0 && !res->timed_out && !res->cancelled;
    set_error(res, req, tail, run_errno);
    rc = 0;
    goto out;

fail:
    rc = -1;
    if (sup > 0) {
        kill(-sup, SIGKILL);
        while (waitpid(sup, NULL, 0) < 0 && errno == EINTR)
            ;
    }
out:
    if (masked) {
        /* Our EPIPE left a SIGPIPE pending on this thread: take it back. */
        if (epipe && !pipe_pending) {
            struct timespec zero = { 0, 0 };
            sigtimedwait(&pipeset, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    }
    close_fd(&in_p[0]);
    close_fd(&in_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    close_fd(&st_p[0]);
    close_fd(&st_p[1]);
    close_fd(&null_fd);
    free(path);
    free(envp);
    free(tail);
    res->duration_ms = now_ms() - t0;
    return rc;
}
