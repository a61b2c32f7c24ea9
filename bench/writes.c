/* writes.c -- what a benchmark run wrote and what it cost the server, per
 * job: the figures of issue 10's "write less per job".
 *
 * A window is opened just before the jobs are added and closed once the
 * pool has stopped; four instruments read at both ends:
 *
 * - WAL: pg_current_wal_lsn() (the position written so far). The byte
 *   difference is every WAL record of the cluster in the window: the jobs'
 *   inserts, updates, index entries, commits, and whatever autovacuum and
 *   checkpoints (full-page images) did meanwhile.
 * - Tuples: n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del of every table of
 *   schema pgq (pg_stat_user_tables). PostgreSQL 15 keeps these counters in
 *   each backend and publishes them lazily (at most once a second, at the
 *   latest 10 s after the backend went idle, and at exit). To read them
 *   complete, the end waits until the pool's backends are gone (they flush
 *   as they exit), makes the remaining backends of this process publish
 *   (pg_stat_force_next_flush(), which takes effect when the statement
 *   ends, i.e. before the client sees its result), then re-reads with a
 *   fresh snapshot (pg_stat_clear_snapshot()) until two reads 200 ms apart
 *   agree. `stats_settled` says whether they did.
 * - Records: pg_waldump --stats=record over the LSN range (the server must
 *   keep that WAL: run.sh sets wal_keep_size): records, full-page-image
 *   bytes, bytes per resource manager, and index entries written (B-tree
 *   INSERT_LEAF, INSERT_POST, SPLIT_L and SPLIT_R records: each adds one
 *   tuple; an upper-level split, rare, counts too). The tool and the WAL
 *   directory come from $PGQ_WALDUMP / $PGQ_WAL_DIR, else from
 *   $PGQ_PG_BINDIR / $PGQ_PG_DATADIR (scripts/with-postgres.sh exports
 *   them); when neither works these figures are null and `waldump_error`
 *   says why.
 * - Server CPU: utime + stime of the postmaster (found as the parent of
 *   this session's backend) and of all its children from /proc, plus the
 *   postmaster's cutime + cstime, which hold the children that exited in
 *   the window (the pool's backends, autovacuum workers). Both ends are
 *   read once no other client backend is left (the previous run's, the
 *   pool's): a child reaped between the two reads would be in neither.
 *   Null when the server is not on this machine. */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ---- WAL position ------------------------------------------------------------ */

static int read_lsn(pgq_conn *c, char *out, size_t len, int64_t *bytes, char *err, size_t errlen)
{
    PGresult *r = bench_query(c, "reading pg_current_wal_lsn()",
                              "SELECT pg_current_wal_lsn()::text", 0, NULL, PGRES_TUPLES_OK,
                              err, errlen);
    if (!r)
        return -1;
    snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    unsigned long long hi, lo;
    if (sscanf(out, "%llx/%llx", &hi, &lo) != 2) {
        snprintf(err, errlen, "pg_current_wal_lsn() returned \"%s\", not an LSN", out);
        return -1;
    }
    *bytes = (int64_t)(hi << 32 | lo);
    return 0;
}

/* ---- server CPU --------------------------------------------------------------- */

int proc_stat(int pid, int *ppid, int64_t *self, int64_t *children)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')');   /* comm may hold spaces and parentheses */
    long long ut, st, cut, cst;
    if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lld %lld %lld %lld",
                     ppid, &ut, &st, &cut, &cst) != 5)
        return -1;
    *self = ut + st;
    *children = cut + cst;
    return 0;
}

/* The postmaster: the parent of this session's backend. -1 when that is
 * not a process of this machine. */
static int find_postmaster(pgq_conn *c)
{
    int backend = PQbackendPID(pgq_conn_pg(c)), ppid;
    int64_t self, children;
    if (backend <= 0 || proc_stat(backend, &ppid, &self, &children) < 0 || ppid <= 1)
        return -1;
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", ppid);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    bool pg = fgets(comm, sizeof comm, f) && strncmp(comm, "postgres", 8) == 0;
    fclose(f);
    return pg ? ppid : -1;
}

/* Ticks of the postmaster, its live children and its reaped ones. */
static int64_t server_ticks(int postmaster)
{
    int ppid;
    int64_t self, children;
    if (postmaster <= 0 || proc_stat(postmaster, &ppid, &self, &children) < 0)
        return -1;
    int64_t sum = self + children;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        int64_t s, ch;
        if (*end || pid <= 0 || pid == postmaster)
            continue;
        if (proc_stat((int)pid, &ppid, &s, &ch) == 0 && ppid == postmaster)
            sum += s;   /* a backend's own children are none of ours */
    }
    closedir(d);
    return sum;
}

