/* The dashboard's model: queries PostgreSQL on its own thread and its own
 * connection, and publishes immutable snapshots for the views to draw.
 * Nothing in here knows about ncurses. */
#ifndef PGQ_TUI_MODEL_H
#define PGQ_TUI_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgq.h"

/* Which parts a refresh fetches (the header and queue counts always). */
enum {
    MODEL_OVERVIEW = 1u << 0,  /* throughput, pools */
    MODEL_RUNNING = 1u << 1,
    MODEL_DEAD = 1u << 2,
    MODEL_JOBS = 1u << 3,
    MODEL_HEALTH = 1u << 4,
    MODEL_ALL = 0x1fu
};

#define MODEL_TPUT_BUCKETS 60   /* throughput sparkline: this many buckets */
#define MODEL_FIELD 201         /* filter fields: up to 200 bytes */
/* Rows read per index range at each refresh: counts are exact up to this
 * (then marked estimates or lower bounds). Lower than pgq stats' cap
 * (PGQ_STATS_CAP) because a dashboard asks every second; bench/README.md
 * has what a refresh costs. */
#define MODEL_STATS_CAP 1000

/* What the operator narrowed the lists to; "" means any. */
struct model_filter {
    char queue[MODEL_FIELD], type[MODEL_FIELD], state[16], text[MODEL_FIELD];
};

struct model_query {
    unsigned parts;              /* MODEL_* bits */
    struct model_filter filter;
    int64_t detail_id;           /* > 0: also load this job's detail */
    int limit;                   /* rows per list (<= 0: 500) */
    double stale_s;              /* a pool silent this long is stale (<= 0: 60) */
    int tput_bucket_s;           /* throughput bucket width (<= 0: 10) */
    int stats_cap;               /* rows read per index range (<= 0: MODEL_STATS_CAP) */
};

struct snap_pool {
    const char *name, *host, *queues;
    int pid, workers;
    int in_flight;        /* running jobs leased by this pool, from pgq.jobs (the header's
                           * running is the sum of these and running_orphans) */
    double beat_age_s, up_s;
    bool stale;
};

/* A periodic job ([cron NAME] section), from pgq.cron. */
struct snap_cron {
    const char *name, *schedule, *timezone, *type;
    const char *last_state;   /* NULL: no job yet, or pruned */
    int64_t last_job;         /* -1: none */
    double next_in_s;         /* until the next tick the fleet recorded; < 0: overdue */
    bool has_next;
};

/* A job type with fleet-wide limits and its use now (pgq.type_use). */
struct snap_limit {
    const char *type;
    int concurrency, rate_count;   /* 0: that limit is not set */
    int64_t running, rate_ms, window_starts;
    bool blocked;                  /* at a limit: none of it starts now */
};

/* One row of the Running, Dead letters and Jobs lists. */
struct snap_job {
    int64_t id;
    const char *queue, *type, *state, *owner, *error;
    int attempts, max_retries;
    double age_s;         /* dead/jobs: since finished (or created); running: since started */
    double lease_left_s;  /* running only */
    bool scheduled;       /* ready with a future run_at */
};

struct snap_table {
    const char *name;
    int64_t bytes, live, dead;
    double vacuum_age_s, autovacuum_age_s;  /* -1: never */
};

struct snap_xact {
    int pid;
    double age_s;         /* since its transaction started */
    int64_t xmin_age;     /* transactions it holds back */
    const char *state, *user, *app, *query;
};

struct snap_lock {
    int pid;
    double wait_s;
    const char *rel, *mode, *blockers, *query;
};

/* Running jobs of one queue leased by one pool (the lease owner's pool
 * name), read once per refresh. */
struct snap_run {
    const char *queue, *pool;
    int64_t n;
};

/* A consistent picture of the queue at one moment. Immutable once
 * published; shared between threads by reference count. */
struct snapshot {
    atomic_int refs;
    uint64_t gen;                /* increases with every published snapshot */
    double taken;                /* wall clock, seconds since the epoch */
    struct model_query q;        /* what it was built for */

    char user[128];
    bool read_only;              /* may not call pgq.requeue (not a pgq_operator) */
    int64_t db_bytes;

    pgq_queue_stats *queues; size_t nqueues;
    pgq_queue_stats total;       /* sum over queues; a total's kind is the least exact of its
                                  * parts' */

    /* The queue counts (queues, total but their always-exact figures:
     * running, oldest_ready_s, paused, pools) and the throughput line
     * were read at counts_taken (wall clock), in counts_s seconds; a
     * snapshot built by model_refresh_reusing may carry an earlier one's
     * (counts_reused). */
    double counts_taken, counts_s;
    bool counts_reused;

