/* pgq once KEY -- CMD ARGS...: run_once for exec handlers.
 *
 * Reads the job id and lease token the pool puts in a handler's
 * environment, records KEY as started (fenced by the lease), runs CMD, and
 * records done, or removes the record when CMD failed so that a retry may
 * try again. If this process dies while CMD runs, the record stays
 * "started" and later attempts are told the effect is in doubt. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

/* Exit statuses; documented in README.md and `pgq once --help`. The effect
 * being done is success for the caller whether it ran now or earlier, so
 * both are 0 and `pgq once KEY -- CMD || exit 1` is a correct handler; the
 * outcome word on stderr tells them apart. 3 (skipped, before 0.2) is not
 * reused, so that a script written for it never misreads another case. */
enum {
    ONCE_DONE = 0,        /* CMD ran now and exited 0, or an earlier attempt did */
    ONCE_CMD_FAILED = 1,  /* CMD ran and failed; record removed, a retry may run it */
    ONCE_ERROR = 2,       /* usage, environment or database error; CMD not run */
    ONCE_IN_DOUBT = 4,    /* an earlier attempt died while CMD ran; CMD not run */
    ONCE_LEASE_LOST = 5,  /* this job's lease is no longer ours; CMD not run */
};

static const char help[] =
    "usage: pgq once KEY -- CMD [ARGS...]\n\n"
    "Run CMD at most once for the current job and KEY, across retries, crashes and\n"
    "workers. For exec handlers: reads PGQ_JOB_ID, PGQ_LEASE_TOKEN and DATABASE_URL\n"
    "(or --db / -c) from the environment the pool gives the handler.\n\n"
    "exit status (the outcome is also named on stderr):\n"
    "  0  done: CMD ran now and succeeded (\"ran\"), or an earlier attempt\n"
    "     already ran it successfully (\"skipped\"); so `... || exit 1` is right\n"
    "  1  CMD ran and failed (record removed: a retry may run it again)\n"
    "  2  usage, environment or database error (CMD not run)\n"
    "  4  in doubt: an earlier attempt died while CMD ran; not run again\n"
    "  5  lease lost: this worker no longer holds the job (CMD not run)\n";

/* Run argv, return its wait status or -1. */
static int run_child(char **argv)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], argv);
        fprintf(stderr, "pgq once: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return status;
}

int cmd_once(struct cli *c, int argc, char **argv)
{
    char err[1024];
    const char *key = NULL;
    int i = 1;

    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        int r = cli_common_opt(c, argc, argv, &i);
        if (r < 0)
            return ONCE_ERROR;
        if (r)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(help, stdout);
            return EXIT_OK;
        }
        if (key)
            return cli_usage_error(c, "unexpected argument \"%s\" (put the command after --)",
                                   argv[i]);
        key = argv[i];
    }
    if (!key || !*key)
        return cli_usage_error(c, "needs KEY (see pgq once --help)");
    if (i >= argc)
        return cli_usage_error(c, "needs a command after -- (see pgq once --help)");

    const char *token;
    int64_t id;
    if (cli_handler_env(c, &id, &token) < 0)
        return ONCE_ERROR;
    if (cli_connect(c, false) < 0)
        return ONCE_ERROR;

    pgq_once_result r = pgq_once_begin(c->conn, id, token, key, err, sizeof err);
    switch (r) {
    case PGQ_ONCE_RAN:
        break;
    case PGQ_ONCE_SKIPPED:
        fprintf(stderr, "pgq once: %s: skipped, already done for job %" PRId64 "\n", key, id);
        return ONCE_DONE;
    case PGQ_ONCE_IN_DOUBT:
        fprintf(stderr, "pgq once: %s: in doubt for job %" PRId64 ": an earlier attempt died "
                "while it ran; not running it again\n", key, id);
        return ONCE_IN_DOUBT;
    case PGQ_ONCE_LEASE_LOST:
        cli_error(c, "%s", err);
        return ONCE_LEASE_LOST;
    default:
        cli_error(c, "%s", err);
        return ONCE_ERROR;
    }

    int status = run_child(argv + i);
    bool ok = status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    int rc = pgq_once_end(c->conn, id, token, key, ok, err, sizeof err);
    if (rc < 0 && !pgq_connected(c->conn) && pgq_reconnect(c->conn, err, sizeof err) == 0)
        rc = pgq_once_end(c->conn, id, token, key, ok, err, sizeof err);
    if (rc < 0) {
        cli_error(c, "%s: %s; it stays recorded as started and will count as in doubt", key,
                  err);
        return ok ? ONCE_IN_DOUBT : ONCE_CMD_FAILED;
    }
    if (ok) {
        fprintf(stderr, "pgq once: %s: ran\n", key);
        return ONCE_DONE;
    }
    if (status < 0)
        cli_error(c, "%s: could not run %s: %s", key, argv[i], strerror(errno));
    else if (WIFSIGNALED(status))
        cli_error(c, "%s: %s killed by signal %d; record removed", key, argv[i],
                  WTERMSIG(status));
    else
        cli_error(c, "%s: %s exited with status %d; record removed", key, argv[i],
                  WEXITSTATUS(status));
    return ONCE_CMD_FAILED;
}
