/* bench.h -- what the parts of pgq-bench share: options, clocks, the JSON
 * line, the no-op handler, batches of jobs and the temporary pool.ini.
 * pgq-bench is a program, not a library: these live in one process, and
 * main() owns the globals below (set once before any thread starts,
 * read-only after that, except the atomic counters). */
#ifndef PGQ_BENCH_H
#define PGQ_BENCH_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgq.h"
#include "pgq_pool.h"

#define JOB_TYPE "bench-noop"
#define MAX_SIZES 16

struct opts {
    const char *bench;      /* throughput, latency, backlog, soak, footprint, pinned,
                             * spawn */
    const char *profile;    /* default, strict, batched, exec; pinned: drain,
                             * drain-pinned, sustained */
    long jobs;              /* -1: not applicable */
    long concurrency;
    long batch;             /* batched profile: [pool] batch */
    long max_drain_s;
    long timeout_s;
    long interval_ms;
    long sizes[MAX_SIZES];  /* backlog */
    int nsizes;
    long cycles, threads, passes;
    long minutes, rate;     /* soak */
    const char *keep_done;  /* soak, pinned (and throughput when given): [pool] keep_done */
    int64_t keep_done_ms;   /* the same, parsed */
    bool keep_done_given;   /* --keep-done was on the command line */
    long seconds;           /* footprint */
    const char *pool_bin;   /* footprint: the pgq-pool binary */
    const char *exec_cmd;   /* exec profile and spawn: the command line ("/bin/true") */
    const char *pin;        /* pinned drain: "yes" or "no" */
    const char *limits;     /* throughput: none, other (another type has limits), self */
    double before_min, pin_min, after_min;   /* pinned sustained */
    long sample_s;          /* pinned sustained: seconds per report line */
};

extern struct opts g_opts;
extern char g_settings[512];   /* the server's settings as a JSON object */

/* ---- clocks --------------------------------------------------------------- */

int64_t now_ns(void);                 /* CLOCK_MONOTONIC */
/* Fields of /proc/PID/stat: ppid, utime + stime, cutime + cstime (clock
 * ticks); -1 when unreadable (writes.c). */
int proc_stat(int pid, int *ppid, int64_t *self, int64_t *children);
void sleep_ms(double ms);             /* restarts after EINTR */

/* ---- the JSON line ------------------------------------------------------- */

/* The common head of a result line, without the closing brace: system,
 * version, bench, profile, [concurrency, jobs,] settings, ok. */
void json_head(FILE *f, bool ok, bool counts);

/* s as a JSON string (quotes and escapes). */
void json_str(FILE *f, const char *s);

/* Print the head with ok:false and "error": msg, close the line, flush. */
void fail_json(const char *msg);

/* ,"name":{"n":..,"min":..,"p50":..,"p95":..,"p99":..,"max":..,"mean":..}
 * of v (sorted in place; nearest-rank percentiles). */
void print_dist(FILE *f, const char *name, double *v, size_t n);

/* ---- database -------------------------------------------------------------- */

/* Run sql with params (text) and expect `want`; NULL with a message in err
 * (prefixed with what) otherwise. The caller PQclears the result. */
PGresult *bench_query(pgq_conn *c, const char *what, const char *sql, int nparams,
                      const char *const *params, ExecStatusType want, char *err, size_t errlen);

/* Connect to $DATABASE_URL, read the server's settings into g_settings and
 * migrate (not timed). On failure the JSON line is printed already. */
int bench_open(pgq_conn **out);

/* True while unfinished (ready or running) jobs of the bench type exist, as
 * seen from c: two probes of the partial claim and lease indexes, so it
 * stays cheap however many done rows the table holds. -1 on error. */
int bench_unfinished(pgq_conn *c, char *err, size_t errlen);

/* 0 when c sees no unfinished bench job: every benchmark wants a fresh
 * database. -1 otherwise, with the JSON line printed already. */
int bench_expect_empty(pgq_conn *c);

/* Probe c (bench_unfinished) every every_ms until nothing is unfinished or
 * deadline has passed: 0 nothing left, 1 still some at the deadline, -1 on
 * error (message in err). *end, unless NULL, gets the last probe's time. */
