/* pgq cron list: the periodic jobs of the fleet ([cron NAME] sections), each
 * with its next run and its last job. The schedules come from pgq.cron (a
 * row per schedule some pool registered) and, with -c, from the file too:
 * a schedule of the file no pool has registered yet is listed with no last
 * job, and its next run is computed from the file's section; without the
 * file the next run is the one the fleet last recorded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cron.h"
#include "tz.h"

struct entry {
    const char *name, *schedule, *timezone, *type, *queue;
    int64_t next_ms, last_tick_ms, last_job;
    const char *last_state;     /* NULL: no job, or pruned */
    bool in_config, registered;
};

static const char *fmt_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || !gmtime_r(&t, &tm))
        return NULL;
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_json(const struct entry *e, size_t n)
{
    char a[32], b[32];
    fputs("{\"schedules\":[", stdout);
    for (size_t i = 0; i < n; i++) {
        const char *next = fmt_time(e[i].next_ms, a, sizeof a);
        const char *last = fmt_time(e[i].last_tick_ms, b, sizeof b);
        fputs(i ? ",{" : "{", stdout);
        json_kv_str(stdout, true, "name", e[i].name);
        json_kv_str(stdout, false, "schedule", e[i].schedule);
        json_kv_str(stdout, false, "timezone", e[i].timezone);
        json_kv_str(stdout, false, "type", e[i].type);
        json_kv_str(stdout, false, "queue", e[i].queue);
        json_kv_str(stdout, false, "next_run", next);
        json_kv_str(stdout, false, "last_tick", last);
        json_key(stdout, false, "last_job");
        if (e[i].last_job < 0) {
            fputs("null", stdout);
        } else {
            fputc('{', stdout);
            json_kv_int(stdout, true, "id", e[i].last_job);
            json_kv_str(stdout, false, "state", e[i].last_state);
            fputc('}', stdout);
        }
        json_kv_bool(stdout, false, "registered", e[i].registered);
        fputc('}', stdout);
    }
    fputs("]}\n", stdout);
}

static void print_text(const struct entry *e, size_t n)
{
    int wn = 4, ws = 8, wz = 8, wt = 4;
    char a[32], job[64];
    for (size_t i = 0; i < n; i++) {
        int l;
        if ((l = (int)strlen(e[i].name)) > wn) wn = l;
        if ((l = (int)strlen(e[i].schedule)) > ws) ws = l;
        if ((l = (int)strlen(e[i].timezone)) > wz) wz = l;
        if ((l = (int)strlen(e[i].type)) > wt) wt = l;
    }
    printf("%-*s  %-*s  %-*s  %-*s  %-20s  %s\n", wn, "NAME", ws, "SCHEDULE", wz, "TIMEZONE", wt,
           "TYPE", "NEXT RUN", "LAST JOB");
    for (size_t i = 0; i < n; i++) {
        const char *next = fmt_time(e[i].next_ms, a, sizeof a);
        if (e[i].last_job >= 0)
            snprintf(job, sizeof job, "%lld %s", (long long)e[i].last_job,
                     e[i].last_state ? e[i].last_state : "(pruned)");
        else
            snprintf(job, sizeof job, "%s", e[i].registered ? "-" : "- (no pool has it yet)");
        printf("%-*s  %-*s  %-*s  %-*s  %-20s  %s\n", wn, e[i].name, ws, e[i].schedule, wz,
               e[i].timezone, wt, e[i].type, next ? next : "-", job);
    }
}

static int cron_list(struct cli *c)
{
    char err[1024];
    pgq_cron_row *rows = NULL;
    size_t nrows = 0;
    if (cli_connect(c, false) < 0)
        return EXIT_FAIL;
    if (pgq_cron_list(c->conn, &rows, &nrows, err, sizeof err) < 0)
        return cli_error(c, "%s", err);
    size_t ncfg = c->cfg ? c->cfg->ncrons : 0;
    struct entry *e = calloc(nrows + ncfg + 1, sizeof *e);
    if (!e) {
        pgq_cron_rows_free(rows, nrows);
        return cli_error(c, "out of memory");
    }
    size_t n = 0;
    int64_t now = now_ms();
    for (size_t i = 0; i < nrows; i++, n++) {
        e[n] = (struct entry){ .name = rows[i].name, .schedule = rows[i].schedule,
                               .timezone = rows[i].timezone, .type = rows[i].type,
                               .queue = rows[i].queue, .next_ms = rows[i].next_tick_ms,
                               .last_tick_ms = rows[i].last_tick_ms, .last_job = rows[i].last_job,
                               .last_state = rows[i].last_job_state, .registered = true };
    }
    /* The file's sections: their next run from the section itself. */
    for (size_t k = 0; k < ncfg; k++) {
        const pgq_cfg_cron *cr = &c->cfg->crons[k];
        size_t i;
        for (i = 0; i < n && strcmp(e[i].name, cr->name) != 0; i++)
            ;
        if (i == n) {
            e[n++] = (struct entry){ .name = cr->name, .schedule = cr->schedule,
                                     .timezone = tz_name(cr->zone), .type = cr->type,
                                     .queue = cr->queue, .last_tick_ms = -1, .last_job = -1 };
        }
        e[i].in_config = true;
        if (strcmp(e[i].schedule, cr->schedule) == 0 && strcmp(e[i].timezone, tz_name(cr->zone)) == 0)
            e[i].next_ms = pgq_cron_next(cr->cron, now);
    }
    /* by name, as the database lists them */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(e[j - 1].name, e[j].name) > 0; j--) {
            struct entry t = e[j];
            e[j] = e[j - 1];
            e[j - 1] = t;
        }
    if (c->json)
        print_json(e, n);
    else
        print_text(e, n);
    free(e);
    pgq_cron_rows_free(rows, nrows);
    return EXIT_OK;
}

int cmd_cron(struct cli *c, int argc, char **argv)
{
    static const char help[] =
        "usage: pgq cron list [--json] [-c FILE] [--db URL]\n\n"
        "The periodic jobs ([cron NAME] sections): one a line with its schedule, time\n"
        "zone, job type, next run (UTC) and last job (id and state). Every pool that\n"
        "has a section registers it; with -c FILE the file's sections are listed too,\n"
        "and their next run computed from the file. --json:\n"
        "{\"schedules\":[{\"name\":N,\"schedule\":S,\"timezone\":Z,\"type\":T,\"queue\":Q|null,\n"
        "\"next_run\":TS|null,\"last_tick\":TS|null,\"last_job\":{\"id\":N,\"state\":S|null}|null,\n"
        "\"registered\":B}]}.\n";
    const char *pos[1];
    int npos, r = cli_args(c, argc, argv, help, pos, 1, &npos);
    if (r)
        return r > 0 ? EXIT_OK : EXIT_USAGE;
    if (npos == 0)
        return cli_usage_error(c, "needs a subcommand: list");
    if (strcmp(pos[0], "list") != 0)
        return cli_usage_error(c, "unknown subcommand \"%s\" (list)", pos[0]);
    c->cmd = "cron list";
    return cron_list(c);
}
