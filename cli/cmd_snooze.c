/* pgq snooze DURATION: snooze for exec handlers.
 *
 * Reads the job id and lease token the pool puts in a handler's
 * environment (as `pgq once` does) and asks, fenced by the lease, that the
 * job go back to ready DURATION after this attempt ends, without counting
 * the attempt (pgq_snooze). The pool applies it when the handler exits 0;
 * a handler that exits non-zero fails its attempt as usual and the snooze
 * is dropped. So the natural handler is `pgq snooze 30s && exit 0`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

/* Exit statuses, documented in README.md and `pgq snooze --help`; 2 and 5
 * mean what they mean for `pgq once`. */
enum {
    SNOOZE_ASKED = 0,
    SNOOZE_REFUSED = 1,     /* the job snoozed its type's max_snoozes times already */
    SNOOZE_ERROR = 2,       /* usage, environment or database error */
    SNOOZE_LEASE_LOST = 5,  /* this job's lease is no longer ours */
};

static const char help[] =
    "usage: pgq snooze DURATION\n\n"
    "Put the current job back to ready DURATION (e.g. 30s, 5m) after this attempt,\n"
    "without counting the attempt, when the handler exits 0. For exec handlers:\n"
    "reads PGQ_JOB_ID, PGQ_LEASE_TOKEN and DATABASE_URL (or --db / -c) from the\n"
    "environment the pool gives the handler. A handler that exits non-zero fails\n"
    "as usual (the snooze is dropped); a second snooze in one attempt replaces the\n"
    "first.\n\n"
    "exit status:\n"
    "  0  asked: the job is snoozed when the handler exits 0\n"
    "  1  refused: the job has snoozed its type's max_snoozes times already\n"
    "  2  usage, environment or database error (nothing asked)\n"
    "  5  lease lost: this worker no longer holds the job\n";

int cmd_snooze(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    int npos, r = cli_args(c, argc, argv, help, pos, 1, &npos);
    if (r)
        return r > 0 ? EXIT_OK : SNOOZE_ERROR;
    if (npos != 1)
        return cli_usage_error(c, "needs DURATION (see pgq snooze --help)");
    int64_t ms, id;
    const char *token;
    if (cli_parse_duration(c, "DURATION", pos[0], &ms) < 0)
        return SNOOZE_ERROR;
    if (cli_handler_env(c, &id, &token) < 0 || cli_connect(c, false) < 0)
        return SNOOZE_ERROR;
    char err[1024];
    switch (pgq_snooze(c->conn, id, token, ms, err, sizeof err)) {
    case PGQ_SNOOZE_ASKED:
        fprintf(stderr, "pgq snooze: job %" PRId64 " snoozes for %s when this handler exits 0\n",
                id, pos[0]);
        return SNOOZE_ASKED;
    case PGQ_SNOOZE_REFUSED:
        cli_error(c, "%s", err);
        return SNOOZE_REFUSED;
    case PGQ_SNOOZE_LEASE_LOST:
        cli_error(c, "%s", err);
        return SNOOZE_LEASE_LOST;
    case PGQ_SNOOZE_ERROR:
        break;
    }
    cli_error(c, "%s", err);
    return SNOOZE_ERROR;
}
