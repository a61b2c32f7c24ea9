/*
 * exec.c -- run one job's `exec` handler: what the worker thread that runs
 * the job does, from the command's pipes to its result.
 *
 * A job's command gets the payload on stdin, the job's identity in its
 * environment, and fails with the tail of its stderr. The hard part is that
 * it must never outlive its job: not after a timeout, not after a lost
 * lease, not after the command itself exits leaving `cmd &` behind, and not
 * when the pool is SIGKILLed, grandchildren included. That part is the
 * spawners' (exec_spawner.c): a few small processes forked from the pool
 * as exec jobs need them, the parents of the commands, each command the
 * leader of a process group of its own. Which file runs and with which environment is
 * decided here, at the time of the job (exec_env.c); the error text comes
 * from stderr's tail (exec_tail.c).
 *
 * This thread makes the command's stdin, stdout and stderr pipes, hands
 * their far ends to a spawner with the request, and waits until it says
 * the command started (or could not: "not found" comes back as a clear
 * message). Then one poll() loop over four descriptors: the payload goes
 * out in non-blocking writes (a command that never reads stdin cannot
 * block the pool), stdout comes in and only its first out_max bytes are
 * kept (exec_out.c), stderr comes in and only its tail is kept, and the
 * job's socket brings the command's end -- wait status, CPU ms, max RSS --
 * once the spawner has reaped it and killed whatever it left in its group.
 * The poll timeout wakes the loop for the deadline and every 100 ms for the
 * cancel flag. Timeout or cancel: SIGTERM to the group, a grace period,
 * SIGKILL to the group, each sent by the spawner, which alone knows whether
 * the group id is still the job's. After the end, stderr is drained of what
 * is already there rather than read to EOF, because a process that escaped
 * the group may hold it open; so is stdout (a command that exited has
 * written all it wrote: what is left is in the pipe).
 *
 * If the spawner dies while a command runs (only SIGKILL can do that), the
 * command dies with it (PR_SET_PDEATHSIG), this thread SIGKILLs what is left
 * of its group, and the attempt ends as pgq's failure, not the command's;
 * the next job starts a new spawner. A command that moves itself to another
 * process group or session (setsid, setpgid) escapes all of this.
 *
 * The command's stdout is its result (the worker stores it with the done
 * attempt, pool/result.c), never the pool's: the pool's stderr is its log,
 * one line per event written with a single write, and with --tui the
 * terminal shows the dashboard; a handler's raw output would break both.
 * What a handler has to say about a failure belongs on stderr, which is
 * captured.
 */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec_int.h"

#define CANCEL_POLL_MS 100
#define DRAIN_READS 64      /* bound on reading stderr after the end, 4 KB each */

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

/* The command's stdin (the write end ours, non-blocking), stdout and
 * stderr (the read ends ours, non-blocking), all close-on-exec. */
