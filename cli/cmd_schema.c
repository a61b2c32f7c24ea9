/* pgq migrate, pgq types: the schema and the registered job types. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "cli.h"
#include "duration.h"
#include "typegen.h"
#include "values.h"

/* migrations/grants.sql warns, as "pgq: ...", about what this migrate may
 * not do (create the group roles without CREATEROLE): say so on stderr.
 * Other notices ("already exists") are noise. */
static void migrate_notice(void *arg, const char *msg)
{
    (void)arg;
    const char *m = strstr(msg, "pgq: ");
    if (m)
        fprintf(stderr, "pgq migrate: warning: %s", m + 5);
}

int cmd_migrate(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq migrate [--status | --to N] [-c FILE] [--db URL]\n\n"
        "Apply pending schema migrations in order, each in its own transaction,\n"
        "then the job state machine (migrations/state_machine.sql) if its text\n"
        "changed. Safe to run from several hosts at once. --status lists every\n"
        "migration as \"VERSION NAME applied AT\" or \"VERSION NAME pending\", then\n"
        "\"- state_machine.sql applied AT\" or \"... pending\". --to N stops at\n"
        "version N, as an older pgq whose newest migration was N would have\n"
        "(without the state machine of this version).\n";
    char err[1024];
    const char *pos[3];
    int npos, r = cli_args(c, argc, argv, help, pos, 3, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    bool status = false;
    const char *to = NULL;
    for (int i = 0; i < npos; i++) {
        if (strcmp(pos[i], "--status") == 0 && !status)
            status = true;
        else if (strcmp(pos[i], "--to") == 0 && !to && i + 1 < npos)
            to = pos[++i];
        else if (strncmp(pos[i], "--to=", 5) == 0 && !to)
            to = pos[i] + 5;
        else if (strcmp(pos[i], "--to") == 0 && !to)
            return cli_usage_error(c, "--to needs a value");
        else
            return cli_usage_error(c, "unknown argument \"%s\"", pos[i]);
    }
    if (status && to)
        return cli_usage_error(c, "give --status or --to, not both");
    long target = pgq_schema_version();
    if (to && cli_parse_int(c, "--to", to, 1, pgq_schema_version(), &target) < 0)
        return EXIT_USAGE;
    if (cli_connect(c, true) < 0)
        return EXIT_FAIL;
    if (status) {
        pgq_migration_status *s;
        size_t n;
        if (pgq_migrate_status(c->conn, &s, &n, err, sizeof err) < 0)
            return cli_error(c, "%s", err);
        int pending = 0;
        for (size_t k = 0; k < n; k++) {
            if (s[k].applied) {
                printf("%d %s applied %s\n", s[k].version, s[k].name, s[k].applied_at);
            } else {
                printf("%d %s pending\n", s[k].version, s[k].name);
                pending++;
            }
        }
        free(s);
        bool current;
        char at[40];
        if (pgq_state_machine_status(c->conn, &current, at, err, sizeof err) < 0)
            return cli_error(c, "%s", err);
        if (current)
            printf("- state_machine.sql applied %s\n", at);
        else
            printf("- state_machine.sql pending%s\n", *at ? " (another text is applied)" : "");
        pending += !current;
        int rc = EXIT_OK;
        if (pgq_schema_check(c->conn, err, sizeof err) < 0 && !pending)
            rc = cli_error(c, "%s", err);   /* newer than us */
        return rc;
    }
    int applied;
    bool was_current = true, current = true;
    char at[40];
    if (target == pgq_schema_version() &&
        pgq_state_machine_status(c->conn, &was_current, at, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    PQsetNoticeProcessor(pgq_conn_pg(c->conn), migrate_notice, NULL);
    if (pgq_migrate_to(c->conn, (int)target, &applied, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    if (target == pgq_schema_version() &&
        pgq_state_machine_status(c->conn, &current, at, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    printf("applied %d migration%s%s; schema at version %ld\n", applied, applied == 1 ? "" : "s",
           !was_current && current ? " and the state machine" : "", target);
    return EXIT_OK;
}

static int types_apply(struct cli *c)
{
    char err[1024];
    if (!c->config_path)
        return cli_usage_error(c, "apply needs -c pool.ini");
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    int rc = pgq_cfg_apply_types(c->conn, c->cfg, err, sizeof err);
    if (rc < 0)
        return cli_error(c, "%s: %s", c->config_path, err);
    for (size_t i = 0; i < c->cfg->ntypes; i++)
        printf("%s\n", c->cfg->types[i].name);
    return EXIT_OK;
}

static int types_list(struct cli *c)
{
    char err[1024], b1[32], b2[32], b3[32];
    pgq_type_info *t;
    size_t n;
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    if (pgq_types_list(c->conn, &t, &n, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    if (c->json) {
        /* {"types":[{"type":T,"queue":Q,...,"require":{contract}}]}, times in ms */
        fputs("{\"types\":[", stdout);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? ",{" : "{", stdout);
            json_kv_str(stdout, true, "type", t[i].type);
            json_kv_str(stdout, false, "queue", t[i].queue);
            json_kv_int(stdout, false, "max_retries", t[i].max_retries);
            json_kv_int(stdout, false, "priority", t[i].priority);
            json_kv_int(stdout, false, "timeout_ms", t[i].timeout_ms);
            json_kv_int(stdout, false, "backoff_base_ms", t[i].backoff_base_ms);
            json_kv_int(stdout, false, "backoff_max_ms", t[i].backoff_max_ms);
            /* limits: null when absent; running and window_starts are the use now */
            json_key(stdout, false, "concurrency");
            t[i].concurrency > 0 ? printf("%d", t[i].concurrency) : fputs("null", stdout);
            json_key(stdout, false, "rate");
            if (t[i].rate_count > 0) {
                fputc('{', stdout);
                json_kv_int(stdout, true, "count", t[i].rate_count);
                json_kv_int(stdout, false, "per_ms", t[i].rate_ms);
                json_kv_int(stdout, false, "window_starts", t[i].window_starts);
                fputc('}', stdout);
            } else {
                fputs("null", stdout);
            }
            if (t[i].concurrency > 0 || t[i].rate_count > 0)
                json_kv_int(stdout, false, "running", t[i].running);
            else
                fputs(",\"running\":null", stdout);
            json_kv_int(stdout, false, "max_snoozes", t[i].max_snoozes);
            /* bytes as pgq.payload_size measures them; null: no limit of pgq's own */
            json_key(stdout, false, "max_payload");
            t[i].max_payload > 0 ? printf("%" PRId64, t[i].max_payload) : fputs("null", stdout);
            json_key(stdout, false, "require");
            fputs(t[i].required, stdout);   /* jsonb text */
            json_kv_str(stdout, false, "updated_at", t[i].updated_at);
            fputc('}', stdout);
        }
        fputs("]}\n", stdout);
    }
    for (size_t i = 0; i < n && !c->json; i++) {
        printf("%s queue=%s max_retries=%d priority=%d timeout=%s backoff_base=%s "
               "backoff_max=%s ", t[i].type, t[i].queue, t[i].max_retries,
               t[i].priority, pgq_duration_format(t[i].timeout_ms, b1, sizeof b1),
               pgq_duration_format(t[i].backoff_base_ms, b2, sizeof b2),
               pgq_duration_format(t[i].backoff_max_ms, b3, sizeof b3));
        /* Limits only where set, each with its use now. */
        if (t[i].concurrency > 0)
            printf("concurrency=%d running=%" PRId64 " ", t[i].concurrency, t[i].running);
        if (t[i].rate_count > 0)
            printf("rate=%d/%s window_starts=%" PRId64 " ", t[i].rate_count,
                   pgq_duration_format(t[i].rate_ms, b1, sizeof b1), t[i].window_starts);
        printf("max_snoozes=%d max_payload=%s require=%s\n", t[i].max_snoozes,
               t[i].max_payload > 0 ? cfg_size_format(t[i].max_payload, b1, sizeof b1) : "none",
               t[i].required);
    }
    pgq_types_free(t, n);
    return EXIT_OK;
}

/* The include guard of a header written to path: PGQ_TYPES_<FILE NAME>_H
 * (PGQ_TYPES_H on stdout), so that two generated headers can meet. */
static char *header_guard(const char *path)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    size_t n = base ? strlen(base) : 0;
    char *g = malloc(n + 16);
    if (g == NULL)
        return NULL;
    strcpy(g, "PGQ_TYPES_");
    size_t k = strlen(g);
    for (size_t i = 0; i < n; i++) {
        char ch = base[i];
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        g[k++] = (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ? ch : '_';
    }
    /* embed_jobs.h -> PGQ_TYPES_EMBED_JOBS_H, not ..._H_H */
    if (k >= 12 && strcmp(g + k - 2, "_H") == 0)
        k -= 2;
    strcpy(g + k, k > 10 ? "_H" : "H");
    return g;
}

/* pgq types header: to stdout, or to -o FILE through a temporary file in
 * its directory and a rename, so that make (or a reader) never sees half
 * a header, and a refused config leaves the old one in place. */
static int types_header(struct cli *c, const char *out)
{
    char err[2048];
    if (!c->config_path)
        return cli_usage_error(c, "header needs -c pool.ini");
    if (cli_load_config(c) < 0)
        return EXIT_FAIL;
    char *guard = header_guard(out);
    if (guard == NULL)
        return cli_error(c, "out of memory");
    if (out == NULL) {
        int rc = typegen_write(c->cfg, guard, stdout, err, sizeof err);
        free(guard);
        if (rc == -2)
            return cli_error(c, "stdout: %s", err);
        return rc < 0 ? cli_error(c, "%s", err) : EXIT_OK;
    }
    size_t n = strlen(out);
    char *tmp = malloc(n + 16);
    if (tmp == NULL) {
        free(guard);
        return cli_error(c, "out of memory");
    }
    snprintf(tmp, n + 16, "%s.tmp.XXXXXX", out);
    int fd = mkstemp(tmp);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
    int rc = EXIT_OK;
    if (f == NULL) {
        rc = cli_error(c, "%s: %s", out, strerror(errno));
        if (fd >= 0)
            close(fd);
        goto done;
    }
    fchmod(fd, 0644);   /* mkstemp makes it 0600; a header is for everyone to read */
    int w = typegen_write(c->cfg, guard, f, err, sizeof err);
    if (w == -1) {   /* a name refused: err names the config's file and line */
        fclose(f);
        rc = cli_error(c, "%s", err);
        unlink(tmp);
        goto done;
    }
    if (fclose(f) != 0 || w < 0) {
        rc = cli_error(c, "%s: %s", out, w < 0 ? err : strerror(errno));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, out) != 0) {
        rc = cli_error(c, "%s: %s", out, strerror(errno));
        unlink(tmp);
    }
done:
    free(tmp);
    free(guard);
    return rc;
}

int cmd_types(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq types apply -c pool.ini [--db URL]\n"
        "       pgq types list [--json] [-c FILE] [--db URL]\n"
        "       pgq types header -c pool.ini [-o FILE]\n\n"
        "apply registers (or updates) every [job TYPE] section of the file in the\n"
        "database, printing each type's name; producers are then checked against\n"
        "its payload contract. list prints one registered type a line; --json:\n"
        "{\"types\":[{\"type\":T,\"queue\":Q,\"max_retries\":N,\"priority\":N,\"timeout_ms\":N,\n"
        "\"backoff_base_ms\":N,\"backoff_max_ms\":N,\"concurrency\":N|null,\"rate\":{\"count\":N,\n"
        "\"per_ms\":N,\"window_starts\":N}|null,\"running\":N|null,\"max_snoozes\":N,\n"
        "\"max_payload\":BYTES|null,\"require\":{...},\"updated_at\":TS}]}. The text form\n"
        "shows concurrency=N running=R and rate=N/D window_starts=S only for types\n"
        "with those limits (their use now), and max_payload=SIZE (none: no limit).\n"
        "header writes a C header (to -o FILE, or stdout) with one struct per job\n"
        "type from its payload contract and typed functions (pgq_add_TYPE,\n"
        "TYPE_from_job, ...): a producer or handler naming a key the contract lacks\n"
        "does not compile. Needs no database; the header needs jansson\n"
        "(README, \"Typed job map for C\").\n";
    const char *pos[3];
    int npos, r = cli_args(c, argc, argv, help, pos, 3, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    const char *sub = npos ? pos[0] : NULL;
    if (!sub)
        return cli_usage_error(c, "needs a subcommand: apply, list or header");
    if (strcmp(sub, "apply") == 0) {
        if (npos > 1)
            return cli_usage_error(c, "unexpected argument \"%s\"", pos[1]);
        c->cmd = "types apply";
        if (c->json)
            return cli_usage_error(c, "--json: not an option of pgq types apply (types list "
                                   "takes it)");
        return types_apply(c);
    }
    if (strcmp(sub, "header") == 0) {
        const char *out = NULL;
        c->cmd = "types header";
        if (c->json)
            return cli_usage_error(c, "--json: not an option of pgq types header");
        for (int i = 1; i < npos; i++) {
            if ((strcmp(pos[i], "-o") == 0 || strcmp(pos[i], "--output") == 0) && !out &&
                i + 1 < npos)
                out = pos[++i];
            else if (strncmp(pos[i], "--output=", 9) == 0 && !out)
                out = pos[i] + 9;
            else if (strcmp(pos[i], "-o") == 0 || strcmp(pos[i], "--output") == 0)
                return cli_usage_error(c, "%s needs a file name", pos[i]);
            else
                return cli_usage_error(c, "unknown argument \"%s\"", pos[i]);
        }
        if (out && !*out)
            return cli_usage_error(c, "-o needs a file name");
        return types_header(c, out);
    }
    if (npos > 1)
        return cli_usage_error(c, "unexpected argument \"%s\"", pos[1]);
    if (strcmp(sub, "list") == 0) {
        c->cmd = "types list";
        return types_list(c);
    }
    return cli_usage_error(c, "unknown subcommand \"%s\" (apply, list or header)", sub);
}
