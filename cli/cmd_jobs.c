/* pgq add, show, stats, requeue, cancel: producing and operating jobs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The value of option argv[*i] ("--opt V" or "--opt=V"), or NULL when it
 * is not `name`; a missing value is reported through *bad. */
static const char *opt_value(const struct cli *c, int argc, char **argv, int *i,
                             const char *name, bool *bad)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        cli_usage_error(c, "%s needs a value", name);
        *bad = true;
        return NULL;
    }
    return argv[++*i];
}

int cmd_add(struct cli *c, int argc, char **argv)
{
    char err[1024];
    const char *pos[2] = { 0 };
    int npos = 0;
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    bool have_delay = false;

    for (int i = 1; i < argc; i++) {
        bool bad = false;
        const char *v;
        long num;
        int r = cli_common_opt(c, argc, argv, &i);
        if (r < 0)
            return EXIT_USAGE;
        if (r)
            continue;
        if (cli_is_help(argv[i])) {
            printf("usage: pgq add TYPE JSON [--queue Q] [--priority N] [--delay D | --run-at TS]\n"
                   "               [--max-retries N] [--idempotency-key K] [-c FILE] [--db URL]\n\n"
                   "Enqueue one job and print its id once it is committed. With an idempotency\n"
                   "key that already exists, nothing is added and the existing job's id is\n"
                   "printed followed by the word \"duplicate\". The payload must be valid JSON\n"
                   "and satisfy the job type's contract. D is a duration (500ms, 30s, 5m, 1h,\n"
                   "1d); TS is a timestamp PostgreSQL understands. Lower priority runs first.\n");
            return EXIT_OK;
        }
        if ((v = opt_value(c, argc, argv, &i, "--queue", &bad))) {
            if (pgq_queue_name_check(v, err, sizeof err) < 0)
                return cli_usage_error(c, "--queue: %s", err);
            o.queue = v;
        } else if ((v = opt_value(c, argc, argv, &i, "--priority", &bad))) {
            if (cli_parse_int(c, "--priority", v, -1000000, 1000000, &num) < 0)
                return EXIT_USAGE;
            o.priority = (int)num;
        } else if ((v = opt_value(c, argc, argv, &i, "--delay", &bad))) {
            if (cli_parse_duration(c, "--delay", v, &o.delay_ms) < 0)
                return EXIT_USAGE;
            have_delay = true;
        } else if ((v = opt_value(c, argc, argv, &i, "--run-at", &bad))) {
            o.run_at = v;
        } else if ((v = opt_value(c, argc, argv, &i, "--max-retries", &bad))) {
            if (cli_parse_int(c, "--max-retries", v, 0, 1000000, &num) < 0)
                return EXIT_USAGE;
            o.max_retries = (int)num;
        } else if ((v = opt_value(c, argc, argv, &i, "--idempotency-key", &bad))) {
            if (!*v)
                return cli_usage_error(c, "--idempotency-key: empty key");
            o.idempotency_key = v;
        } else if (bad) {
            return EXIT_USAGE;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            return cli_usage_error(c, "unknown option \"%s\"", argv[i]);
        } else if (npos < 2) {
            pos[npos++] = argv[i];
        } else {
            return cli_usage_error(c, "unexpected argument \"%s\"", argv[i]);
        }
    }
    if (npos < 2)
        return cli_usage_error(c, "needs TYPE and JSON (see pgq add --help)");
    if (have_delay && o.run_at)
        return cli_usage_error(c, "give --delay or --run-at, not both");
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    pgq_add_result res;
    if (pgq_add(c->conn, pos[0], pos[1], &o, &res, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    printf("%" PRId64 "%s\n", res.id, res.duplicate ? " duplicate" : "");
    return EXIT_OK;
}

/* Parse every non-option argument as a job id. */
static int collect_ids(struct cli *c, int argc, char **argv, int64_t **ids, size_t *n,
                       bool *dead_flag, const char **queue, const char **type, bool *cancelled,
                       const char *help)
{
    *ids = calloc((size_t)argc + 1, sizeof **ids);
    *n = 0;
    if (!*ids)
        return cli_error(c, "out of memory");
    for (int i = 1; i < argc; i++) {
        bool bad = false;
        const char *v;
        int r = cli_common_opt(c, argc, argv, &i);
        if (r < 0)
            return EXIT_USAGE;
        if (r)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(help, stdout);
            return -1;
        }
        if (dead_flag && strcmp(argv[i], "--dead") == 0) {
            *dead_flag = true;
        } else if (cancelled && strcmp(argv[i], "--cancelled") == 0) {
            *cancelled = true;
        } else if (queue && (v = opt_value(c, argc, argv, &i, "--queue", &bad))) {
            *queue = v;
        } else if (type && (v = opt_value(c, argc, argv, &i, "--type", &bad))) {
            *type = v;
        } else if (bad) {
            return EXIT_USAGE;
        } else if (argv[i][0] == '-') {
            return cli_usage_error(c, "unknown option \"%s\"", argv[i]);
        } else {
            int64_t id;
            if (cli_parse_id(c, argv[i], &id) < 0)
                return EXIT_USAGE;
            bool seen = false;   /* each id once, however often it is given */
            for (size_t k = 0; k < *n; k++)
                seen |= (*ids)[k] == id;
            if (!seen)
                (*ids)[(*n)++] = id;
        }
    }
    return EXIT_OK;
}

/* Shared by requeue and cancel: print the ids that moved, report the rest. */
static int act_on_ids(struct cli *c, const int64_t *ids, size_t n, const char *not_moved,
                      int (*act)(pgq_conn *, const int64_t *, size_t, const char *, bool *,
                                 int64_t *, char *, size_t))
{
    char err[1024];
    int64_t count;
    bool *done = calloc(n + 1, sizeof *done);
    if (!done)
        return cli_error(c, "out of memory");
    if (act(c->conn, ids, n, "pgq cli", done, &count, err, sizeof err) < 0) {
        free(done);
        return cli_error(c, "%s", err);
    }
    int rc = EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            printf("%" PRId64 "\n", ids[i]);
        else
            rc = cli_error(c, "job %" PRId64 ": %s", ids[i], not_moved);
    }
    free(done);
    return rc;
}

