/* spawn.c -- `pgq-bench spawn`: the machine's ceiling for starting a
 * command, against which the exec profile is judged.
 *
 * --concurrency threads (8, as the pool's workers) each posix_spawnp the
 * --exec command (default /bin/true, split at spaces as pool.ini would split
 * a command without quotes) and waitpid for it, until --jobs commands ran in
 * all; spawns_per_s is jobs over the wall time from the first spawn to the
 * last reap. Nothing else happens per command: no database, no pipes, no
 * process group, no supervisor. The one addition is stdout on /dev/null
 * (one file action), so that a command that prints cannot break the JSON
 * line; /bin/true prints nothing. No database is needed, and none is
 * touched (the line's settings are {}).
 *
 * An exec job costs at least this plus its claim and completion, so
 * exec jobs/s over spawns/s of the same run says how much of the ceiling
 * the pool reaches (issue 11: >= 70%). cpu_ms_per_spawn is the children's
 * user + system CPU (getrusage RUSAGE_CHILDREN) per command: the price of
 * the command's own start-up, which no design of pgq can lower. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_WORDS 64

extern char **environ;

struct spawner {
    char *const *argv;
    const posix_spawn_file_actions_t *fa;
    atomic_long *left;          /* commands still to start, shared */
    long done;
    int err;                    /* first posix_spawnp / waitpid error */
    int bad_status;             /* first non-zero wait status */
};

static void *spawn_main(void *arg)
{
    struct spawner *s = arg;

    while (atomic_fetch_sub(s->left, 1) > 0) {
        pid_t pid;
        int st, rc = posix_spawnp(&pid, s->argv[0], s->fa, NULL, s->argv, environ);
        if (rc != 0) {
            s->err = rc;
            break;
        }
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                s->err = errno;
                return NULL;
            }
        }
        if (st != 0 && !s->bad_status)
            s->bad_status = st;
        s->done++;
    }
    return NULL;
}

static int64_t children_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

int run_spawn(void)
{
    char words[512], *argv[MAX_WORDS + 1], msg[256];
    long nthreads = g_opts.concurrency, n = g_opts.jobs, done = 0;
    struct spawner *sp = calloc((size_t)nthreads, sizeof *sp);
    pthread_t *th = calloc((size_t)nthreads, sizeof *th);
    posix_spawn_file_actions_t fa;
    atomic_long left;
    int argc = 0, err = 0, bad = 0, rc = 1;
    long started = 0;

    if (!sp || !th) {
        fail_json("out of memory");
        goto out;
    }
    snprintf(words, sizeof words, "%s", g_opts.exec_cmd);
    for (char *save = NULL, *w = strtok_r(words, " \t", &save); w;
         w = strtok_r(NULL, " \t", &save)) {
        if (argc == MAX_WORDS) {
            fail_json("--exec: more than 64 words");
            goto out;
        }
        argv[argc++] = w;
    }
    argv[argc] = NULL;
    if (argc == 0) {
        fail_json("--exec: no command");
        goto out;
    }
    if (posix_spawn_file_actions_init(&fa) != 0 ||
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0) != 0) {
        fail_json("posix_spawn_file_actions: out of memory");
        goto out;
    }
    atomic_init(&left, n);

    int64_t cpu0 = children_cpu_us(), t0 = now_ns();
    for (long i = 0; i < nthreads; i++) {
        sp[i] = (struct spawner){ .argv = argv, .fa = &fa, .left = &left };
        if (pthread_create(&th[i], NULL, spawn_main, &sp[i]) != 0) {
            atomic_store(&left, 0);
            err = EAGAIN;
            break;
        }
        started++;
    }
    for (long i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    int64_t t1 = now_ns(), cpu1 = children_cpu_us();
    posix_spawn_file_actions_destroy(&fa);
    for (long i = 0; i < started; i++) {
        done += sp[i].done;
        if (!err)
            err = sp[i].err;
        if (!bad)
            bad = sp[i].bad_status;
    }
    if (err) {
        snprintf(msg, sizeof msg, "%s: %s", started < nthreads ? "pthread_create" : argv[0],
                 strerror(err));
        fail_json(msg);
        goto out;
    }
    double s = (double)(t1 - t0) / 1e9;
    bool ok = done == n && bad == 0;
    json_head(stdout, ok, true);
    fputs(",\"command\":", stdout);
    json_str(stdout, g_opts.exec_cmd);
    printf(",\"spawns\":%ld,\"elapsed_ms\":%.1f,\"spawns_per_s\":%.0f,\"cpu_ms_per_spawn\":%.3f",
           done, s * 1000, (double)done / s, done ? (double)(cpu1 - cpu0) / 1000 / (double)done : 0.0);
    if (bad)
        printf(",\"error\":\"a command ended with wait status %d\"", bad);
    fputs("}\n", stdout);
    rc = ok ? 0 : 1;
out:
    free(sp);
    free(th);
    return rc;
}
