/* pgq add, show, stats, requeue, cancel: producing and operating jobs. */
#include <errno.h>
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

/* --payload-file FILE ("-": stdin): for payloads too big for an argument
 * (the kernel caps one at 128 KiB). The whole file; a NUL byte in it is
 * refused by offset, since the JSON would silently end there. */
static char *read_payload(const struct cli *c, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    const char *name = f == stdin ? "stdin" : path;
    if (!f) {
        cli_error(c, "--payload-file %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t len = 0, cap = 65536;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    bool failed = ferror(f);
    if (f != stdin)
        fclose(f);
    if (!buf) {
        cli_error(c, "--payload-file %s: out of memory", name);
        return NULL;
    }
    if (failed) {
        cli_error(c, "--payload-file %s: read error", name);
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    size_t nul = strlen(buf);
    if (nul != len) {
        cli_error(c, "--payload-file %s: a NUL byte at offset %zu (a payload is JSON text)", name,
                  nul);
        free(buf);
        return NULL;
    }
    return buf;
}

/* pgq add, with the --after list in *after (the caller frees it). */
static int add_cmd(struct cli *c, int argc, char **argv, int64_t **after, size_t *nafter)
{
    char err[1024];
    const char *pos[2] = { 0 };
    int npos = 0;
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    bool have_delay = false;
    const char *payload_file = NULL;

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
                   "               [--max-retries N] [--idempotency-key K [--unique-for D]\n"
                   "               [--replace]] [--after ID[,ID...]] [-c FILE] [--db URL]\n"
                   "       pgq add TYPE --payload-file FILE [the same options]  (- for stdin)\n"
                   "       pgq add - [-c FILE] [--db URL]   (JSON lines on stdin)\n\n"
                   "Enqueue one job and print its id once it is committed. With an idempotency\n"
                   "key that already exists, nothing is added and the existing job's id is\n"
                   "printed followed by the word \"duplicate\". The payload must be valid JSON\n"
                   "and satisfy the job type's contract. D is a duration (500ms, 30s, 5m, 1h,\n"
                   "1d); TS is a timestamp PostgreSQL understands. Lower priority runs first.\n"
                   "--unique-for D: the key dedups only for D after its job was added (done or\n"
                   "not); after that a new job is made. --replace: a job holding the key that is\n"
                   "still waiting (never started) takes this payload and run_at instead, and its\n"
                   "id is printed followed by \"replaced\" (debounce). --payload-file FILE reads\n"
                   "the payload from FILE (- for stdin), for payloads too big for an argument.\n"
                   "--after ID[,ID...] (may be repeated): the job waits (state waiting, never\n"
                   "claimed) until every job named is done; when one of them ends dead or\n"
                   "cancelled, this job is cancelled too. A job done already counts as done;\n"
                   "an unknown, dead or cancelled one is refused.\n\n"
                   "pgq add - reads one job a line: {\"type\": T, \"payload\": {...}, \"queue\": Q,\n"
                   "\"priority\": N, \"delay\": \"30s\", \"run_at\": TS, \"max_retries\": N,\n"
                   "\"idempotency_key\": K, \"unique_for\": D, \"replace\": true,\n"
                   "\"after\": [ID, ...]} (only type is required), enqueues them 500 to a\n"
                   "transaction and prints one id a line, in order. A bad line is named and\n"
                   "ends the run (exit 1): the batches before it stay enqueued, its own not.\n");
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
        } else if ((v = opt_value(c, argc, argv, &i, "--unique-for", &bad))) {
            if (cli_parse_duration(c, "--unique-for", v, &o.unique_for_ms) < 0)
                return EXIT_USAGE;
            if (o.unique_for_ms <= 0)
                return cli_usage_error(c, "--unique-for: must be longer than 0");
        } else if (strcmp(argv[i], "--replace") == 0) {
            o.replace = true;
        } else if ((v = opt_value(c, argc, argv, &i, "--after", &bad))) {
            if (cli_parse_id_list(v, after, nafter, err, sizeof err) < 0)
                return cli_usage_error(c, "--after: %s", err);
        } else if ((v = opt_value(c, argc, argv, &i, "--payload-file", &bad))) {
            payload_file = v;
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
    if (npos == 1 && strcmp(pos[0], "-") == 0) {
        if (have_delay || o.run_at || o.queue || o.priority != PGQ_DEFAULT ||
            o.max_retries != PGQ_DEFAULT || o.idempotency_key || o.unique_for_ms || o.replace ||
            *nafter)
            return cli_usage_error(c, "pgq add - takes its options from each line, not the "
                                   "command line");
        return cli_add_lines(c);
    }
    if (payload_file && npos == 2)
        return cli_usage_error(c, "give the payload as JSON or --payload-file, not both");
    if (npos < (payload_file ? 1 : 2))
        return cli_usage_error(c, "needs TYPE and JSON (see pgq add --help)");
    if (have_delay && o.run_at)
        return cli_usage_error(c, "give --delay or --run-at, not both");
    if ((o.unique_for_ms || o.replace) && !o.idempotency_key)
        return cli_usage_error(c, "%s needs --idempotency-key",
                               o.replace ? "--replace" : "--unique-for");
    if (o.replace && *nafter)
        return cli_usage_error(c, "give --replace or --after, not both");
    o.after = *after;
    o.n_after = *nafter;
    char *payload = NULL;
    if (payload_file && !(payload = read_payload(c, payload_file)))
        return EXIT_FAIL;
    if (cli_connect(c, false) < 0) {
        free(payload);
        return EXIT_FAIL;
    }
    pgq_add_result res;
    int rc = pgq_add(c->conn, pos[0], payload ? payload : pos[1], &o, &res, err, sizeof err);
    free(payload);
    if (rc < 0)
        return cli_error(c, "%s", err);
    printf("%" PRId64 "%s\n", res.id,
           res.replaced ? " replaced" : res.duplicate ? " duplicate" : "");
    return EXIT_OK;
}

int cmd_add(struct cli *c, int argc, char **argv)
{
    int64_t *after = NULL;
    size_t nafter = 0;
    int rc = add_cmd(c, argc, argv, &after, &nafter);
    free(after);
    return rc;
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
    if (c->json) {
        /* {"moved":[ids],"not_moved":[ids]} */
        for (int pass = 0; pass < 2; pass++) {
            fputs(pass ? "],\"not_moved\":[" : "{\"moved\":[", stdout);
            bool first = true;
            for (size_t i = 0; i < n; i++)
                if (done[i] == !pass) {
                    printf("%s%" PRId64, first ? "" : ",", ids[i]);
                    first = false;
                }
        }
        fputs("]}\n", stdout);
    }
    for (size_t i = 0; i < n; i++) {
        if (!done[i])
            rc = cli_error(c, "job %" PRId64 ": %s", ids[i], not_moved);
        else if (!c->json)
            printf("%" PRId64 "\n", ids[i]);
    }
    free(done);
    return rc;
}

int cmd_requeue(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq requeue ID... [--json] [-c FILE] [--db URL]\n"
        "       pgq requeue --dead [--cancelled] [--queue Q] [--type T]\n\n"
        "Move dead (or cancelled) jobs back to ready with a fresh set of retries; their\n"
        "history is kept and the action is recorded. With ids, prints each requeued id;\n"
        "an id that is not dead or cancelled is reported and the exit is 1. With --dead\n"
        "(or --cancelled), requeues every such job matching --queue/--type and prints\n"
        "\"requeued N\". Two operators requeueing at once move each job once.\n"
        "--json: {\"moved\":[IDS],\"not_moved\":[IDS]}, or {\"requeued\":N}.\n";
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
    if (c->json)
        printf("{\"requeued\":%" PRId64 "}\n", total);
    else
        printf("requeued %" PRId64 "\n", total);
    return EXIT_OK;
}

int cmd_cancel(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq cancel ID... [--json] [-c FILE] [--db URL]\n\n"
        "Cancel waiting, ready, scheduled or running jobs; prints each cancelled id.\n"
        "The jobs waiting for them (pgq add --after) are cancelled too. A running\n"
        "job's lease is revoked at once and its pool stops the handler (SIGTERM, then\n"
        "SIGKILL after the grace period, for an exec handler; pgq_ctx_cancelled() for an\n"
        "in-process one); its history gets a cancelled attempt saying who. A finished\n"
        "or missing job is reported and the exit is 1. `pgq requeue` undoes it.\n"
        "--json: {\"moved\":[IDS],\"not_moved\":[IDS]}.\n";
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
    rc = act_on_ids(c, ids, n, "not cancelled (no such job, or not ready or running)", pgq_cancel);
    free(ids);
    return rc;
}

/* A count as the text form shows it: exact "1234", an estimate "~1234", a
 * lower bound "1234+". */
static const char *count_text(char *buf, size_t len, int64_t v, pgq_count_kind k)
{
    snprintf(buf, len, "%s%" PRId64 "%s", k == PGQ_COUNT_ESTIMATE ? "~" : "", v,
             k == PGQ_COUNT_AT_LEAST ? "+" : "");
    return buf;
}

static const char *kind_name(pgq_count_kind k)
{
    return k == PGQ_COUNT_ESTIMATE ? "estimate" : k == PGQ_COUNT_AT_LEAST ? "at_least" : "exact";
}

static void stats_json(const pgq_queue_stats *s, size_t n, const char *const names[8])
{
    fputs("{\"queues\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        const pgq_queue_stats *q = &s[i];
        const int64_t v[] = { q->ready, q->scheduled, q->retrying, q->running, q->dead,
                              q->cancelled, q->done, q->done_last_hour };
        const pgq_count_kind k[] = { q->ready_is, q->future_is, q->future_is, PGQ_COUNT_EXACT,
                                     q->dead_is, q->cancelled_is, q->done_is,
                                     q->done_last_hour_is };
        fputs(i ? ",{" : "{", stdout);
        json_kv_str(stdout, true, "queue", q->queue);
        for (size_t j = 0; j < sizeof v / sizeof v[0]; j++)
            json_kv_int(stdout, false, names[j], v[j]);
        json_kv_bool(stdout, false, "paused", q->paused);
        json_kv_int(stdout, false, "waiting", q->waiting);
        /* the counts that are not exact, and what they are instead */
        json_key(stdout, false, "approx");
        fputc('{', stdout);
        bool first = true;
        for (size_t j = 0; j < sizeof k / sizeof k[0]; j++) {
            if (k[j] == PGQ_COUNT_EXACT)
                continue;
            json_kv_str(stdout, first, names[j], kind_name(k[j]));
            first = false;
        }
        if (q->waiting_is != PGQ_COUNT_EXACT)
            json_kv_str(stdout, first, "waiting", kind_name(q->waiting_is));
        fputc('}', stdout);
        json_kv_int(stdout, false, "pools", q->pools);
        json_kv_bool(stdout, false, "unserved", pgq_queue_unserved(q));
        json_key(stdout, false, "oldest_ready_s");
        if (q->oldest_ready_s < 0)
            fputs("null", stdout);
        else
            printf("%.3f", q->oldest_ready_s);
        json_kv_int(stdout, false, "done_5m", q->done_5m);
        json_key(stdout, false, "done_5m_window_s");
        printf("%.3f", q->done_5m_window_s);
        json_kv_int(stdout, false, "failed_5m", q->failed_5m);
        json_key(stdout, false, "failed_5m_window_s");
        printf("%.3f", q->failed_5m_window_s);
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

int cmd_stats(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq stats [--json | --prometheus] [-c FILE] [--db URL]\n\n"
        "One line per queue after a header: ready (due now), scheduled (future,\n"
        "never tried), retrying (future, after a failure), running, dead,\n"
        "cancelled, done, done in the last hour, whether the queue is paused,\n"
        "waiting (for other jobs to be done: pgq add --after), the live pools that\n"
        "claim from it, and the jobs done and attempts failed in the last five\n"
        "minutes. The queue column is as wide as the longest name.\n"
        "Counts are exact up to 5000 per index range read; above, \"~N\" is the\n"
        "planner's estimate and \"N+\" a lower bound (running is always exact).\n"
        "A queue with due jobs, not paused, that no live pool claims from is\n"
        "reported on stderr (\"nobody serves it\").\n"
        "--json: {\"queues\":[{\"queue\":Q,\"ready\":N,...,\"waiting\":N,\"approx\":{\"done\":\"estimate\"},\n"
        "\"pools\":N,\"unserved\":B,\"oldest_ready_s\":S,\"done_5m\":N,\"done_5m_window_s\":S,\n"
        "\"failed_5m\":N,\"failed_5m_window_s\":S}]} with the same names as the header.\n"
        "--prometheus: the same as gauges in Prometheus's text format (for\n"
        "node_exporter's textfile collector): pgq_jobs{queue,state},\n"
        "pgq_jobs_exact{queue,state}, pgq_jobs_done_last_hour{queue},\n"
        "pgq_queue_oldest_ready_seconds{queue}, pgq_queue_paused{queue},\n"
        "pgq_queue_pools{queue}, pgq_queue_unserved{queue},\n"
        "pgq_queue_done_per_second{queue}, pgq_queue_failed_per_second{queue},\n"
        "pgq_build_info{version,schema}.\n";
    char err[1024];
    const char *pos[1];
    int npos, r = cli_args(c, argc, argv, help, pos, 1, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    bool prom = npos == 1 && strcmp(pos[0], "--prometheus") == 0;
    if (npos && !prom)
        return cli_usage_error(c, "unexpected argument \"%s\"", pos[0]);
    if (prom && c->json)
        return cli_usage_error(c, "give --json or --prometheus, not both");
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    pgq_queue_stats *s;
    size_t n;
    if (pgq_stats(c->conn, &s, &n, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    static const char *const names[] = { "ready", "scheduled", "retrying", "running", "dead",
                                         "cancelled", "done", "done_1h" };
    if (prom) {
        /* The same writer as a pool's metrics endpoint (core/prom.c), for
         * node_exporter's textfile collector (write to a temp file, rename
         * into its directory). */
        pgq_prom_write_stats(stdout, s, n);
        pgq_prom_write_build_info(stdout);
    } else if (c->json) {
        stats_json(s, n, names);
    } else {
        /* Queue names may be up to 100 characters: the column takes the
         * longest, so the numbers stay under their headers. */
        int w = 20;
        for (size_t i = 0; i < n; i++)
            if ((int)strlen(s[i].queue) > w)
                w = (int)strlen(s[i].queue);
        /* waiting, pools, done_5m, failed_5m come last, so that the
         * columns scripts read keep their places */
        printf("%-*s %9s %9s %9s %9s %9s %9s %9s %9s %6s %9s %5s %8s %9s\n", w, "queue", "ready",
               "scheduled", "retrying", "running", "dead", "cancelled", "done", "done_1h",
               "paused", "waiting", "pools", "done_5m", "failed_5m");
        for (size_t i = 0; i < n; i++) {
            const pgq_queue_stats *q = &s[i];
            char b[8][32];
            printf("%-*s %9s %9s %9s %9" PRId64 " %9s %9s %9s %9s %6s %9s %5d %8" PRId64
                   " %9" PRId64 "\n", w, q->queue,
                   count_text(b[0], sizeof b[0], q->ready, q->ready_is),
                   count_text(b[1], sizeof b[1], q->scheduled, q->future_is),
                   count_text(b[2], sizeof b[2], q->retrying, q->future_is), q->running,
                   count_text(b[3], sizeof b[3], q->dead, q->dead_is),
                   count_text(b[4], sizeof b[4], q->cancelled, q->cancelled_is),
                   count_text(b[5], sizeof b[5], q->done, q->done_is),
                   count_text(b[6], sizeof b[6], q->done_last_hour, q->done_last_hour_is),
                   q->paused ? "yes" : "no",
                   count_text(b[7], sizeof b[7], q->waiting, q->waiting_is), q->pools, q->done_5m,
                   q->failed_5m);
        }
    }
    /* Jobs that would wait silently: say so where a person or a cron mail
     * sees it, whatever the format on stdout. */
    for (size_t i = 0; i < n; i++)
        if (pgq_queue_unserved(&s[i]))
            fprintf(stderr, "pgq stats: queue \"%s\": %s%" PRId64 " due job%s and no live pool "
                    "claims from it (nobody serves it)\n", s[i].queue,
                    s[i].ready_is == PGQ_COUNT_ESTIMATE ? "~" : "", s[i].ready,
                    s[i].ready == 1 ? "" : "s");
    free(s);
    return EXIT_OK;
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* A value that may hold newlines (an error text), as "name: value" lines:
 * continuation lines indented by four spaces, so that every line of the
 * output still reads as its field. */
static void put_lines(const char *s)
{
    for (; *s; s++) {
        putchar(*s);
        if (*s == '\n' && s[1])
            fputs("    ", stdout);
        else if (*s == '\n')
            break;
    }
}

static void show_json(const pgq_job_detail *d)
{
    FILE *f = stdout;
    fputc('{', f);
    json_kv_int(f, true, "id", d->id);
    json_kv_str(f, false, "queue", d->queue);
    json_kv_str(f, false, "type", d->type);
    json_kv_str(f, false, "state", d->state);
    json_kv_int(f, false, "priority", d->priority);
    json_kv_int(f, false, "attempts", d->attempts);
    json_kv_int(f, false, "max_retries", d->max_retries);
    json_kv_str(f, false, "run_at", d->run_at);
    json_kv_str(f, false, "idempotency_key", d->idempotency_key);
    json_kv_str(f, false, "lease_owner", d->lease_owner);
    json_kv_str(f, false, "lease_expires_at", d->lease_expires_at);
    json_kv_str(f, false, "last_error", d->last_error);
    json_kv_str(f, false, "created_at", d->created_at);
    json_kv_str(f, false, "started_at", d->started_at);
    json_kv_str(f, false, "finished_at", d->finished_at);
    json_kv_str(f, false, "result", d->result);
    json_kv_str(f, false, "result_note", d->result_note);
    /* JSON already (PostgreSQL's jsonb_pretty), put on one line: a raw
     * newline there is always layout (inside strings it is escaped), and so
     * is the indentation after it. */
    json_key(f, false, "payload");
    for (const char *p = d->payload_pretty; *p; p++) {
        if (*p == '\n') {
            while (p[1] == ' ')
                p++;
            continue;
        }
        fputc(*p, f);
    }
    json_key(f, false, "history");
    fputc('[', f);
    for (size_t i = 0; i < d->nattempts; i++) {
        const pgq_attempt_row *a = &d->attempts_v[i];
        fputs(i ? ",{" : "{", f);
        json_kv_int(f, true, "attempt", a->attempt);
        json_kv_str(f, false, "outcome", a->outcome);
        json_kv_str(f, false, "worker", a->worker);
        json_kv_str(f, false, "error", a->error);
        json_kv_int_or_null(f, false, "exit_code", a->exit_code);
        json_kv_int_or_null(f, false, "term_signal", a->term_signal > 0 ? a->term_signal : -1);
        json_kv_int_or_null(f, false, "cpu_ms", a->cpu_ms);
        json_kv_int_or_null(f, false, "max_rss_kb", a->max_rss_kb);
        json_kv_str(f, false, "started_at", a->started_at);
        json_kv_str(f, false, "finished_at", a->finished_at);
        json_key(f, false, "duration_ms");
        fprintf(f, "%.3f", a->duration_ms);
        fputc('}', f);
    }
    fputc(']', f);
    json_key(f, false, "effects");
    fputc('[', f);
    for (size_t i = 0; i < d->neffects; i++) {
        const pgq_effect_row *e = &d->effects[i];
        fputs(i ? ",{" : "{", f);
        json_kv_str(f, true, "key", e->key);
        json_kv_str(f, false, "state", e->state);
        json_kv_bool(f, false, "in_doubt", e->in_doubt);
        json_kv_int(f, false, "attempt", e->attempt);
        json_kv_str(f, false, "started_at", e->started_at);
        json_kv_str(f, false, "finished_at", e->finished_at);
        fputc('}', f);
    }
    fputc(']', f);
    json_kv_int(f, false, "waiting_for", d->waiting_for);
    for (int side = 0; side < 2; side++) {
        const pgq_dep_row *v = side ? d->children : d->parents;
        size_t nv = side ? d->nchildren : d->nparents;
        json_key(f, false, side ? "children" : "parents");
        fputc('[', f);
        for (size_t i = 0; i < nv; i++) {
            fputs(i ? ",{" : "{", f);
            json_kv_int(f, true, "id", v[i].id);
            json_kv_str(f, false, "state", v[i].state);
            fputc('}', f);
        }
        fputc(']', f);
    }
    json_kv_int(f, false, "children_total", (int64_t)d->nchildren_total);
    fputs("}\n", f);
}

/* pgq show and pgq result: parse "ID" (with the common options), connect
 * and describe the job. NULL with *rc the exit code when there is nothing
 * to print (help, a usage error, a failure, or no such job: no_job). */
static pgq_job_detail *describe_arg(struct cli *c, int argc, char **argv, const char *help,
                                    int no_job, int *rc)
{
    char err[1024];
    int64_t id = 0;
    const char *pos[1];
    int npos, r = cli_args(c, argc, argv, help, pos, 1, &npos);
    pgq_job_detail *d = NULL;
    if (r)
        *rc = r > 0 ? EXIT_OK : EXIT_USAGE;
    else if (npos && cli_parse_id(c, pos[0], &id) < 0)
        *rc = EXIT_USAGE;
    else if (!id)
        *rc = cli_usage_error(c, "needs a job id");
    else if (cli_connect(c, false) < 0)
        *rc = EXIT_FAIL;
    else if (pgq_job_describe(c->conn, id, &d, err, sizeof err) < 0)
        *rc = cli_error(c, "%s", err);
    else if (!d) {
        cli_error(c, "job %" PRId64 ": no such job", id);
        *rc = no_job;
    }
    return d;
}

int cmd_show(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq show ID [--json] [-c FILE] [--db URL]\n\n"
        "Print a job: its fields as \"name: value\" lines, the payload, every\n"
        "attempt (outcome, worker, duration, exit status, error) and its\n"
        "run_once effects, in-doubt ones marked IN DOUBT, then its dependencies: the\n"
        "jobs it waits for (parents, with their states; \"gone\" for one pruned since)\n"
        "and the jobs waiting for it (children, the first 1000), and last a done job's\n"
        "result (with its note when it was cut or not stored). Lines of a multi-line\n"
        "error or result after its first are indented by four spaces. --json: one\n"
        "object with the same field names, \"payload\" as JSON, \"history\" and\n"
        "\"effects\" arrays, \"waiting_for\", \"parents\" and \"children\"\n"
        "([{\"id\":N,\"state\":S}]) and \"children_total\". `pgq result ID` prints the\n"
        "result alone, raw.\n";
    int rc;
    pgq_job_detail *d = describe_arg(c, argc, argv, help, EXIT_FAIL, &rc);
    if (!d)
        return rc;
    if (c->json) {
        show_json(d);
        pgq_job_detail_free(d);
        return EXIT_OK;
    }
    printf("id: %" PRId64 "\nqueue: %s\ntype: %s\nstate: %s\npriority: %d\n"
           "attempts: %d (max_retries %d)\nrun_at: %s\nidempotency_key: %s\n"
           "lease_owner: %s\nlease_expires_at: %s\nlast_error: ",
           d->id, d->queue, d->type, d->state, d->priority, d->attempts, d->max_retries,
           d->run_at, or_dash(d->idempotency_key), or_dash(d->lease_owner),
           or_dash(d->lease_expires_at));
    put_lines(or_dash(d->last_error));
    printf("\ncreated_at: %s\nstarted_at: %s\nfinished_at: %s\npayload:\n%s\n", d->created_at,
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
        if (a->error) {
            fputs(": ", stdout);
            put_lines(a->error);
        }
        putchar('\n');
    }
    printf("effects: %zu\n", d->neffects);
    for (size_t i = 0; i < d->neffects; i++) {
        const pgq_effect_row *e = &d->effects[i];
        printf("  %s %s (attempt %d, started %s%s%s)\n", e->key,
               e->in_doubt ? "IN DOUBT" : e->state, e->attempt, e->started_at,
               e->finished_at ? ", finished " : "", e->finished_at ? e->finished_at : "");
    }
    if (d->nparents)
        printf("parents: %zu (waiting for %d)\n", d->nparents, d->waiting_for);
    else
        printf("parents: 0\n");
    for (size_t i = 0; i < d->nparents; i++)
        printf("  %" PRId64 " %s\n", d->parents[i].id, d->parents[i].state);
    printf("children: %zu\n", d->nchildren_total);
    for (size_t i = 0; i < d->nchildren; i++)
        printf("  %" PRId64 " %s\n", d->children[i].id, d->children[i].state);
    if (d->nchildren < d->nchildren_total)
        printf("  (the first %zu shown)\n", d->nchildren);
    fputs("result: ", stdout);
    put_lines(or_dash(d->result));
    if (d->result_note) {
        fputs("\nresult_note: ", stdout);
        put_lines(d->result_note);
    }
    putchar('\n');
    pgq_job_detail_free(d);
    return EXIT_OK;
}

/* Exit codes of `pgq result` besides 0, 1 and 2 (README, pgq.1): a script
 * waiting for a result tells "try again later" from "give up". */
enum { EXIT_NO_JOB = 3, EXIT_NOT_YET = 4, EXIT_NO_RESULT = 5 };

int cmd_result(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq result ID [-c FILE] [--db URL]\n\n"
        "Print the result of done job ID on stdout exactly as stored (an exec\n"
        "handler's stdout, or what an in-process handler gave pgq_ctx_set_result),\n"
        "with nothing added. A note about it (cut at result_max) goes to stderr.\n"
        "Exit status: 0 printed; 1 error; 2 usage; 3 no such job (never added, or\n"
        "pruned); 4 no result yet (the job is not finished: ready, scheduled or\n"
        "running); 5 no result (the job ended without one: dead, cancelled, done\n"
        "without one, or its output was not stored: the note says why).\n";
    int rc;
    pgq_job_detail *d = describe_arg(c, argc, argv, help, EXIT_NO_JOB, &rc);
    if (!d)
        return rc;
    int64_t id = d->id;
    rc = EXIT_OK;
    if (strcmp(d->state, "ready") == 0 || strcmp(d->state, "running") == 0) {
        cli_error(c, "job %" PRId64 ": no result yet (%s)", id, d->state);
        rc = EXIT_NOT_YET;
    } else if (!d->result) {
        if (d->result_note)
            cli_error(c, "job %" PRId64 ": no result: %s", id, d->result_note);
        else
            cli_error(c, "job %" PRId64 ": no result (%s%s)", id, d->state,
                      strcmp(d->state, "done") == 0 ? " without one" : "");
        rc = EXIT_NO_RESULT;
    } else {
        fwrite(d->result, 1, strlen(d->result), stdout);
        if (fflush(stdout) != 0 || ferror(stdout))
            rc = cli_error(c, "writing the result: %s", strerror(errno));
        else if (d->result_note)
            fprintf(stderr, "pgq result: job %" PRId64 ": %s\n", id, d->result_note);
    }
    pgq_job_detail_free(d);
    return rc;
}
