/*
 * exec_spawner.c -- the small processes that start, watch and reap every
 * exec command of a pool.
 *
 * Why processes of their own: a command must be started from somewhere,
 * and forking the pool per job (9 MB, many threads) costs a copy of its
 * page tables every time and held exec at a quarter of what the machine
 * can spawn. A spawner is forked from the pool once and is
 * single-threaded; it starts each command with vfork + execve, which
 * copies nothing, so a command costs what posix_spawn costs.
 *
 *   pool --fork (once each)--> spawner --vfork+exec--> command --> ...
 *                                                      \_ its own process group _/
 *
 * Several of them (twice the CPUs, at most 8: exec_client.c), started as the
 * load needs them: vfork keeps a spawner waiting until its command's execve
 * is done (~0.4 ms for /bin/true on the development VM), so one spawner
 * made the workers queue behind each other's execs, and exec ran at ~0.4
 * of the posix_spawn ceiling even with no database work at all; with four
 * it runs at the ceiling. Each job goes to the spawner with the fewest
 * jobs in flight, so a quiet pool uses (and starts) one.
 *
 * A spawner is also what the old per-job supervisor was: the parent of its
 * commands, so the one that gets their wait status and rusage (wait4), and
 * the one that kills their groups when the pool dies. It learns of the
 * pool's death from a pidfd of the pool (readable when the whole process
 * is gone, however it died: SIGKILL included) and from the end of its
 * control socket, whichever comes first; without pidfd_open (Linux < 5.3)
 * it checks getppid() every PARENT_POLL_MS. Then it SIGKILLs every group
 * it started and exits. No PR_SET_PDEATHSIG for the spawner: it fires when
 * the *thread* that forked exits, and a spawner is forked by whichever
 * worker first needs it. Each command does get PR_SET_PDEATHSIG
 * (SIGKILL) on the spawner, so a spawner killed on its own does not leave
 * its commands running; the worker then kills the rest of the group.
 *
 * The spawner leads a process group of its own, so a terminal's Ctrl-C or
 * a kill of the pool's group ends the pool (which then drains or is gone)
 * but not the spawner before the pool is; it blocks every signal (SIGCHLD
 * comes through a signalfd) and so is ended only by SIGKILL.
 *
 * Protocol (the wire format is in exec_int.h). One SOCK_SEQPACKET control
 * socket per spawner, shared by the pool's threads (one sendmsg per job,
 * whole by construction, under a mutex so a restart cannot pull the socket
 * from under a sender). Each job sends on it four descriptors: its own
 * stream socket (the job's channel), the read end of the command's stdin
 * pipe, the write end of its stderr pipe, and the pool's current directory
 * (the spawner's is the one it was forked in).
 * The request itself -- resolved path, argv, the whole environment, built
 * by the worker at that moment -- follows on the job's socket, so it may be
 * as large as exec allows. The spawner answers STARTED (with the pid) or
 * NOTRUN (errno), then STATUS once the command is reaped; the worker may
 * send signals for the group meanwhile (timeout, cancellation). When the
 * worker's end closes before STATUS, nobody waits for the command any
 * more: its group is killed.
 *
 * Reaping, in that order: waitid(WNOWAIT) finds an exited command, its
 * group is SIGKILLed (what it left behind, `cmd &`, dies with the job; the
 * unreaped leader keeps the group id from being reused), then wait4 reaps
 * it with its rusage and STATUS goes out. Once the command is reaped its
 * pid may be reused, so signals from the worker go through the spawner,
 * which knows whether its job is still there, never straight from the pool.
 *
 * What a command inherits from the pool at the spawner's start rather than
 * at its own: umask, resource limits, credentials, scheduling. pgq changes
 * none of them after start-up.
 *
 * The spawner runs after a fork of a multi-threaded process: it uses only
 * system calls, and memory of its own from mmap (sp_alloc below). Not
 * malloc: glibc keeps its malloc usable in a forked child, but other
 * allocators do not -- AddressSanitizer's deadlocked in a spawner forked
 * while another thread of the pool held its lock (exec: many_threads_at_once
 * hung under SANITIZER=address).
 * The pool's side -- starting spawners, choosing one per job, the request
 * and the answers -- is exec_client.c.
 */