/* ---- tuples ------------------------------------------------------------------------ */

static int read_tuples(pgq_conn *c, struct writes_tables *t, char *err, size_t errlen)
{
    const char *params[1] = { "pgq" };
    PGresult *r = bench_query(c, "clearing the statistics snapshot",
                              "SELECT pg_stat_clear_snapshot()", 0, NULL, PGRES_TUPLES_OK, err,
                              errlen);
    if (!r)
        return -1;
    PQclear(r);
    r = bench_query(c, "reading pg_stat_user_tables",
        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables"
        " WHERE schemaname = $1 ORDER BY relname", 1, params, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n > WRITES_MAX_TABLES) {
        snprintf(err, errlen, "schema pgq has %d tables, pgq-bench counts at most %d", n,
                 WRITES_MAX_TABLES);
        PQclear(r);
        return -1;
    }
    t->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(t->name[i], sizeof t->name[i], "%s", PQgetvalue(r, i, 0));
        for (int k = 0; k < 4; k++)
            t->tup[i][k] = strtoll(PQgetvalue(r, i, 1 + k), NULL, 10);
    }
    PQclear(r);
    return 0;
}

static bool same_tuples(const struct writes_tables *a, const struct writes_tables *b)
{
    return a->n == b->n && memcmp(a->tup, b->tup, sizeof a->tup[0] * (size_t)a->n) == 0;
}

/* Make c's backend publish its pending counters. */
static int force_flush(pgq_conn *c, char *err, size_t errlen)
{
    PGresult *r = bench_query(c, "pg_stat_force_next_flush()", "SELECT pg_stat_force_next_flush()",
                              0, NULL, PGRES_TUPLES_OK, err, errlen);
    if (!r)
        return -1;
    PQclear(r);
    return 0;
}

/* Until no client backend but ours (c, other) is left, at most 10 s: in
 * this database (all_dbs false) or in any. Exiting backends publish their
 * counters, and their CPU moves from their own /proc entry to the
 * postmaster's cutime, a move that a reading in between would miss. */
static int wait_others_gone(pgq_conn *c, pgq_conn *other, bool all_dbs, char *err,
                            size_t errlen)
{
    char a[16], b[16];
    snprintf(a, sizeof a, "%d", PQbackendPID(pgq_conn_pg(c)));
    snprintf(b, sizeof b, "%d", other ? PQbackendPID(pgq_conn_pg(other)) : 0);
    const char *params[3] = { a, b, all_dbs ? "t" : "f" };
    for (int i = 0; i < 200; i++) {
        PGresult *r = bench_query(c, "waiting for other backends to exit",
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE ($3::bool OR datname = current_database())"
            "   AND backend_type = 'client backend' AND pid NOT IN ($1::int, $2::int)",
            3, params, PGRES_TUPLES_OK, err, errlen);
        if (!r)
            return -1;
        bool gone = strcmp(PQgetvalue(r, 0, 0), "0") == 0;
        PQclear(r);
        if (gone)
            return 0;
        sleep_ms(50);
    }
    return 0;   /* read anyway; stats_settled will tell */
}

static int read_tuples_settled(pgq_conn *c, pgq_conn *other, struct writes_tables *t,
                               bool *settled, char *err, size_t errlen)
{
    struct writes_tables prev;
    if (wait_others_gone(c, other, false, err, errlen) < 0 || force_flush(c, err, errlen) < 0 ||
        (other && force_flush(other, err, errlen) < 0) || read_tuples(c, &prev, err, errlen) < 0)
        return -1;
    *settled = false;
    for (int i = 0; i < 25 && !*settled; i++) {
        sleep_ms(200);
        if (force_flush(c, err, errlen) < 0 || read_tuples(c, t, err, errlen) < 0)
            return -1;
        *settled = same_tuples(&prev, t);
        prev = *t;
    }
    return 0;
}

/* ---- pg_waldump ------------------------------------------------------------------- */

static const char *waldump_path(char *buf, size_t len)
{
    const char *p = getenv("PGQ_WALDUMP"), *bindir = getenv("PGQ_PG_BINDIR");
    if (p && *p)
        return p;
    snprintf(buf, len, "%s/pg_waldump", bindir && *bindir ? bindir : "/usr/lib/postgresql/15/bin");
    return buf;
}

