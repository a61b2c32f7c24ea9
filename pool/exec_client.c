/*
 * exec_client.c -- the pool's side of the spawners (exec_spawner.c, whose
 * opening says why they exist and how they work): starting them, picking
 * one per job, handing it the job, and the answers.
 *
 * A job is handed over in two parts: one message on the spawner's control
 * socket carrying the job's four descriptors, then the request (path,
 * argv, environment) on the job's own socket, which then carries the
 * answers: STARTED or NOTRUN, and STATUS. exec_spawner_run waits for the
 * first answer; a spawner found dead (killed since its last job) is reaped
 * and replaced, and the job is handed to the new one, since nothing had
 * started. A process forked from the pool gets a pthread_atfork handler's
 * reset: its copies of the control sockets are closed and it starts
 * spawners of its own if it runs a command.
 */
#include "exec_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* The spawners (exec_spawner.c says why several): up to twice the CPUs,
 * at most MAX_SPAWNERS; more could only wait for a CPU. */
#define MAX_SPAWNERS 8

struct slot {
    int ctl;            /* our end of its control socket; -1: not running */
    pid_t pid;          /* the spawner, our child; -1: none */
    unsigned gen;       /* bumped at every start, so a failure restarts it once */
    int busy;           /* jobs in flight */
};

static struct {
    pthread_mutex_t mu;
    int n;              /* spawners to use; 0 until the first job */
    struct slot sl[MAX_SPAWNERS];
} S = { .mu = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* In a forked child of the pool: the spawners are the parent's, and our
 * copies of their control sockets must not keep them from seeing the
 * parent die. The mutex may be held by a thread the child does not have. */
static void atfork_child(void)
{
    for (int i = 0; i < S.n; i++) {
        if (S.sl[i].ctl >= 0)
            close(S.sl[i].ctl);
        S.sl[i] = (struct slot){ .ctl = -1, .pid = -1, .gen = S.sl[i].gen + 1 };
    }
    pthread_mutex_init(&S.mu, NULL);
}

static void atfork_register(void)
{
    pthread_atfork(NULL, NULL, atfork_child);
}

/* S.mu held: the spawner for the next job, counted busy. */
static int slot_pick(void)
{
    int best = 0;

    if (S.n == 0) {
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        S.n = ncpu < 1 ? 1 : ncpu * 2 > MAX_SPAWNERS ? MAX_SPAWNERS : (int)ncpu * 2;
        for (int i = 0; i < MAX_SPAWNERS; i++)
            S.sl[i] = (struct slot){ .ctl = -1, .pid = -1 };
    }
    for (int i = 1; i < S.n; i++)
        if (S.sl[i].busy < S.sl[best].busy)
            best = i;
    S.sl[best].busy++;
    return best;
}

/* S.mu held. */
static int spawner_start(struct slot *sl, char *err, size_t errlen)
{
    sigset_t all, old;
    pid_t pool = getpid(), pid;
    int sv[2], e;

    pthread_once(&atfork_once, atfork_register);
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "starting an exec spawner: socketpair: %s", strerror(errno));
        return -1;
    }
    /* All signals blocked across the fork, so that no handler of the
     * pool's runs in the child before it resets them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid = fork();
    if (pid == 0)
        exec_spawner_main(sv[1], pool);
    e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        snprintf(err, errlen, "starting an exec spawner: fork: %s", strerror(e));
        return -1;
    }
    sl->ctl = sv[0];
    sl->pid = pid;
    sl->gen++;
    return 0;
}

/* S.mu held. The spawner failed us (its socket is closed): make sure it is
 * gone, reap it, and let the next job start another. A spawner that is
 * still alive (it cannot be, but) would see EOF and end its commands; the
 * SIGKILL makes the wait below finite. */