#include "exec_int.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define PARENT_POLL_MS 200          /* without a pidfd: how often getppid() is checked */
#define REQ_MAGIC EXEC_REQ_MAGIC
#define REQ_MAX EXEC_REQ_MAX
#define NFDS EXEC_NFDS

static int64_t rusage_ms(const struct rusage *ru)
{
    return ((int64_t)ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000 +
           ((int64_t)ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000;
}

/* One job: receiving its request (pid 0), running (pid > 0), or running
 * with nobody to report to (sock -1). */
struct job {
    int sock, in_r, err_w, cwd, out_w;
    pid_t pid;
    struct exec_req_hdr h;
    size_t have;                    /* bytes of h, then of body, received */
    char *body;
    char kbuf[sizeof(int32_t)];     /* a signal request being received */
    size_t khave;
    volatile int exec_err;          /* set by the vfork child when execve failed */
};

struct spawner {
    int ctl, pidfd, sigfd;
    pid_t pool, self;
    struct job **jobs;
    size_t njobs, cap;
    sigset_t none;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- memory of the spawner's own (see the top: no malloc after fork) ---- */

/* Each block is its own mapping, its size in front: a few per job, against
 * a vfork and an execve per job. */
static void *sp_alloc(size_t n)
{
    size_t len = n + 16;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    *(size_t *)p = len;
    return (char *)p + 16;
}

static void *sp_calloc(size_t n, size_t size)
{
    return size && n > SIZE_MAX / size ? NULL : sp_alloc(n * size);   /* mmap zero-fills */
}

static void sp_free(void *q)
{
    if (q) {
        char *p = (char *)q - 16;
        munmap(p, *(size_t *)p);
    }
}

static void *sp_realloc(void *q, size_t n)
{
    void *r = sp_alloc(n);
    if (r && q) {
        size_t old = *(size_t *)((char *)q - 16) - 16;
        memcpy(r, q, old < n ? old : n);
        sp_free(q);
    }
    return r;
}

static void job_free(struct spawner *sp, struct job *j)
{
    for (size_t i = 0; i < sp->njobs; i++) {
        if (sp->jobs[i] == j) {
            sp->jobs[i] = sp->jobs[--sp->njobs];
            break;
        }
    }
    close_fd(&j->sock);
    close_fd(&j->in_r);
    close_fd(&j->err_w);
    close_fd(&j->cwd);
    close_fd(&j->out_w);
    sp_free(j->body);
    sp_free(j);
}

/* The pool is gone: so is every job. Commands still starting have no pid
 * yet and no process. */
static _Noreturn void pool_gone(struct spawner *sp)
{
    for (size_t i = 0; i < sp->njobs; i++)
        if (sp->jobs[i]->pid > 0)
            kill(-sp->jobs[i]->pid, SIGKILL);
    _exit(0);
}

/* A message to the job's worker; false when the worker is gone (its end is
 * closed), which drops the channel. The messages are small and at most two
 * per job, so a full socket buffer cannot happen. */
static bool job_tell(struct job *j, const struct exec_msg *m)
{
    if (j->sock < 0)
        return false;
    if (send(j->sock, m, sizeof *m, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof *m)
        return true;
    close_fd(&j->sock);
    return false;
}

/* The command, in the vfork child (sharing the spawner's memory until
 * execve): async-signal-safe calls only, nothing written but exec_err. The
 * spawner's fds 0-2 are /dev/null and all others close-on-exec, so after
 * the three dup2s the command holds its stdin, stdout and stderr pipes,
 * and nothing else. Dispositions are default already (spawner_setup); the mask
 * is the spawner's all-blocked one until here. */
static _Noreturn void command_child(struct job *j, const struct spawner *sp, const char *path,
                                    char *const *argv, char *const *envp)
{
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        goto fail;
    if (getppid() != sp->self) {        /* the spawner was killed before the prctl */
        errno = ESRCH;
        goto fail;
    }
    if (dup2(j->in_r, 0) < 0 || dup2(j->out_w, 1) < 0 || dup2(j->err_w, 2) < 0 ||
        fchdir(j->cwd) < 0)
        goto fail;
    sigprocmask(SIG_SETMASK, &sp->none, NULL);
    execve(path, argv, envp);
fail:
    j->exec_err = errno;
    _exit(127);
}

/* Split the request body into v: path, argv..., NULL, envp..., NULL (one
 * malloc'd array of pointers into the body). -1 if it is malformed (a bug
 * of ours: the worker built it) or out of memory. */
static int parse_request(const struct job *j, char ***out)
{
    char *p = j->body, *end = j->body + j->h.len;
    size_t nstr = (size_t)j->h.argc + j->h.envc + 1, k, slot = 0;
    char **v;

    if (j->h.argc < 1 || nstr > j->h.len)
        return -1;
    v = sp_alloc((nstr + 2) * sizeof *v);
    if (!v)
        return -1;
    for (k = 0; k < nstr; k++) {
        char *nul = p < end ? memchr(p, '\0', (size_t)(end - p)) : NULL;
        if (!nul)
            break;
        v[slot++] = p;
        if (k == j->h.argc)
            v[slot++] = NULL;           /* argv ends */
        p = nul + 1;
    }
    if (k != nstr || p != end) {
        sp_free(v);
        return -1;
    }
    v[slot] = NULL;                     /* envp ends */
    *out = v;
    return 0;
}

/* vfork + execve of the job's request. Kept apart so that nothing of the
 * caller's frame is live across the vfork. Returns the pid, or -1 with
 * *e set (vfork's or execve's errno; a child whose execve failed is reaped
 * here). */
static pid_t spawn_command(struct job *j, const struct spawner *sp, char **v)
{
    char **argv = v + 1, **envp = v + j->h.argc + 2;
    pid_t pid;

    j->exec_err = 0;
    pid = vfork();
    if (pid == 0)
        command_child(j, sp, v[0], argv, envp);
    if (pid < 0) {
        j->exec_err = errno;
        return -1;
    }
    if (j->exec_err) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -1;
    }
    return pid;
}

/* The request is complete: start the command and say so. */
static void job_start(struct spawner *sp, struct job *j)
{
    struct exec_msg m = { .kind = EXEC_MSG_NOTRUN };
    char **v = NULL;
    pid_t pid = -1;

    if (j->h.magic != REQ_MAGIC || parse_request(j, &v) < 0)
        j->exec_err = EINVAL;
    else
        pid = spawn_command(j, sp, v);
    sp_free(v);
    sp_free(j->body);
    j->body = NULL;
    /* The spawner must not hold the command's stdin (the pool's writes get
     * EPIPE once the command is gone) nor its stdout and stderr (EOF). */
    close_fd(&j->in_r);
    close_fd(&j->err_w);
    close_fd(&j->cwd);
    close_fd(&j->out_w);
    if (pid < 0) {
        m.err = j->exec_err;
        job_tell(j, &m);
        job_free(sp, j);
        return;
    }
    j->pid = pid;
    m = (struct exec_msg){ .kind = EXEC_MSG_STARTED, .pid = (int32_t)pid };
    if (!job_tell(j, &m))
        kill(-pid, SIGKILL);            /* nobody waits for it */
}

/* Input on a job's socket: more of the request, or signals for its group.
 * EOF: the worker is gone; a command nobody waits for is killed. */
static void job_input(struct spawner *sp, struct job *j)
{
    for (;;) {
        char *dst;
        size_t want;
        ssize_t n;

        if (j->pid == 0 && j->have < sizeof j->h) {
            dst = (char *)&j->h + j->have;
            want = sizeof j->h - j->have;
        } else if (j->pid == 0) {
            if (!j->body) {
                if (j->h.magic != REQ_MAGIC || j->h.len > REQ_MAX ||
                    !(j->body = sp_alloc(j->h.len ? j->h.len : 1))) {
                    struct exec_msg m = { .kind = EXEC_MSG_NOTRUN,
                                          .err = j->h.magic != REQ_MAGIC ? EINVAL : E2BIG };
                    job_tell(j, &m);
                    job_free(sp, j);
                    return;
                }
            }
            size_t got = j->have - sizeof j->h;
            if (got == j->h.len) {
                job_start(sp, j);
                return;
            }
            dst = j->body + got;
            want = j->h.len - got;
        } else {
            dst = j->kbuf + j->khave;
            want = sizeof j->kbuf - j->khave;
        }
        n = recv(j->sock, dst, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (j->pid == 0) {
                job_free(sp, j);
            } else {
                close_fd(&j->sock);
                kill(-j->pid, SIGKILL);
            }
            return;
        }
        if (j->pid == 0) {
            j->have += (size_t)n;
            continue;
        }
        j->khave += (size_t)n;
        if (j->khave == sizeof j->kbuf) {
            int32_t sig;
            memcpy(&sig, j->kbuf, sizeof sig);
            j->khave = 0;
            if (sig == SIGTERM || sig == SIGKILL)
                kill(-j->pid, sig);
        }
    }
}

/* Room for one more job in the table. */
static bool jobs_room(struct spawner *sp)
{
    struct job **t;
    size_t cap = sp->cap * 2 + 8;

    if (sp->njobs < sp->cap)
        return true;
    t = sp_realloc(sp->jobs, cap * sizeof *t);
    if (!t)
        return false;
    sp->jobs = t;
    sp->cap = cap;
    return true;
}

/* New jobs on the control socket; false once it is over (the pool closed
 * it or died). */
static bool ctl_input(struct spawner *sp)
{
    for (;;) {
        union {
            struct cmsghdr h;
            char buf[CMSG_SPACE(NFDS * sizeof(int))];
        } cm;
        uint32_t magic = 0;
        struct iovec iov = { &magic, sizeof magic };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                             .msg_controllen = sizeof cm.buf };
        int fds[NFDS] = { -1, -1, -1, -1, -1 }, nfds = 0;
        ssize_t n = recvmsg(sp->ctl, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                continue;
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                if (nfds < NFDS)
                    fds[nfds++] = fd;
                else
                    close(fd);
            }
        }
        struct job *j = NULL;
        if (magic == REQ_MAGIC && nfds == NFDS && !(mh.msg_flags & MSG_CTRUNC) &&
            jobs_room(sp))
            j = sp_calloc(1, sizeof *j);
        if (!j) {
            /* Out of memory or not ours: closing the job's socket tells its
             * worker (EOF before an answer). */
            for (int i = 0; i < nfds; i++)
                close(fds[i]);
            continue;
        }
        *j = (struct job){ .sock = fds[0], .in_r = fds[1], .err_w = fds[2], .cwd = fds[3],
                           .out_w = fds[4] };
        sp->jobs[sp->njobs++] = j;
    }
}

/* Reap every command that has ended: kill what it left in its group while
 * it is still a zombie, then wait4 it and report. */
static void reap(struct spawner *sp)
{
    struct signalfd_siginfo si_buf[16];

    while (read(sp->sigfd, si_buf, sizeof si_buf) > 0)
        ;
    for (;;) {
        siginfo_t si;
        struct rusage ru;
        int st;

        memset(&si, 0, sizeof si);
        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
            return;
        kill(-si.si_pid, SIGKILL);
        while (wait4(si.si_pid, &st, 0, &ru) < 0 && errno == EINTR)
            ;
        for (size_t i = 0; i < sp->njobs; i++) {
            struct job *j = sp->jobs[i];
            if (j->pid != si.si_pid)
                continue;
            struct exec_msg m = { .kind = EXEC_MSG_STATUS, .status = st,
                                  .cpu_ms = rusage_ms(&ru), .max_rss_kb = ru.ru_maxrss };
            job_tell(j, &m);
            job_free(sp, j);
            break;
        }
    }
}

/* close(lo..hi); close_range where the kernel has it. */
static void close_range_of(int lo, int hi)
{
    long max = sysconf(_SC_OPEN_MAX);

    if (hi < lo)
        return;
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)lo, (unsigned)hi, 0U) == 0)
        return;