int bench_wait_empty(pgq_conn *c, int64_t deadline, double every_ms, int64_t *end, char *err,
                     size_t errlen);

/* What the database holds of the bench type, for the check after a run
 * (a full count: never while timing). */
struct db_counts {
    int64_t done;       /* state done */
    int64_t multi;      /* claimed more than once (attempts > 1) */
    int64_t left;       /* ready or running */
};
int bench_db_counts(pgq_conn *c, struct db_counts *out, char *err, size_t errlen);

/* ---- the handler and the pool ------------------------------------------- */

/* Per job order k (payload {"i":k}, 0 <= k < g_njobs): handler calls, and
 * for latency the handler start. g_distinct counts jobs handled at least
 * once; when it reaches g_target, bench_wait_handled() returns. */
extern atomic_int *g_calls;
extern _Atomic int64_t *g_start_ns;
extern long g_njobs;
extern atomic_long g_distinct;
extern atomic_long g_bad_payload;
extern long g_target;

/* The in-process no-op callback ("callback noop"). */
int bench_noop(pgq_ctx *ctx, void *arg, char *err, size_t errlen);

/* One more job handled (g_distinct); wakes bench_wait_handled at g_target. */
void bench_handled_one(void);

/* A pool event callback (pgq_pool_on_event) that counts DONE events with
 * bench_handled_one: the exec profile's signal, whose handlers run in
 * other processes. A DONE is reported once its end committed. */
void bench_count_done(const pgq_event *ev, void *arg);

/* Wait until g_distinct >= g_target or deadline_ns; true when reached. */
bool bench_wait_handled(int64_t deadline_ns);

/* Of jobs 0..n-1: how many the handler ran more than once, and not at all. */
void bench_count_calls(long n, long *dups, long *missing);

/* ---- adding jobs ------------------------------------------------------------- */

/* Room for one pgq_add_batch of up to cap jobs, reused batch after batch. */
struct bench_batch {
    pgq_add_item *items;
    pgq_add_result *res;
    char (*payloads)[32];
};

/* Allocate for cap jobs; -1 when out of memory. bench_batch_free after
 * either. */
int bench_batch_init(struct bench_batch *b, size_t cap);

/* Add jobs first..first+n-1 (n <= cap, payload {"i":k}) with one
 * pgq_add_batch on c; -1 with pgq_add_batch's message in err. */
int bench_batch_add(pgq_conn *c, struct bench_batch *b, long first, size_t n, char *err,
                    size_t errlen);

/* Free the buffers (none after a failed init). */
void bench_batch_free(struct bench_batch *b);

/* Add jobs 0..n-1 in pgq_add_batch calls of 5000; -1 with the failing
 * batch named in err. */
int bench_enqueue_all(pgq_conn *c, long n, char *err, size_t errlen);

/* Until watch sees no unfinished job or deadline: 1 drained, 0 deadline,
 * -1 error. First sleeps until g_target jobs were handled (bench_noop, or
 * bench_count_done for exec handlers), then probes every 0.5 ms. *end gets
 * the time of the probe that saw none. */
int bench_watch_drain(pgq_conn *watch, int64_t deadline, int64_t *end, char *err, size_t errlen);

/* What goes into the temporary pool.ini. */
struct pool_spec {
    long workers;
    const char *poll, *heartbeat, *lease_ttl, *shutdown_timeout;
    const char *keep_done;      /* NULL: the default */
    long batch;                 /* 0: no batch key (the default) */
    const char *handler;        /* "callback noop", "exec /bin/true" */
    const char *limits;         /* NULL/"none"; "other": a second type with concurrency 1
                                 * and a rate (none of its jobs run); "self": the bench type
                                 * with limits it never reaches (the limited claim path) */
};

/* The spec for g_opts.profile: the bench settings (poll 10ms, heartbeat 1s,
 * lease 30s, shutdown 5s), plus batch or the exec handler. */
struct pool_spec bench_pool_spec(void);