int cmd_requeue(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq requeue ID... [-c FILE] [--db URL]\n"
        "       pgq requeue --dead [--cancelled] [--queue Q] [--type T]\n\n"
        "Move dead (or cancelled) jobs back to ready with a fresh set of retries; their\n"
        "history is kept and the action is recorded. With ids, prints each requeued id;\n"
        "an id that is not dead or cancelled is reported and the exit is 1. With --dead\n"
        "(or --cancelled), requeues every such job matching --queue/--type and prints\n"
        "\"requeued N\". Two operators requeueing at once move each job once.\n";
    int64_t *ids;
    size_t n;
    bool dead = false, cancelled = false;
    const char *queue = NULL, *type = NULL;
    int rc = collect_ids(c, argc, argv, &ids, &n, &dead, &queue, &type, &cancelled, help);
    if (rc != EXIT_OK) {
        free(ids);
        return rc < 0 ? EXIT_OK : rc;
    }
    if ((dead || cancelled) == (n > 0)) {
        free(ids);
        return cli_usage_error(c, "give job ids, or --dead/--cancelled (see --help)");
    }
    if (!dead && !cancelled && (queue || type)) {
        free(ids);
        return cli_usage_error(c, "--queue and --type go with --dead or --cancelled");
    }
    if (cli_connect(c, false) < 0) {
        free(ids);
        return EXIT_FAIL;
    }
    if (n) {
        rc = act_on_ids(c, ids, n, "not requeued (no such job, or not dead or cancelled)",
                        pgq_requeue);
        free(ids);
        return rc;
    }
    free(ids);
    int64_t total = 0;
    const char *states[] = { dead ? "dead" : NULL, cancelled ? "cancelled" : NULL };
    for (int k = 0; k < 2; k++) {
        char err[1024];
        int64_t count;
        if (!states[k])
            continue;
        if (pgq_requeue_matching(c->conn, states[k], queue, type, "pgq cli", &count, err,
                                 sizeof err) < 0)
            return cli_error(c, "%s", err);
        total += count;
    }
    printf("requeued %" PRId64 "\n", total);
    return EXIT_OK;
}

int cmd_cancel(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq cancel ID... [-c FILE] [--db URL]\n\n"
        "Cancel ready or scheduled jobs; prints each cancelled id. A job that is running,\n"
        "finished or missing is reported and the exit is 1. `pgq requeue` undoes it.\n";
    int64_t *ids;
    size_t n;
    int rc = collect_ids(c, argc, argv, &ids, &n, NULL, NULL, NULL, NULL, help);
    if (rc != EXIT_OK || n == 0) {
        free(ids);
        if (rc < 0)
            return EXIT_OK;
        return rc != EXIT_OK ? rc : cli_usage_error(c, "give job ids (see --help)");
    }
    if (cli_connect(c, false) < 0) {
        free(ids);
        return EXIT_FAIL;
    }
    rc = act_on_ids(c, ids, n, "not cancelled (no such job, or not ready)", pgq_cancel);
    free(ids);
    return rc;
}