    int64_t tput[MODEL_TPUT_BUCKETS];  /* [0] = the newest bucket */
    double tput_covered_s;       /* seconds back the buckets are complete (the newest
                                  * stats_cap done jobs reach that far); the whole line when
                                  * all were read */
    struct snap_pool *pools; size_t npools, nstale;
    struct snap_run *runs; size_t nruns;   /* when runs_read (Overview, reused counts) */
    bool runs_read;
    struct snap_limit *limits; size_t nlimits;
    int64_t running_orphans;     /* running jobs whose lease owner is no registered pool */
    /* The lists: at most q.limit rows each; a total is counted up to
     * q.stats_cap, so *_total_capped says "that many or more". */
    struct snap_cron *crons; size_t ncrons;   /* overview: the schedules */
    struct snap_job *running; size_t nrunning; int64_t running_total;
    struct snap_job *dead; size_t ndead; int64_t dead_total;
    struct snap_job *jobs; size_t njobs; int64_t jobs_total;
    bool running_total_capped, dead_total_capped, jobs_total_capped;
    struct snap_table *tables; size_t ntables;
    struct snap_xact *xacts; size_t nxacts;
    struct snap_lock *locks; size_t nlocks;

    pgq_job_detail *detail;      /* q.detail_id's detail; NULL: no such job */

    char msg[512];               /* the last action's outcome, "" if none */
    uint64_t msg_seq;            /* increases with every action outcome */

    void *priv_;                 /* the query results rows point into */
};

/* Build a snapshot synchronously on c (the model thread does this; tests
 * too). 0 and *out (refs = 1) or -1 with err. No transaction is left open. */
int model_refresh_once(pgq_conn *c, const struct model_query *q, struct snapshot **out,
                       char *err, size_t errlen) PGQ_MUSTCHECK;

/* model_refresh_once that takes the queue counts and the throughput line
 * from prev (NULL: counts them), an earlier snapshot of the same database
 * and query settings, and reads anew only the figures that stay cheap and
 * exact (running, the oldest due job's age, paused, live pools, and the
 * screens' lists). Counts them anyway when a queue prev did not list has
 * jobs now. */
int model_refresh_reusing(pgq_conn *c, const struct model_query *q, const struct snapshot *prev,
                          struct snapshot **out, char *err, size_t errlen) PGQ_MUSTCHECK;

/* How often the model thread counts again (model_count_every_s): at most
 * once per MODEL_COUNT_FACTOR times the last count's wall time, so that
 * counting takes at most 1/MODEL_COUNT_FACTOR of the server's time
 * whatever the table's size and state, but at least every
 * MODEL_COUNT_MAX_S, and at every refresh while counting is that cheap. */
#define MODEL_COUNT_FACTOR 100
#define MODEL_COUNT_MAX_S 10.0
double model_count_every_s(double count_s, double interval_s);

/* Take one more reference / drop one (frees at zero). Any thread. NULL ok. */
struct snapshot *snapshot_ref(struct snapshot *s);
void snapshot_release(struct snapshot *s);

/* Index of job id in a list, or -1. */
int snapshot_find(const struct snap_job *rows, size_t n, int64_t id);

/* ---- the running model ---------------------------------------------------- */

struct model;

enum model_action_kind { MODEL_REQUEUE_IDS, MODEL_REQUEUE_MATCHING, MODEL_CANCEL_IDS,
                         MODEL_PAUSE, MODEL_RESUME };

struct model_action {
    enum model_action_kind kind;
    int64_t *ids; size_t nids;          /* *_IDS: owned by the model once requested */
    char queue[MODEL_FIELD], type[MODEL_FIELD];  /* REQUEUE_MATCHING ("" any); PAUSE, RESUME */
};

struct model_status {
    bool have_snapshot;
    bool connected;
    char error[512];        /* the last refresh's failure, "" when it worked */
    double last_ok;         /* wall clock of the last good snapshot (0: none) */
    double error_since;     /* wall clock of the first failure in a row */
};

/* Start the model thread for url (NULL/"": the libpq environment), who is
 * recorded with every action. interval_ms between refreshes. 0 or -1. */
int model_start(const char *url, const char *who, int64_t interval_ms, struct model **out,
                char *err, size_t errlen) PGQ_MUSTCHECK;

/* Stop the thread (cancelling a query in progress) and free. NULL ok. */
void model_stop(struct model *m);

/* The newest snapshot with a reference the caller releases; NULL before the
 * first one. UI thread. */
struct snapshot *model_acquire(struct model *m);

/* Copy out the connection status. */
void model_status(struct model *m, struct model_status *st);

/* Tell the model what to fetch from now on; refetches at once if changed
 * (or always, with force). */
void model_set_query(struct model *m, const struct model_query *q, bool force);

/* Queue an action (ownership of a->ids moves to the model, even on error);
 * its outcome comes back in a later snapshot's msg. 0 or -1. */
int model_request(struct model *m, struct model_action *a);

#endif