static void spawner_forget(struct slot *sl)
{
    if (sl->ctl >= 0)
        close(sl->ctl);
    sl->ctl = -1;
    if (sl->pid > 0) {
        kill(sl->pid, SIGKILL);
        while (waitpid(sl->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    sl->pid = -1;
}

static bool peer_gone(int e)
{
    return e == EPIPE || e == ECONNRESET || e == ENOTCONN || e == ECONNREFUSED;
}

/* The control message: a magic word and the job's four descriptors. */
static int send_job(int ctl, const int fds[EXEC_NFDS])
{
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(EXEC_NFDS * sizeof(int))];
    } cm;
    uint32_t magic = EXEC_REQ_MAGIC;
    struct iovec iov = { &magic, sizeof magic };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                         .msg_controllen = sizeof cm.buf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

    memset(cm.buf, 0, sizeof cm.buf);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(EXEC_NFDS * sizeof(int));
    memcpy(CMSG_DATA(c), fds, EXEC_NFDS * sizeof(int));
    for (;;) {
        ssize_t n = sendmsg(ctl, &mh, MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof magic)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        return -1;
    }
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Blocking: the first answer. -1 with errno when the spawner is gone. */
static int recv_first(int fd, struct exec_msg *m)
{
    size_t have = 0;

    while (have < sizeof *m) {
        ssize_t r = recv(fd, (char *)m + have, sizeof *m - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            if (r == 0)
                errno = ECONNRESET;
            return -1;
        }
        have += (size_t)r;
    }
    return 0;
}

/* The request body (see struct exec_req_hdr), malloc'd. */
static char *encode(const char *path, const char *const *argv, char *const *envp, size_t *len)
{
    struct exec_req_hdr h = { .magic = EXEC_REQ_MAGIC };
    size_t n = strlen(path) + 1, o;
    char *buf;

    for (; argv[h.argc]; h.argc++)
        n += strlen(argv[h.argc]) + 1;
    for (; envp[h.envc]; h.envc++)
        n += strlen(envp[h.envc]) + 1;
    if (n > EXEC_REQ_MAX) {
        errno = E2BIG;
        return NULL;
    }
    h.len = (uint32_t)n;
    buf = malloc(sizeof h + n);
    if (!buf)
        return NULL;
    memcpy(buf, &h, sizeof h);
    o = sizeof h;
#define PUT(s) do { size_t l_ = strlen(s) + 1; memcpy(buf + o, (s), l_); o += l_; } while (0)
    PUT(path);
    for (uint32_t i = 0; i < h.argc; i++)
        PUT(argv[i]);
    for (uint32_t i = 0; i < h.envc; i++)
        PUT(envp[i]);
#undef PUT
    *len = o;
    return buf;
}

int exec_spawner_run(const char *path, const char *const *argv, char *const *envp, int in_r,
                     int out_w, int err_w, struct exec_job *job, int *run_errno, char *err,
                     size_t errlen)
{
    size_t len = 0;
    char *req = encode(path, argv, envp, &len);
    /* O_PATH: a directory the pool may enter but not read (mode 0711) is
     * still a working directory the command must get. */
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC), rc = -1, e = 0, k;

    *job = (struct exec_job){ .sock = -1, .pid = -1, .spawner = -1 };
    *run_errno = 0;
    if (!req) {
        if (errno == E2BIG) {           /* a failed attempt, as execve would say */
            *run_errno = E2BIG;
            rc = 0;
        } else {
            snprintf(err, errlen, "out of memory");
        }
        goto out;
    }
    if (cwd < 0) {
        snprintf(err, errlen, "opening the current directory for the command: %s",
                 strerror(errno));
        goto out;
    }
    pthread_mutex_lock(&S.mu);
    k = slot_pick();
    pthread_mutex_unlock(&S.mu);
    job->spawner = k;
    /* Twice at most: once more when the spawner turned out to be dead
     * (killed since its last job); nothing had started then. */
    for (int attempt = 0; attempt < 2; attempt++) {
        struct slot *sl = &S.sl[k];
        struct exec_msg m;
        unsigned gen;
        int js[2], fds[EXEC_NFDS];

        pthread_mutex_lock(&S.mu);
        if (sl->ctl < 0 && spawner_start(sl, err, errlen) < 0) {
            pthread_mutex_unlock(&S.mu);
            goto out;
        }
        gen = sl->gen;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, js) < 0) {
            e = errno;
            pthread_mutex_unlock(&S.mu);
            snprintf(err, errlen, "handing the command to an exec spawner: socketpair: %s",
                     strerror(e));
            goto out;
        }
        fds[0] = js[1];
        fds[1] = in_r;
        fds[2] = err_w;
        fds[3] = cwd;
        fds[4] = out_w;
        rc = send_job(sl->ctl, fds);
        e = errno;
        pthread_mutex_unlock(&S.mu);
        close(js[1]);
        if (rc == 0 && (send_all(js[0], req, len) < 0 || recv_first(js[0], &m) < 0)) {
            rc = -1;
            e = errno;
        }
        if (rc == 0 && m.kind == EXEC_MSG_NOTRUN) {
            close(js[0]);
            *run_errno = m.err;
            goto out;
        }
        if (rc == 0 && m.kind == EXEC_MSG_STARTED && m.pid > 0) {
            job->sock = js[0];
            job->pid = m.pid;
            goto out;
        }
        close(js[0]);
        rc = -1;
        if (!peer_gone(e)) {
            snprintf(err, errlen, "talking to the exec spawner: %s",
                     e ? strerror(e) : "unexpected answer");
            goto out;
        }
        snprintf(err, errlen, "the exec spawner died before starting the command (twice)");
        pthread_mutex_lock(&S.mu);
        if (sl->gen == gen)
            spawner_forget(sl);
        pthread_mutex_unlock(&S.mu);
    }
out:
    if (job->sock < 0)
        exec_spawner_release(job);
    if (cwd >= 0)
        close(cwd);
    free(req);
    return rc;
}

void exec_spawner_release(struct exec_job *job)
{
    if (job->sock >= 0)
        close(job->sock);
    job->sock = -1;
    if (job->spawner >= 0) {
        pthread_mutex_lock(&S.mu);
        if (S.sl[job->spawner].busy > 0)
            S.sl[job->spawner].busy--;
        pthread_mutex_unlock(&S.mu);
    }
    job->spawner = -1;
}

int exec_spawner_signal(int sock, int sig)
{
    int32_t s = sig;

    return send_all(sock, (const char *)&s, sizeof s);
}

int exec_spawner_read(int sock, struct exec_msg *m, size_t *have, bool block)
{
    for (;;) {
        ssize_t r = recv(sock, (char *)m + *have, sizeof *m - *have, block ? 0 : MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0)
            return -1;
        *have += (size_t)r;
        if (*have == sizeof *m) {
            *have = 0;
            return 1;
        }
    }
}
