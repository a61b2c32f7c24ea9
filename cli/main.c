/* pgq: the admin CLI. A thin front end over libpgq: each subcommand parses
 * its arguments, connects, makes one or two library calls and prints the
 * result one item a line. Errors are one line on stderr naming the thing at
 * fault, and a non-zero exit (1 failure, 2 usage). */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "duration.h"

static int cmd_config_reference(struct cli *c, int argc, char **argv);

static const struct command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
    const char *summary;
    bool json;   /* takes --json */
} commands[] = {
    { "version", cmd_version, "this pgq's version and schema version", true },
    { "migrate", cmd_migrate, "apply pending schema migrations (--status lists them, --to N stops at N)", false },
    { "types", cmd_types, "apply job types from -c pool.ini, list the registered ones, or write their C header", true },
    { "add", cmd_add, "enqueue a job; prints its id (and \"duplicate\")", false },
    { "once", cmd_once, "run a command at most once for the current job (exec handlers)", false },
    { "snooze", cmd_snooze, "put the current job back to ready later, no attempt spent (exec handlers)", false },
    { "show", cmd_show, "a job's detail: payload, attempt history, run_once effects", true },
    { "result", cmd_result, "print a done job's result, raw (exit 3: no such job, 4: not done yet, 5: none)", false },
    { "stats", cmd_stats, "job counts per queue and state", true },
    { "requeue", cmd_requeue, "move dead (or cancelled) jobs back to ready", true },
    { "cancel", cmd_cancel, "cancel ready, scheduled or running jobs", true },
    { "pause", cmd_pause, "stop pools from claiming from queues (running jobs finish)", false },
    { "resume", cmd_resume, "let pools claim from paused queues again", false },
    { "cron", cmd_cron, "the periodic jobs ([cron NAME] sections): next run, last job", true },
    { "top", cmd_top, "the live dashboard: queues, pools, running, dead letters, health", false },
    { "config-reference", cmd_config_reference, "print every pool.ini key as a Markdown table", false },
};

int cmd_version(struct cli *c, int argc, char **argv)
{
    int npos, r = cli_args(c, argc, argv, "usage: pgq version [--json]\n\nThis pgq's version "
                           "and the schema version it migrates to.\n", NULL, 0, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (c->json) {
        fputc('{', stdout);
        json_kv_str(stdout, true, "version", PGQ_VERSION);
        json_kv_int(stdout, false, "schema", pgq_schema_version());
        fputs("}\n", stdout);
    } else {
        printf("pgq %s (schema %d)\n", PGQ_VERSION, pgq_schema_version());
    }
    return EXIT_OK;
}

static int cmd_config_reference(struct cli *c, int argc, char **argv)
{
    if (argc > 1 && cli_is_help(argv[1])) {
        printf("usage: pgq config-reference\n\nPrint every pool.ini key (section, type, "
               "default, bounds, meaning) as Markdown, generated from the key table.\n");
        return EXIT_OK;
    }
    if (argc > 1)
        return cli_usage_error(c, "unexpected argument \"%s\"", argv[1]);
    pgq_cfg_write_reference(stdout);
    return EXIT_OK;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: pgq [-c pool.ini] [--db URL | --db-file FILE] COMMAND [ARGS...]\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nThe database is --db URL (or the URL in --db-file FILE), else [database] url of\n"
               "-c FILE, else $DATABASE_URL.\n"
               "`pgq COMMAND --help` tells more. pgq %s.\n", PGQ_VERSION);
}

int main(int argc, char **argv)
{
    struct cli c = { 0 };
    int i = 1;

    setvbuf(stdout, NULL, _IOLBF, 0);
    for (; i < argc; i++) {
        int r = cli_common_opt(&c, argc, argv, &i);
        if (r < 0)
            return EXIT_USAGE;
        if (r == 0)
            break;
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (cli_is_help(argv[i]) || strcmp(argv[i], "help") == 0) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[i], "--version") == 0) {
        printf("pgq %s (schema %d)\n", PGQ_VERSION, pgq_schema_version());
        return EXIT_OK;
    }
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        if (strcmp(argv[i], commands[k].name) == 0) {
            c.cmd = commands[k].name;
            c.json_ok = commands[k].json;
            int rc = commands[k].run(&c, argc - i, argv + i);
            cli_close(&c);
            return rc;
        }
    }
    fprintf(stderr, "pgq: unknown command \"%s\" (see pgq --help)\n", argv[i]);
    return EXIT_USAGE;
}
