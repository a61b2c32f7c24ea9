/* exec_int.h -- what the parts of the exec handler share, inside pool/:
 * the spawners' protocol (exec_spawner.c, exec_client.c), the environment
 * a command gets (exec_env.c), the stderr tail that becomes the error
 * (exec_tail.c) and the stdout that becomes the result (exec_out.c).
 * exec.c's exec_run drives them; nothing outside pool/exec*.c includes this. */
#ifndef PGQ_EXEC_INT_H
#define PGQ_EXEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec.h"

/* ---- the spawners (exec_spawner.c) and the pool's side (exec_client.c) ------- */

/* A job on a spawner's control socket: one SOCK_SEQPACKET message, this
 * magic word as its data and EXEC_NFDS descriptors (SCM_RIGHTS): the job's
 * socket, the command's stdin (read end), its stderr (write end), the
 * pool's working directory (O_PATH) and the command's stdout (write end).
 * Then on the job's socket: this header and len bytes of path, argv and
 * envp as NUL-terminated strings. */
#define EXEC_REQ_MAGIC 0x70677132u      /* "pgq2" (version 1 had no stdout) */
#define EXEC_REQ_MAX (256u << 20)       /* bound on one request (exec's own is far lower) */
#define EXEC_NFDS 5

struct exec_req_hdr {
    uint32_t magic, len, argc, envc;
};

/* What the spawner says on a job's socket. The first message is STARTED
 * or NOTRUN; after STARTED comes exactly one STATUS (unless the spawner
 * dies: then EOF). Sent whole on a stream socket: the reader collects
 * sizeof(struct exec_msg) bytes. */
enum { EXEC_MSG_STARTED = 1, EXEC_MSG_NOTRUN, EXEC_MSG_STATUS };

struct exec_msg {
    int32_t kind;
    int32_t err;            /* NOTRUN: errno of vfork or execve */
    int32_t status;         /* STATUS: the command's wait status */
    int32_t pid;            /* STARTED: the command, leader of its own group */
    int64_t cpu_ms;         /* STATUS: user + sys of the command and its reaped children */
    int64_t max_rss_kb;     /* STATUS: its peak RSS */
};

/* A command handed to a spawner. */
struct exec_job {
    int sock;               /* the job's channel (blocking, close-on-exec); -1: none */
    pid_t pid;              /* the command, leader of its own group; -1: not started */
    int spawner;            /* which spawner (counts its jobs in flight); -1: none */
};

/* The spawner process: ctl is its end of the control socket, pool the
 * pid it serves. Runs in the child of a fork and never returns. */
_Noreturn void exec_spawner_main(int ctl, pid_t pool);

/* Have a spawner run path (argv, envp) with in_r as stdin, out_w as
 * stdout and err_w as stderr, in a process group of its own. Blocks until
 * the command started or could not be: returns 0 with either job->pid
 * (> 0) and job->sock, or *run_errno (nothing runs; job is released
 * already). -1 when pgq itself failed, with the reason in err (job
 * released). in_r, out_w and err_w stay the caller's to close (the
 * spawner has its own copies). Starts spawners on first use and again if
 * one died. Thread-safe. */
int exec_spawner_run(const char *path, const char *const *argv, char *const *envp, int in_r,
                     int out_w, int err_w, struct exec_job *job, int *run_errno, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

/* The job is over (its STATUS read, or its spawner gone): close its
 * channel and count it off its spawner. Idempotent. */
void exec_spawner_release(struct exec_job *job);

/* Ask the spawner to send sig to the job's process group (the timeout's
 * SIGTERM, its SIGKILL, a cancellation). -1 when the spawner is gone. */
int exec_spawner_signal(int sock, int sig) __attribute__((warn_unused_result));

/* Read what is there of the next message into *m (*have bytes so far;
 * start at 0). 1: a whole message (and *have is 0 again); 0: not yet; -1:
 * EOF or an error, i.e. the spawner is gone. Blocks only with block, and
 * then until a whole message or the end. */
int exec_spawner_read(int sock, struct exec_msg *m, size_t *have, bool block)
    __attribute__((warn_unused_result));

/* ---- the environment (exec_env.c) --------------------------------------------- */

/* environ minus the names that extra (NULL-terminated "NAME=value", may be
 * NULL) sets, then extra. The strings are borrowed; the caller frees the
 * array. NULL when out of memory. */
char **exec_env_build(const char *const *extra);

/* ---- the stderr tail and the error text (exec_tail.c) -------------------------- */

#define EXEC_TAIL_CAP 4096      /* raw stderr bytes kept: the last ones */

/* The last EXEC_TAIL_CAP bytes of a stream, and how much there was. */
struct exec_tail {
    char buf[EXEC_TAIL_CAP];
    size_t len;
    unsigned long long total;
};

/* Read what fd has now into t, at most max_reads chunks of 4 KB (a writer
 * that escaped the group could otherwise keep us here). False once the
 * stream is over (EOF or an error), true while it may have more. */
/* Read what is there from a non-blocking fd, in chunks of at most chunk
 * bytes (16 KiB at most), each handed to add; at most max_reads chunks (a
 * writer that escaped the group could otherwise keep us here). False once
 * the stream is over (EOF or an error), true while it may bring more. The
 * stderr tail and the stdout result both read through it (exec_tail.c). */
bool exec_read_chunks(int fd, size_t chunk, int max_reads,
                      void (*add)(void *arg, const char *p, size_t n), void *arg);

bool exec_tail_read(int fd, struct exec_tail *t, int max_reads);

/* res->error from the outcome in *res: "" when ok, else "exit status 3:
 * <tail>", "killed by signal 9 (SIGKILL) after timeout (60s): <tail>",
 * "cannot run \"x\": <strerror(run_errno)>" (res->started false), ... */
void exec_error_text(exec_result *res, const exec_request *req, const struct exec_tail *t,
                     int run_errno);

/* ---- stdout, kept for the result (exec_out.c) ----------------------------------- */

/* The first max (+ EXEC_OUT_LOOKAHEAD) bytes of a stream, and how much
 * there was. buf: malloc'd as it grows, NUL-terminated, NULL until the
 * first byte kept; max 0 keeps nothing. */
struct exec_out {
    char *buf;
    size_t len, cap, max;
    unsigned long long total;
    bool oom;                   /* growing buf failed: less was kept than could be */
};

/* Read what fd has now into o, at most max_reads chunks of 16 KB (same
 * contract as exec_tail_read). */
bool exec_out_read(int fd, struct exec_out *o, int max_reads);

#endif /* PGQ_EXEC_INT_H */
