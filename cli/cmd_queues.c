/* pgq pause, pgq resume: stopping a queue during an incident and starting
 * it again. A paused queue is claimed by no pool anywhere (the claim looks
 * at pgq.queues); jobs already running finish, adds are still accepted.
 * Each change is recorded in pgq.actions. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static int pause_or_resume(struct cli *c, int argc, char **argv, bool pause)
{
    static const char help_pause[] =
        "usage: pgq pause QUEUE... [-c FILE] [--db URL]\n\n"
        "Pause queues: no pool claims their jobs until `pgq resume`; jobs already\n"
        "running finish, adds are still accepted. Prints each queue paused now; one\n"
        "that was paused already is reported (exit 0). Recorded in pgq.actions.\n";
    static const char help_resume[] =
        "usage: pgq resume QUEUE... [-c FILE] [--db URL]\n\n"
        "Resume paused queues and wake the pools. Prints each queue resumed; one that\n"
        "was not paused is reported (exit 0). Recorded in pgq.actions.\n";
    char err[1024];
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos)
        return cli_error(c, "out of memory");
    int npos, r = cli_args(c, argc, argv, pause ? help_pause : help_resume, pos, argc, &npos);
    if (r) {
        free(pos);
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    }
    if (npos == 0) {
        free(pos);
        return cli_usage_error(c, "give the queues to %s", pause ? "pause" : "resume");
    }
    for (int i = 0; i < npos; i++) {
        char why[512];
        if (pgq_queue_name_check(pos[i], why, sizeof why) < 0) {
            int rc = cli_usage_error(c, "queue \"%s\": %s", pos[i], why);
            free(pos);
            return rc;
        }
    }
    bool *changed = calloc((size_t)npos, sizeof *changed);
    if (!changed || cli_connect(c, false) < 0) {
        free(pos);
        free(changed);
        return changed ? EXIT_FAIL : cli_error(c, "out of memory");
    }
    int rc = EXIT_OK;
    if (pgq_pause(c->conn, pos, (size_t)npos, pause, "pgq cli", changed, err, sizeof err) < 0) {
        rc = cli_error(c, "%s", err);
    } else {
        for (int i = 0; i < npos; i++) {
            if (changed[i])
                printf("%s\n", pos[i]);
            else
                fprintf(stderr, "pgq %s: %s: %s\n", c->cmd, pos[i],
                        pause ? "already paused" : "not paused");
        }
    }
    free(changed);
    free(pos);
    return rc;
}

int cmd_pause(struct cli *c, int argc, char **argv)
{
    return pause_or_resume(c, argc, argv, true);
}

int cmd_resume(struct cli *c, int argc, char **argv)
{
    return pause_or_resume(c, argc, argv, false);
}
