/* Internal to the pgq CLI: options every subcommand shares, and helpers. */
#ifndef PGQ_CLI_H
#define PGQ_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "pgq_config.h"
#include "pgq.h"

/* Exit codes of every subcommand (pgq once adds its own, see cmd_once.c). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli {
    const char *cmd;          /* "add", "types apply", ... for messages */
    const char *config_path;  /* -c */
    const char *db_url;       /* --db */
    pgq_cfg *cfg;             /* loaded on demand */
    pgq_conn *conn;
    bool json_ok;             /* the command takes --json */
    bool json;                /* --json: one JSON document on stdout */
};

/* Print "pgq CMD: message" to stderr; returns EXIT_FAIL (or the code given
 * to cli_usage_error: EXIT_USAGE). */
int cli_error(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage_error(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Handle -c/--config and --db at argv[*i] (advancing *i); 1 if consumed,
 * 0 if not one of them, -1 on a missing value (message printed). */
int cli_common_opt(struct cli *c, int argc, char **argv, int *i);

/* Load the -c file if given (and not yet loaded). 0 or -1 (printed). */
int cli_load_config(struct cli *c);

/* Connect (--db, then [database] url, then $DATABASE_URL) and, unless
 * `any_schema`, check the schema version. 0 or -1 (printed). */
int cli_connect(struct cli *c, bool any_schema);

void cli_close(struct cli *c);

/* Parse a whole number / duration option value; message names the option. */
int cli_parse_int(const struct cli *c, const char *opt, const char *val, long min, long max,
                  long *out);
int cli_parse_id(const struct cli *c, const char *val, int64_t *out);
/* Job ids separated by commas ("12,13"), appended to *ids (malloc'd,
 * *n of them; the caller frees it). 0, or a one-line message in err
 * naming the item at fault (the caller words the error). */
int cli_parse_id_list(const char *val, int64_t **ids, size_t *n, char *err, size_t errlen);
int cli_parse_duration(const struct cli *c, const char *opt, const char *val, int64_t *ms);

/* The argument loop of simple subcommands: consumes -c/--db, prints `help`
 * for -h/--help, and collects up to maxpos other arguments into pos.
 * Returns 0, 1 when help was printed, or -1 on a usage error (printed). */
int cli_args(struct cli *c, int argc, char **argv, const char *help, const char **pos,
             int maxpos, int *npos);

/* The job an exec handler runs for, from the environment the pool gives
 * it (PGQ_JOB_ID, PGQ_LEASE_TOKEN): 0, or -1 with the error printed. */
int cli_handler_env(const struct cli *c, int64_t *id, const char **token);

/* True for -h/--help. */
bool cli_is_help(const char *arg);

/* JSON output (cli/json.c): first says whether a comma goes before. */
#include <stdio.h>
void json_str(FILE *f, const char *s);
void json_key(FILE *f, bool first, const char *key);
void json_kv_str(FILE *f, bool first, const char *key, const char *value);
void json_kv_int(FILE *f, bool first, const char *key, int64_t value);
void json_kv_int_or_null(FILE *f, bool first, const char *key, int64_t value);
void json_kv_bool(FILE *f, bool first, const char *key, bool value);

int cmd_version(struct cli *c, int argc, char **argv);
int cmd_migrate(struct cli *c, int argc, char **argv);
int cmd_types(struct cli *c, int argc, char **argv);
int cmd_add(struct cli *c, int argc, char **argv);
int cli_add_lines(struct cli *c);   /* pgq add - (cli/cmd_add_lines.c) */
int cmd_once(struct cli *c, int argc, char **argv);
int cmd_snooze(struct cli *c, int argc, char **argv);
int cmd_show(struct cli *c, int argc, char **argv);
int cmd_result(struct cli *c, int argc, char **argv);
int cmd_stats(struct cli *c, int argc, char **argv);
int cmd_requeue(struct cli *c, int argc, char **argv);
int cmd_cancel(struct cli *c, int argc, char **argv);
int cmd_pause(struct cli *c, int argc, char **argv);
int cmd_resume(struct cli *c, int argc, char **argv);
int cmd_top(struct cli *c, int argc, char **argv);
int cmd_cron(struct cli *c, int argc, char **argv);

#endif