static int wal_dir(char *buf, size_t len, char *err, size_t errlen)
{
    const char *p = getenv("PGQ_WAL_DIR"), *data = getenv("PGQ_PG_DATADIR");
    if (p && *p)
        snprintf(buf, len, "%s", p);
    else if (data && *data)
        snprintf(buf, len, "%s/pg_wal", data);
    else {
        snprintf(err, errlen, "no WAL directory: set PGQ_WAL_DIR (or PGQ_PG_DATADIR)");
        return -1;
    }
    return 0;
}

/* One "Rmgr/TYPE  N (pct)  rec (pct)  fpi (pct)  combined (pct)" line. */
static void add_stat_line(struct writes *w, const char *line)
{
    char name[128];
    long long n, rec, fpi, comb;
    if (sscanf(line, "%127s %lld (%*[^)]) %lld (%*[^)]) %lld (%*[^)]) %lld", name, &n, &rec,
               &fpi, &comb) != 5)
        return;
    char *slash = strchr(name, '/');
    if (!slash)
        return;   /* the header and the Total line */
    if (w->ntypes < WRITES_MAX_TYPES) {
        int t = w->ntypes++;
        snprintf(w->type[t], sizeof w->type[t], "%.47s", name);
        w->type_n[t] = n;
        w->type_bytes[t] = comb;
    }
    *slash = '\0';
    const char *type = slash + 1;
    w->records += n;
    w->fpi_bytes += fpi;
    w->dumped_bytes += comb;
    if (strcmp(name, "Btree") == 0 &&
        (strncmp(type, "INSERT_LEAF", 11) == 0 || strncmp(type, "INSERT_POST", 11) == 0 ||
         strncmp(type, "SPLIT_L", 7) == 0 || strncmp(type, "SPLIT_R", 7) == 0))
        w->index_entries += n;
    int k;
    for (k = 0; k < w->nrmgr; k++)
        if (strcmp(w->rmgr[k], name) == 0)
            break;
    if (k == w->nrmgr) {
        if (k == WRITES_MAX_RMGR)
            return;
        snprintf(w->rmgr[k], sizeof w->rmgr[k], "%.31s", name);
        w->rmgr_bytes[k] = 0;
        w->nrmgr++;
    }
    w->rmgr_bytes[k] += comb;
}