/* The spec as a JSON object (for the result line) into buf. */
void pool_spec_json(const struct pool_spec *s, char *buf, size_t len);

/* Write spec as a pool.ini to a new temporary file; its path into path
 * (PATH_MAX). The caller unlinks it. */
int pool_ini_write(const struct pool_spec *s, char *path, size_t pathlen, char *err, size_t errlen);

/* For the embedded pool of throughput, latency and soak: expect an empty
 * database (bench_expect_empty), describe s into pooljs (pool_spec_json),
 * then write the ini, load it, register its job type, create the pool and
 * register the noop callback when the handler is one. -1 on failure, with
 * the JSON line printed already. */
int bench_pool_prepare(pgq_conn *c, const struct pool_spec *s, pgq_pool **out, char *pooljs,
                       size_t pooljslen);

/* pgq_pool_start; on failure stop and join what started (a start may fail
 * half-way), print the JSON line and return -1. */
int bench_pool_start(pgq_pool *p);

/* ---- the fixed-rate producer and the soak's pool (soak.c) ------------------- */

/* A producer thread (bench_producer_main) adds rate jobs/s on its own
 * connection c from t0 on: every 10 ms one pgq_add_batch of what is due.
 * Set stop to end it; rc becomes -1 (after err) when an add failed. */
struct producer {
    pgq_conn *c;
    long rate;
    int64_t t0;
    atomic_long added;
    atomic_bool stop;
    atomic_int rc;
    char err[1024];
};
void *bench_producer_main(void *arg);

/* The soak's pool: the bench spec with poll and heartbeat at their
 * pool.ini defaults (1s, 10s) and keep_done from --keep-done. */
struct pool_spec bench_soak_spec(void);

/* ---- per-job writes (writes.c) ----------------------------------------------- */

#define WRITES_MAX_TABLES 32
#define WRITES_MAX_RMGR 24
#define WRITES_MAX_TYPES 64

/* n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del of each table of schema pgq. */
struct writes_tables {
    int n;
    char name[WRITES_MAX_TABLES][64];
    int64_t tup[WRITES_MAX_TABLES][4];
};

/* One measured window: WAL position, tuple counters, server CPU at both
 * ends, and what pg_waldump counted between them. */
struct writes {
    char lsn0[32], lsn1[32];
    int64_t wal0, wal1;
    struct writes_tables t0, t1;
    bool stats_settled;
    int postmaster;             /* -1: the server is not on this machine */
    int64_t cpu0, cpu1;         /* ticks; -1 unreadable */
    bool waldump_ok;
    int waldump_exit;
    char waldump_err[512];
    int64_t records, fpi_bytes, dumped_bytes, index_entries;
    int nrmgr;
    char rmgr[WRITES_MAX_RMGR][32];
    int64_t rmgr_bytes[WRITES_MAX_RMGR];
    int ntypes;                 /* per record type ("Heap/UPDATE") */
    char type[WRITES_MAX_TYPES][48];
    int64_t type_n[WRITES_MAX_TYPES], type_bytes[WRITES_MAX_TYPES];
};

/* Open the window on c; other (may be NULL) is the second connection of
 * this process. Waits (up to 10 s) until no other client backend is left on
 * the server. -1 with a message in err. */
int writes_begin(pgq_conn *c, pgq_conn *other, struct writes *w, char *err, size_t errlen);

/* Close it once the pool has stopped; other (may be NULL) is the second
 * connection of this process. Waits for the counters to settle and runs
 * pg_waldump (its failure is recorded in w, not returned). -1 on a query
 * error. */
int writes_end(pgq_conn *c, pgq_conn *other, struct writes *w, char *err, size_t errlen);

/* ,"writes":{...} per job of njobs. */
void writes_json(FILE *f, const struct writes *w, long njobs);

/* ---- the benchmarks ---------------------------------------------------------- */

/* Each prints its JSON line(s) and returns the exit code (0 ok, 1 not). */
int run_throughput(void);
int run_latency(void);
int run_backlog(void);
int run_soak(void);
int run_footprint(void);
int run_pinned(void);
int run_spawn(void);
int run_dashboard(void);

#endif
