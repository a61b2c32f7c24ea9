/* exec.h -- run one job's `exec` handler: a command, payload on stdin, its
 * own process group, a timeout and a cancel flag, stderr tail as the error.
 * exec.c runs it; the commands are started by the pool's spawner processes
 * (exec_spawner.c). */
#ifndef PGQ_EXEC_H
#define PGQ_EXEC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of stdout kept past out_max, so that the cut can tell a character
 * that goes on past it (cut there) from a byte that starts none (not
 * text). */
#define EXEC_OUT_LOOKAHEAD 4

/* What to run. Everything is borrowed for the duration of exec_run. */
typedef struct exec_request {
    const char *const *argv;        /* NULL-terminated; argv[0] is found by
                                     * exec_resolve */
    const char *const *env_extra;   /* NULL-terminated "NAME=value" (distinct names),
                                     * added to the pool's environ, overriding it;
                                     * may be NULL */
    const char *payload;            /* written to the command's stdin, then EOF */
    size_t payload_len;
    int64_t timeout_ms;             /* <= 0: no timeout */
    int64_t grace_ms;               /* SIGTERM -> SIGKILL of the group; <= 0: at once */
    const atomic_bool *cancel;      /* may be NULL; polled at least every 100 ms */
    size_t out_max;                 /* stdout bytes to keep in res->out (see there); 0:
                                     * none (stdout is still read, and dropped) */
} exec_request;

/* How one attempt went. The attempt succeeded iff ok. */
typedef struct exec_result {
    bool ok;                        /* exited 0, neither timed out nor cancelled */
    bool started;                   /* false: the command could not be run at all */
    int exit_code;                  /* -1 unless it exited */
    int term_signal;                /* 0 unless killed by a signal */
    bool timed_out, cancelled;      /* we sent SIGTERM (and maybe SIGKILL) because of it */
    int64_t cpu_ms;                 /* user+sys of the command and its reaped children;
                                     * -1 when unknown (it did not start) */
    int64_t max_rss_kb;             /* peak RSS of the command; -1 when unknown */
    int64_t duration_ms;            /* wall time of exec_run */
    char *out;                      /* the first out_max bytes of stdout, and a few more
                                     * (EXEC_OUT_LOOKAHEAD), NUL-terminated (stdout may
                                     * hold NULs: out_len counts); malloc'd, the caller
                                     * frees it, whatever exec_run returned; NULL when
                                     * nothing was kept */
    size_t out_len;
    unsigned long long out_total;   /* bytes the command wrote on stdout */
    char error[2048];               /* "" iff ok, else one message, e.g.
                                     *   exit status 3: <stderr tail>
                                     *   killed by signal 9 (SIGKILL) after timeout (60s): <tail>
                                     *   killed by signal 15 (SIGTERM) after cancellation
                                     *   cannot run "x": No such file or directory */
} exec_result;

/* Find the file a command name means, the one way for exec_run and for
 * `pgq-pool --check`: a name with a '/' is that file (relative to the
 * current directory); otherwise each directory of $PATH in turn, an empty
 * entry meaning the current directory, as for execvp; with PATH unset or
 * empty, the system's default, confstr(_CS_PATH) ("/bin:/usr/bin" on
 * glibc). It must be a regular file we may execute. Returns -1 only when
 * out of memory; otherwise 0 with either *path (malloc'd, the caller frees
 * it) or *err (ENOENT, EACCES, ...). Thread-safe while nobody changes the
 * environment. */
int exec_resolve(const char *name, char **path, int *err) __attribute__((warn_unused_result));

/* Run one command to completion (or timeout / cancellation) and fill *res
 * (res->out is the caller's to free).
 * Returns 0 when the attempt has an outcome (see res->ok; a command that
 * cannot be run is a failed attempt, not an internal error), -1 when pgq
 * itself failed (pipe, the spawner, out of memory; res->error says why).
 * Every process of the command's group is dead when it returns 0; after -1
 * it is dead or being killed.
 * Thread-safe: many threads may run commands at once. Calls fork spawners
 * as needed (up to twice the CPUs), child processes of the caller's that
 * live until the process exits (restarted if killed); nobody may reap
 * them with wait(-1), or modify the environment during a call. */
int exec_run(const exec_request *req, exec_result *res) __attribute__((warn_unused_result));

#endif /* PGQ_EXEC_H */