static int make_pipes(int in_p[2], int out_p[2], int err_p[2], char *err, size_t errlen)
{
    char ebuf[128];

    if (pipe2(in_p, O_CLOEXEC) < 0 || pipe2(out_p, O_CLOEXEC) < 0 ||
        pipe2(err_p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", errstr(errno, ebuf, sizeof ebuf));
        return -1;
    }
    if (fcntl(in_p[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(out_p[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(err_p[0], F_SETFL, O_NONBLOCK) < 0) {
        snprintf(err, errlen, "fcntl: %s", errstr(errno, ebuf, sizeof ebuf));
        return -1;
    }
    return 0;
}

/* What the wait loop keeps track of, from the start to the command's end. */
struct run {
    const exec_request *req;
    exec_result *res;
    struct exec_tail *tail;
    struct exec_out out;
    int in_w, out_r, err_r, sock;   /* sock: job.sock */
    struct exec_job job;
    size_t off;                 /* payload bytes written */
    bool epipe;                 /* a write failed with EPIPE (SIGPIPE pending) */
    struct exec_msg m;          /* the STATUS, once got_status */
    size_t mlen;
    bool got_status, sock_eof;
};

/* Blocking: read until the STATUS or the end of the job's socket. Used
 * once the spawner has closed its end or was told to SIGKILL, so it ends
 * soon. */
static void await_status(struct run *r)
{
    while (!r->got_status && !r->sock_eof) {
        int got = exec_spawner_read(r->sock, &r->m, &r->mlen, true);
        r->got_status = got > 0 && r->m.kind == EXEC_MSG_STATUS;
        r->sock_eof = got < 0;
    }
}

/* Ask the spawner to signal the group. The send fails when the spawner
 * has closed the job's socket: either the command just ended (its STATUS
 * is waiting to be read) or the spawner died (EOF); the socket says which. */
static void signal_group(struct run *r, int sig)
{
    if (exec_spawner_signal(r->sock, sig) < 0)
        await_status(r);
}

/* Until the STATUS comes or the spawner is gone. 0, or -1 when poll
 * failed (res->error says so; the group is then SIGKILLed, and the
 * spawner reports its end, which is awaited without a timeout). */
static int wait_loop(struct run *r, int64_t t0)
{
    const exec_request *req = r->req;
    int64_t deadline = req->timeout_ms > 0 ? t0 + req->timeout_ms : 0, kill_at = 0;
    enum { RUNNING, TERMINATING, KILLED } phase = RUNNING;
    char ebuf[128];

    while (!r->got_status && !r->sock_eof) {
        struct pollfd pfd[4];
        int64_t now = now_ms(), wait = -1;
        nfds_t nfd = 0;
        int n, isock, ierr = -1, iin = -1, iout = -1;

        if (phase == RUNNING) {
            bool to = deadline && now >= deadline;
            bool cx = !to && req->cancel && atomic_load(req->cancel);
            if (to || cx) {
                r->res->timed_out = to;
                r->res->cancelled = cx;
                signal_group(r, SIGTERM);
                phase = TERMINATING;
                kill_at = now + (req->grace_ms > 0 ? req->grace_ms : 0);
            }
        }
        if (phase == TERMINATING && now >= kill_at) {
            signal_group(r, SIGKILL);
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
        /* KILLED: the STATUS follows the group's death. */

        isock = (int)nfd;
        pfd[nfd++] = (struct pollfd){ .fd = r->sock, .events = POLLIN };
        if (r->err_r >= 0) {
            ierr = (int)nfd;
            pfd[nfd++] = (struct pollfd){ .fd = r->err_r, .events = POLLIN };
        }
        if (r->out_r >= 0) {
            iout = (int)nfd;
            pfd[nfd++] = (struct pollfd){ .fd = r->out_r, .events = POLLIN };
        }
        if (r->in_w >= 0) {
            iin = (int)nfd;
            pfd[nfd++] = (struct pollfd){ .fd = r->in_w, .events = POLLOUT };
        }
        n = poll(pfd, nfd, wait > INT_MAX ? INT_MAX : (int)wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            snprintf(r->res->error, sizeof r->res->error, "poll: %s",
                     errstr(errno, ebuf, sizeof ebuf));
            signal_group(r, SIGKILL);
            await_status(r);
            return -1;
        }
        if (iin >= 0 && pfd[iin].revents) {
            ssize_t w = write(r->in_w, req->payload + r->off, req->payload_len - r->off);
            if (w > 0)
                r->off += (size_t)w;
            else if (w < 0 && errno == EPIPE)
                r->epipe = true;
            /* Done, or the command stopped reading (EPIPE): EOF either way. */
            if (r->off == req->payload_len || (w < 0 && errno != EAGAIN && errno != EINTR))
                close_fd(&r->in_w);
        }
        if (ierr >= 0 && pfd[ierr].revents && !exec_tail_read(r->err_r, r->tail, 16))
            close_fd(&r->err_r);
        if (iout >= 0 && pfd[iout].revents && !exec_out_read(r->out_r, &r->out, 4))
            close_fd(&r->out_r);
        if (pfd[isock].revents) {
            int got;
            while ((got = exec_spawner_read(r->sock, &r->m, &r->mlen, false)) > 0)
                if (r->m.kind == EXEC_MSG_STATUS) {
                    r->got_status = true;
                    break;
                }
            if (got < 0 && !r->got_status)
                r->sock_eof = true;
        }
    }
    return 0;
}

int exec_run(const exec_request *req, exec_result *res)
{
    struct run r = { .req = req, .res = res, .in_w = -1, .out_r = -1, .err_r = -1, .sock = -1,
                     .job = { .sock = -1, .pid = -1, .spawner = -1 },
                     .out = { .max = req->out_max } };
    char *path = NULL, **envp = NULL;
    int in_p[2] = { -1, -1 }, out_p[2] = { -1, -1 }, err_p[2] = { -1, -1 };
    int run_errno = 0, rc = -1;
    int64_t t0 = now_ms();
    bool pipe_pending = false, masked = false;
    sigset_t oldmask, pipeset, pending;

    memset(res, 0, sizeof *res);
    res->exit_code = -1;
    res->cpu_ms = -1;
    res->max_rss_kb = -1;
    if (!req->argv || !req->argv[0]) {
        snprintf(res->error, sizeof res->error, "empty command");
        return -1;
    }
    r.tail = calloc(1, sizeof *r.tail);
    if (!r.tail || exec_resolve(req->argv[0], &path, &run_errno) < 0 ||
        !(envp = exec_env_build(req->env_extra))) {
        snprintf(res->error, sizeof res->error, "out of memory");
        goto fail;
    }
    if (!path) {                        /* not found: a failed attempt, nothing started */
        exec_error_text(res, req, r.tail, run_errno);
        rc = 0;
        goto out;
    }
    if (make_pipes(in_p, out_p, err_p, res->error, sizeof res->error) < 0)
        goto fail;

    /* SIGPIPE stays blocked in this thread until the end: a write to a
     * command that has exited must fail with EPIPE, not kill the pool,
     * whatever the caller's mask and disposition. */
    sigemptyset(&pipeset);
    sigaddset(&pipeset, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipeset, &oldmask);
    masked = true;
    sigpending(&pending);
    pipe_pending = sigismember(&pending, SIGPIPE);

    if (exec_spawner_run(path, req->argv, envp, in_p[0], out_p[1], err_p[1], &r.job,
                         &run_errno, res->error, sizeof res->error) < 0)
        goto fail;
    r.sock = r.job.sock;
    /* The spawner has its own copies; ours would keep the pipes from
     * ending (EPIPE on stdin, EOF on stdout and stderr). */
    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    if (r.job.pid < 0) {                /* execve (or vfork) failed: a failed attempt */
        exec_error_text(res, req, r.tail, run_errno);
        rc = 0;
        goto out;
    }
    r.in_w = in_p[1];
    r.out_r = out_p[0];
    r.err_r = err_p[0];
    in_p[1] = out_p[0] = err_p[0] = -1;
    if (req->payload_len == 0)
        close_fd(&r.in_w);

    if (wait_loop(&r, t0) < 0)
        goto fail;
    if (!r.got_status) {
        /* The spawner died. The command got SIGKILL with it; the rest of
         * its group goes now. No one holds the group id any more, so in
         * theory it could have been reused since -- for a new group to
         * take it, its whole group must have died first. */
        kill(-r.job.pid, SIGKILL);
        snprintf(res->error, sizeof res->error, "the exec spawner died while \"%s\" ran "
                 "(its process group was killed)", req->argv[0]);
        goto fail;
    }
    if (r.err_r >= 0)
        (void)exec_tail_read(r.err_r, r.tail, DRAIN_READS);
    if (r.out_r >= 0)
        (void)exec_out_read(r.out_r, &r.out, DRAIN_READS);
    res->started = true;
    res->cpu_ms = r.m.cpu_ms;
    res->max_rss_kb = r.m.max_rss_kb;
    if (WIFEXITED(r.m.status))
        res->exit_code = WEXITSTATUS(r.m.status);
    else if (WIFSIGNALED(r.m.status))
        res->term_signal = WTERMSIG(r.m.status);
    res->ok = res->exit_code == 0 && !res->timed_out && !res->cancelled;
    exec_error_text(res, req, r.tail, 0);
    rc = 0;
    goto out;

fail:
    rc = -1;
out:
    if (masked) {
        /* Our EPIPE left a SIGPIPE pending on this thread: take it back. */
        if (r.epipe && !pipe_pending) {
            struct timespec zero = { 0, 0 };
            sigtimedwait(&pipeset, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    }
    close_fd(&in_p[0]);
    close_fd(&in_p[1]);
    close_fd(&out_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[0]);
    close_fd(&err_p[1]);
    close_fd(&r.in_w);
    close_fd(&r.out_r);
    close_fd(&r.err_r);
    res->out = r.out.buf;           /* the caller's now, kept or not */
    res->out_len = r.out.len;
    res->out_total = r.out.total;
    exec_spawner_release(&r.job);      /* closes r.sock */
    free(path);
    free(envp);
    free(r.tail);
    res->duration_ms = now_ms() - t0;
    return rc;
}