int cmd_stats(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq stats [-c FILE] [--db URL]\n\n"
        "One line per queue after a header: ready (due now), scheduled (future,\n"
        "never tried), retrying (future, after a failure), running, dead,\n"
        "cancelled, done, and done in the last hour.\n";
    char err[1024];
    int npos, r = cli_args(c, argc, argv, help, NULL, 0, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    pgq_queue_stats *s;
    size_t n;
    if (pgq_stats(c->conn, &s, &n, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    printf("%-20s %9s %9s %9s %9s %9s %9s %9s %9s\n", "queue", "ready", "scheduled", "retrying",
           "running", "dead", "cancelled", "done", "done_1h");
    for (size_t i = 0; i < n; i++)
        printf("%-20s %9" PRId64 " %9" PRId64 " %9" PRId64 " %9" PRId64 " %9" PRId64
               " %9" PRId64 " %9" PRId64 " %9" PRId64 "\n", s[i].queue, s[i].ready,
               s[i].scheduled, s[i].retrying, s[i].running, s[i].dead, s[i].cancelled,
               s[i].done, s[i].done_last_hour);
    free(s);
    return EXIT_OK;
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

int cmd_show(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq show ID [-c FILE] [--db URL]\n\n"
        "Print a job: its fields as \"name: value\" lines, the payload, every\n"
        "attempt (outcome, worker, duration, exit status, error) and its\n"
        "run_once effects, in-doubt ones marked IN DOUBT.\n";
    char err[1024];
    int64_t id = 0;
    const char *pos[1];
    int npos, r = cli_args(c, argc, argv, help, pos, 1, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (npos && cli_parse_id(c, pos[0], &id) < 0)
        return EXIT_USAGE;
    if (!id)
        return cli_usage_error(c, "needs a job id");
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    pgq_job_detail *d;
    if (pgq_job_describe(c->conn, id, &d, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    if (!d)
        return cli_error(c, "job %" PRId64 ": no such job", id);
    printf("id: %" PRId64 "\nqueue: %s\ntype: %s\nstate: %s\npriority: %d\n"
           "attempts: %d (max_retries %d)\nrun_at: %s\nidempotency_key: %s\n"
           "lease_owner: %s\nlease_expires_at: %s\nlast_error: %s\ncreated_at: %s\n"
           "started_at: %s\nfinished_at: %s\npayload:\n%s\n",
           d->id, d->queue, d->type, d->state, d->priority, d->attempts, d->max_retries,
           d->run_at, or_dash(d->idempotency_key), or_dash(d->lease_owner),
           or_dash(d->lease_expires_at), or_dash(d->last_error), d->created_at,
           or_dash(d->started_at), or_dash(d->finished_at), d->payload_pretty);
    printf("history: %zu\n", d->nattempts);
    for (size_t i = 0; i < d->nattempts; i++) {
        const pgq_attempt_row *a = &d->attempts_v[i];
        printf("  attempt %d %s at %s by %s, %.1f ms", a->attempt, a->outcome, a->finished_at,
               or_dash(a->worker), a->duration_ms);
        if (a->exit_code >= 0)
            printf(", exit %d", a->exit_code);
        if (a->term_signal > 0)
            printf(", signal %d", a->term_signal);
        if (a->cpu_ms >= 0)
            printf(", cpu %" PRId64 " ms", a->cpu_ms);
        if (a->max_rss_kb >= 0)
            printf(", rss %" PRId64 " kB", a->max_rss_kb);
        printf("%s%s\n", a->error ? ": " : "", a->error ? a->error : "");
    }
    printf("effects: %zu\n", d->neffects);
    for (size_t i = 0; i < d->neffects; i++) {
        const pgq_effect_row *e = &d->effects[i];
        printf("  %s %s (attempt %d, started %s%s%s)\n", e->key,
               e->in_doubt ? "IN DOUBT" : e->state, e->attempt, e->started_at,
               e->finished_at ? ", finished " : "", e->finished_at ? e->finished_at : "");
    }
    pgq_job_detail_free(d);
    return EXIT_OK;
}