#endif
    if (max <= 0 || max > 65536)
        max = 65536;
    for (int fd = lo; fd <= hi && fd < max; fd++)
        close(fd);
}

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void)pid;
    return -1;
#endif
}

/* Make the forked copy of the pool a spawner: fds 0-2 on /dev/null, the
 * control socket on 3, everything else of the pool's closed (its
 * connections, other jobs' pipes), default dispositions (an ignored
 * SIGCHLD would break wait4, an ignored SIGPIPE or SIGTERM would survive
 * into commands), all signals blocked. */
static void spawner_setup(struct spawner *sp, int ctl, pid_t pool)
{
    struct sigaction dfl;
    sigset_t all, chld;
    int fd, null_fd;

    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);       /* already so across the fork */
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);             /* SIGKILL, SIGSTOP, libc's own: EINVAL */
    setpgid(0, 0);
    prctl(PR_SET_NAME, "pgq-exec");             /* in ps/top, not a second pgq-pool */

    fd = fcntl(ctl, F_DUPFD_CLOEXEC, 3);
    if (fd < 0)
        _exit(127);
    close_range_of(0, fd - 1);
    close_range_of(fd + 1, INT_MAX);
    null_fd = open("/dev/null", O_RDWR);        /* 0: the lowest free */
    if (null_fd != 0 || dup2(0, 1) != 1 || dup2(0, 2) != 2 || dup2(fd, 3) != 3)
        _exit(127);
    if (fd != 3)
        close(fd);
    fcntl(3, F_SETFD, FD_CLOEXEC);

    sp->ctl = 3;
    sp->pool = pool;
    sp->self = getpid();
    sigemptyset(&sp->none);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sp->sigfd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
    sp->pidfd = pidfd_of(pool);
    if (sp->sigfd < 0 || getppid() != pool)     /* the pool died before the pidfd */
        _exit(127);
}

