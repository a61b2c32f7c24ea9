/* What every pgq subcommand shares (cli.h): one-line errors, the -c/--db
 * options, loading the config, connecting, and parsing option values. Apart
 * from main.c, which only dispatches, so that the subcommands and the
 * dispatcher do not depend on each other in a circle. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dbarg.h"
#include "duration.h"

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
    enum { CONFIG, DB, DB_FILE } which;
    if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0)
        which = CONFIG, slot = &c->config_path;
    else if (strcmp(a, "--db") == 0 || strncmp(a, "--db=", 5) == 0)
        which = DB, slot = &c->db_url;
    else if (strcmp(a, "--db-file") == 0 || strncmp(a, "--db-file=", 10) == 0)
        which = DB_FILE, slot = &c->db_url;
    else
        return 0;
    char *eq = strchr(argv[*i], '=');
    char *arg;
    if (eq && a[1] == '-') {
        arg = eq + 1;
    } else {
        if (*i + 1 >= argc) {
            cli_usage_error(c, "%s needs a value", a);
            return -1;
        }
        arg = argv[++*i];
    }
    val = arg;
    if (which == DB) {
        val = cli_db_arg("pgq", arg);
    } else if (which == DB_FILE) {
        /* printed; a file that cannot be used is a failure, not a usage
         * error, and nothing is open yet */
        if (!(val = cli_db_file("pgq", arg)))
            exit(EXIT_FAIL);
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

int cli_parse_id_list(const char *val, int64_t **ids, size_t *n, char *err, size_t errlen)
{
    const char *p = val;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char item[32];
        char *stop;
        long long v = 0;
        bool ok = len > 0 && len < sizeof item;
        if (ok) {
            memcpy(item, p, len);
            item[len] = '\0';
            errno = 0;
            v = strtoll(item, &stop, 10);
            ok = !errno && stop != item && !*stop && v > 0 && item[0] != '+' && item[0] != ' ';
        }
        if (!ok) {
            snprintf(err, errlen, "\"%.*s\" is not a job id (a positive whole number)",
                     (int)(len > 40 ? 40 : len), p);
            return -1;
        }
        int64_t *grown = realloc(*ids, (*n + 1) * sizeof **ids);
        if (!grown) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        *ids = grown;
        (*ids)[(*n)++] = v;
        if (!end)
            return 0;
        p = end + 1;
    }
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

/* 8-4-4-4-12 hex digits: what the pool puts in PGQ_LEASE_TOKEN. */
static bool looks_like_token(const char *t)
{
    if (strlen(t) != PGQ_TOKEN_LEN)
        return false;
    for (int i = 0; i < PGQ_TOKEN_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? t[i] != '-' : !isxdigit((unsigned char)t[i]))
            return false;
    }
    return true;
}

int cli_handler_env(const struct cli *c, int64_t *id, const char **token)
{
    const char *idtext = getenv("PGQ_JOB_ID");
    *token = getenv("PGQ_LEASE_TOKEN");
    if (!idtext || !*idtext) {
        cli_error(c, "PGQ_JOB_ID is not set (run me from a pgq exec handler)");
        return -1;
    }
    if (!*token || !**token) {
        cli_error(c, "PGQ_LEASE_TOKEN is not set (run me from a pgq exec handler)");
        return -1;
    }
    if (cli_parse_id(c, idtext, id) < 0)
        return -1;
    if (!looks_like_token(*token)) {
        cli_error(c, "PGQ_LEASE_TOKEN \"%s\" is not a lease token (a UUID)", *token);
        return -1;
    }
    return 0;
}