/* pg_waldump --stats=record -p DIR -s LSN0 -e LSN1, parsed into w. */
static int run_waldump(struct writes *w, char *err, size_t errlen)
{
    char tool[PATH_MAX], dir[PATH_MAX];
    const char *bin = waldump_path(tool, sizeof tool);
    if (wal_dir(dir, sizeof dir, err, errlen) < 0)
        return -1;
    if (access(bin, X_OK) != 0) {
        snprintf(err, errlen, "pg_waldump: %.300s: %s (set PGQ_WALDUMP)", bin, strerror(errno));
        return -1;
    }
    int fds[2];
    if (pipe(fds) < 0) {
        snprintf(err, errlen, "pg_waldump: pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "pg_waldump: fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 2);
        close(fds[0]);
        close(fds[1]);
        execl(bin, "pg_waldump", "--stats=record", "-p", dir, "-s", w->lsn0, "-e", w->lsn1,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    if (!f) {
        close(fds[0]);
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "pg_waldump: fdopen: %s", strerror(errno));
        return -1;
    }
    char line[512];
    w->records = w->fpi_bytes = w->dumped_bytes = w->index_entries = 0;
    w->nrmgr = w->ntypes = 0;
    while (fgets(line, sizeof line, f))
        add_stat_line(w, line);
    fclose(f);
    int status;
    waitpid(pid, &status, 0);
    /* pg_waldump prints its statistics before it reports a bad record at
     * the end of the range: what it counted stands, the exit code is kept. */
    if (w->records == 0) {
        snprintf(err, errlen, "pg_waldump %.150s over %s..%s in %.150s counted no records (exit %d)",
                 bin, w->lsn0, w->lsn1, dir, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    w->waldump_exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return 0;
}

/* ---- the window --------------------------------------------------------------------- */

int writes_begin(pgq_conn *c, pgq_conn *other, struct writes *w, char *err, size_t errlen)
{
    *w = (struct writes){ .postmaster = find_postmaster(c) };
    /* The previous run's backends (another database) may still be exiting;
     * the migration's and registration's counters are published first, so
     * that they are not counted as the run's. */
    if (wait_others_gone(c, other, true, err, errlen) < 0 || force_flush(c, err, errlen) < 0 ||
        (other && force_flush(other, err, errlen) < 0) || read_tuples(c, &w->t0, err, errlen) < 0)
        return -1;
    w->cpu0 = server_ticks(w->postmaster);
    return read_lsn(c, w->lsn0, sizeof w->lsn0, &w->wal0, err, errlen);
}

int writes_end(pgq_conn *c, pgq_conn *other, struct writes *w, char *err, size_t errlen)
{
    if (wait_others_gone(c, other, false, err, errlen) < 0 ||
        read_lsn(c, w->lsn1, sizeof w->lsn1, &w->wal1, err, errlen) < 0)
        return -1;
    w->cpu1 = server_ticks(w->postmaster);
    if (read_tuples_settled(c, other, &w->t1, &w->stats_settled, err, errlen) < 0)
        return -1;
    w->waldump_ok = run_waldump(w, w->waldump_err, sizeof w->waldump_err) == 0;
    return 0;
}

void writes_json(FILE *f, const struct writes *w, long njobs)
{
    double n = (double)njobs;
    long hz = sysconf(_SC_CLK_TCK);
    fprintf(f, ",\"writes\":{\"lsn_start\":\"%s\",\"lsn_end\":\"%s\",\"wal_bytes\":%lld,"
            "\"wal_bytes_per_job\":%.1f", w->lsn0, w->lsn1, (long long)(w->wal1 - w->wal0),
            (double)(w->wal1 - w->wal0) / n);
    /* per table and in all: ins, upd, hot_upd, del per job */
    static const char *const keys[4] = { "ins", "upd", "hot_upd", "del" };
    int64_t all[4] = { 0 };
    fputs(",\"tuples_per_job\":{", f);
    bool first = true;
    for (int i = 0; i < w->t1.n; i++) {
        int64_t d[4] = { 0 };
        for (int j = 0; j < w->t0.n; j++)
            if (strcmp(w->t0.name[j], w->t1.name[i]) == 0)
                memcpy(d, w->t0.tup[j], sizeof d);
        for (int k = 0; k < 4; k++) {
            d[k] = w->t1.tup[i][k] - d[k];
            all[k] += d[k];
        }
        if (!d[0] && !d[1] && !d[2] && !d[3])
            continue;
        fprintf(f, "%s\"%s\":{", first ? "" : ",", w->t1.name[i]);
        for (int k = 0; k < 4; k++)
            fprintf(f, "%s\"%s\":%.3f", k ? "," : "", keys[k], (double)d[k] / n);
        fputc('}', f);
        first = false;
    }
    fprintf(f, "%s\"all\":{", first ? "" : ",");
    for (int k = 0; k < 4; k++)
        fprintf(f, "%s\"%s\":%.3f", k ? "," : "", keys[k], (double)all[k] / n);
    fprintf(f, "}},\"stats_settled\":%s", w->stats_settled ? "true" : "false");
    if (w->waldump_ok) {
        fprintf(f, ",\"wal_records_per_job\":%.2f,\"index_entries_per_job\":%.3f,"
                "\"fpi_bytes_per_job\":%.1f,\"waldump_bytes_per_job\":%.1f,\"waldump_exit\":%d",
                (double)w->records / n, (double)w->index_entries / n,
                (double)w->fpi_bytes / n, (double)w->dumped_bytes / n, w->waldump_exit);
        fputs(",\"wal_bytes_per_job_by_rmgr\":{", f);
        for (int k = 0; k < w->nrmgr; k++)
            fprintf(f, "%s\"%s\":%.1f", k ? "," : "", w->rmgr[k], (double)w->rmgr_bytes[k] / n);
        /* records and bytes per job of each type seen at least once per
         * 100 jobs (the rest is background: checkpoints, vacuum) */
        fputs("},\"wal_per_job_by_type\":{", f);
        bool first_type = true;
        for (int k = 0; k < w->ntypes; k++) {
            if ((double)w->type_n[k] < n / 100)
                continue;
            fprintf(f, "%s\"%s\":{\"n\":%.3f,\"bytes\":%.1f}", first_type ? "" : ",", w->type[k],
                    (double)w->type_n[k] / n, (double)w->type_bytes[k] / n);
            first_type = false;
        }
        fputc('}', f);
    } else {
        fputs(",\"wal_records_per_job\":null,\"index_entries_per_job\":null,"
              "\"fpi_bytes_per_job\":null,\"waldump_error\":", f);
        json_str(f, w->waldump_err);
    }
    if (w->cpu0 >= 0 && w->cpu1 >= 0 && hz > 0)
        fprintf(f, ",\"server_cpu_us_per_job\":%.1f",
                (double)(w->cpu1 - w->cpu0) * 1e6 / (double)hz / n);
    else
        fputs(",\"server_cpu_us_per_job\":null", f);
    fputc('}', f);
}
