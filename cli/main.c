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
    { "types", cmd_types, "apply job types from -c pool.ini, or list the registered ones", true },
    { "add", cmd_add, "enqueue a job; prints its id (and \"duplicate\")", false },
    { "once", cmd_once, "run a command at most once for the current job (exec handlers)", false },
    { "show", cmd_show, "a job's detail: payload, attempt history, run_once effects", true },
    { "stats", cmd_stats, "job counts per queue and state", true },
    { "requeue", cmd_requeue, "move dead (or cancelled) jobs back to ready", true },
    { "cancel", cmd_cancel, "cancel ready, scheduled or running jobs", true },
    { "pause", cmd_pause, "stop pools from claiming from queues (running jobs finish)", false },
    { "resume", cmd_resume, "let pools claim from paused queues again", false },
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
    fprintf(f, "usage: pgq [-c pool.ini] [--db URL] COMMAND [ARGS...]\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-17s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nThe database is --db URL, else [database] url of -c FILE, else $DATABASE_URL.\n"
               "`pgq COMMAND --help` tells more. pgq %s.\n", PGQ_VERSION);
}

static int vreport(const struct cli *c, int code, const char *fmt, va_list ap)
{
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "pgq%s%s: %s\n", c && c->cmd ? " " : "", c && c->cmd ? c->cmd : "", msg);
    return code;
}

int cli_error(const struct cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(c, EXIT_FAIL, fmt, ap);
    va_end(ap);
    return rc;
}

int cli_usage_error(const struct cli *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vreport(c, EXIT_USAGE, fmt, ap);
    va_end(ap);
    return rc;
}

bool cli_is_help(const char *arg)
{
    return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0;
}

int cli_common_opt(struct cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **slot = NULL;
    const char *val = NULL;

    if (strcmp(a, "--json") == 0) {
        if (!c->json_ok) {
            if (c->cmd)
                cli_usage_error(c, "--json: not an option of pgq %s (stats, show, types list, "
                                "requeue, cancel and version take it)", c->cmd);
            else
                cli_usage_error(c, "--json goes after the command (pgq stats --json)");
            return -1;
        }
        c->json = true;
        return 1;
    }
    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0)
        slot = &c->config_path;
    else if (strcmp(a, "--db") == 0 || strncmp(a, "--db=", 5) == 0)
        slot = &c->db_url;
    else
        return 0;
    const char *eq = strchr(a, '=');
    if (eq && a[1] == '-') {
        val = eq + 1;
    } else {
        if (*i + 1 >= argc) {
            cli_usage_error(c, "%s needs a value", a);
            return -1;
        }
        val = argv[++*i];
    }
    *slot = val;
    return 1;
}

int cli_args(struct cli *c, int argc, char **argv, const char *help, const char **pos,
             int maxpos, int *npos)
{
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(c, argc, argv, &i);
        if (r < 0)
            return -1;
        if (r)
            continue;
        if (cli_is_help(argv[i])) {
            fputs(help, stdout);
            return 1;
        }
        if (*npos >= maxpos) {
            cli_usage_error(c, "unexpected argument \"%s\"", argv[i]);
            return -1;
        }
        pos[(*npos)++] = argv[i];
    }
    return 0;
}

int cli_load_config(struct cli *c)
{
    char err[1024];
    if (!c->config_path || c->cfg)
        return 0;
    if (pgq_cfg_load(c->config_path, &c->cfg, err, sizeof err) < 0) {
        cli_error(c, "%s", err);
        return -1;
    }
    return 0;
}

int cli_connect(struct cli *c, bool any_schema)
{
    char err[1024];
    if (cli_load_config(c) < 0)
        return -1;
    const char *url = c->db_url;
    /* The config's pooler goes with the config's url; --db and
     * DATABASE_URL go with $PGQ_POOLER. */
    pgq_pooler pooler = PGQ_POOLER_AUTO;
    if (!url && c->cfg && c->cfg->db_url) {
        url = c->cfg->db_url;
        pooler = c->cfg->pooler;
    }
    if (!url)
        url = getenv("DATABASE_URL");
    if (!url || !*url) {
        cli_error(c, "no database: give --db URL, [database] url in -c FILE, or set DATABASE_URL");
        return -1;
    }
    if (pgq_connect_via(url, pooler, &c->conn, err, sizeof err) < 0) {
        cli_error(c, "%s", err);
        return -1;
    }
    if (!any_schema && pgq_schema_check(c->conn, err, sizeof err) < 0) {
        cli_error(c, "%s", err);
        return -1;
    }
    return 0;
}

void cli_close(struct cli *c)
{
    pgq_disconnect(c->conn);
    c->conn = NULL;
    pgq_cfg_free(c->cfg);
    c->cfg = NULL;
}

int cli_parse_int(const struct cli *c, const char *opt, const char *val, long min, long max,
                  long *out)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end) {
        cli_usage_error(c, "%s: \"%s\" is not a whole number", opt, val);
        return -1;
    }
    if (v < min || v > max) {
        cli_usage_error(c, "%s: %ld is out of range (%ld to %ld)", opt, v, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_id(const struct cli *c, const char *val, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(val, &end, 10);
    if (errno || end == val || *end || v <= 0) {
        cli_usage_error(c, "\"%s\" is not a job id (a positive whole number)", val);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_duration(const struct cli *c, const char *opt, const char *val, int64_t *ms)
{
    char err[256];
    if (pgq_duration_parse(val, ms, err, sizeof err) < 0) {
        cli_usage_error(c, "%s: %s", opt, err);
        return -1;
    }
    return 0;
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
