/* pgq top: the dashboard. Finds the database like every subcommand (--db,
 * [database] url of -c, $DATABASE_URL), checks the schema once so a wrong
 * database is a one-line error rather than a screen of failures, and hands
 * over to the dashboard (tui/top.h), which keeps its own connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "once.h"
#include "top.h"

static const char help[] =
    "usage: pgq top [-c pool.ini] [--db URL] [--refresh D] [--stale D] [--no-color] [--once]\n\n"
    "The live dashboard of the whole fleet, read from PostgreSQL: counts per queue,\n"
    "throughput, pools and their heartbeats, running jobs, dead letters, all jobs\n"
    "(filtered with /), database health, and a job's full detail (Enter). Actions:\n"
    "r requeue, R requeue all dead matching the filter, c cancel (each confirmed\n"
    "with y and recorded in pgq.actions). ? lists every key, q quits.\n\n"
    "  --refresh D   time between refreshes (default 1s)\n"
    "  --stale D     a pool without a heartbeat this long is stale (default 1m)\n"
    "  --no-color    plain, even where the terminal has colour\n"
    "  --once        print the Overview screen once as plain text and exit (no\n"
    "                terminal needed; COLUMNS x LINES, default 80 x 24)\n";

int cmd_top(struct cli *c, int argc, char **argv)
{
    struct top_opts o = TOP_OPTS_INIT;
    char err[1024];
    bool once = false;

    for (int i = 1; i < argc; i++) {
        int r = cli_common_opt(c, argc, argv, &i);
        if (r < 0)
            return EXIT_USAGE;
        if (r)
            continue;
        const char *a = argv[i];
        if (cli_is_help(a)) {
            fputs(help, stdout);
            return EXIT_OK;
        }
        bool refresh = strcmp(a, "--refresh") == 0 || strncmp(a, "--refresh=", 10) == 0;
        bool stale = strcmp(a, "--stale") == 0 || strncmp(a, "--stale=", 8) == 0;
        if (refresh || stale) {
            const char *name = refresh ? "--refresh" : "--stale";
            const char *v = strchr(a, '=');
            int64_t ms;
            if (v) {
                v++;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                return cli_usage_error(c, "%s needs a value", name);
            }
            if (cli_parse_duration(c, name, v, &ms) < 0)
                return EXIT_USAGE;
            if (ms < 100 || ms > 3600000)
                return cli_usage_error(c, "%s: %s is out of range (100ms to 1h)", name, v);
            if (refresh)
                o.refresh_ms = ms;
            else
                o.stale_s = (double)ms / 1000.0;
        } else if (strcmp(a, "--no-color") == 0) {
            o.no_color = true;
        } else if (strcmp(a, "--once") == 0) {
            once = true;
        } else {
            return cli_usage_error(c, "unexpected argument \"%s\"", a);
        }
    }
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    if (once) {
        if (pgq_top_once(c->conn, &o, stdout, err, sizeof err) < 0)
            return cli_error(c, "top --once: %s", err);
        return EXIT_OK;
    }
    /* The dashboard reconnects by itself with the same URL. */
    const char *url = c->db_url;
    if (!url && c->cfg && c->cfg->db_url)
        url = c->cfg->db_url;
    if (!url)
        url = getenv("DATABASE_URL");
    pgq_disconnect(c->conn);
    c->conn = NULL;
    if (pgq_top_run(url, &o, err, sizeof err) < 0)
        return cli_error(c, "%s%s", err, isatty(STDIN_FILENO) && isatty(STDOUT_FILENO) ? ""
                         : " (pgq top --once prints one screen without one)");
    return EXIT_OK;
}