void exec_spawner_main(int ctl, pid_t pool)
{
    struct spawner sp = { .ctl = -1 };
    struct pollfd *pfd = NULL;
    struct job **snap = NULL;
    size_t room = 0;

    spawner_setup(&sp, ctl, pool);
    for (;;) {
        size_t n = 3, i;

        if (room < sp.njobs + 3) {
            room = (sp.njobs + 3) * 2;
            pfd = sp_realloc(pfd, room * sizeof *pfd);
            snap = sp_realloc(snap, room * sizeof *snap);
            if (!pfd || !snap)
                pool_gone(&sp);         /* cannot watch the jobs: end them */
        }
        pfd[0] = (struct pollfd){ .fd = sp.ctl, .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = sp.pidfd, .events = POLLIN };
        pfd[2] = (struct pollfd){ .fd = sp.sigfd, .events = POLLIN };
        for (i = 0; i < sp.njobs; i++) {
            if (sp.jobs[i]->sock < 0)
                continue;
            snap[n] = sp.jobs[i];
            pfd[n++] = (struct pollfd){ .fd = sp.jobs[i]->sock, .events = POLLIN };
        }
        if (poll(pfd, n, sp.pidfd >= 0 ? -1 : PARENT_POLL_MS) < 0 && errno != EINTR)
            pool_gone(&sp);
        if (pfd[1].revents || (sp.pidfd < 0 && getppid() != sp.pool))
            pool_gone(&sp);
        if (pfd[0].revents && !ctl_input(&sp))
            pool_gone(&sp);
        /* Each job's input may free that job, and only that one; reaping
         * frees others, so it comes after. */
        for (i = 3; i < n; i++)
            if (pfd[i].revents)
                job_input(&sp, snap[i]);
        if (pfd[2].revents)
            reap(&sp);
    }
}
