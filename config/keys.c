/* The pool.ini key table (keys.h): every key with its section, value kind,
 * place in the structs, default, bounds and documentation, and the
 * cross-field rules checked when a section is complete. Data only, apart
 * from the lookup. */
#include "keys.h"

#include <string.h>

#define MS_S 1000LL
#define MS_M (60 * MS_S)
#define MS_H (60 * MS_M)
#define MS_D (24 * MS_H)

#define CFG(f) offsetof(pgq_cfg, f)
#define TYP(f) offsetof(pgq_cfg_type, f)
#define CRN(f) offsetof(pgq_cfg_cron, f)

const struct cfg_key cfg_keys[] = {
    { .sec = SEC_DATABASE, .name = "url", .kind = V_STRING, .off = CFG(db_url),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "PostgreSQL connection URL. If absent: $DATABASE_URL; --db on the command line beats both." },
    { .sec = SEC_DATABASE, .name = "pooler", .kind = V_POOLER, .off = CFG(pooler),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "none",
      .doc = "What url points at: none (PostgreSQL itself), session or transaction (a PgBouncer "
             "pool_mode). transaction: no prepared statements or session settings, and no "
             "LISTEN through it (see listen_url)." },
    { .sec = SEC_DATABASE, .name = "listen_url", .kind = V_STRING, .off = CFG(listen_url),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "With pooler = transaction: a direct URL (PostgreSQL itself) for the pool's one "
             "LISTEN connection, so new jobs wake workers at once. Absent: workers poll." },
    { .sec = SEC_DATABASE, .name = "handler_url", .kind = V_STRING, .off = CFG(handler_url),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "The DATABASE_URL given to exec handlers instead of the pool's own: a user in "
             "the role pgq_handler, which can act only on its own job by lease token (pgq "
             "once). Absent: handlers get the pool's URL and its rights (see README, "
             "\"Roles and grants\")." },

    { .sec = SEC_POOL, .name = "workers", .kind = V_INT, .off = CFG(workers),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "8", .min = 1, .max = 256,
      .doc = "Worker threads, one database connection each." },
    { .sec = SEC_POOL, .name = "batch", .kind = V_INT, .off = CFG(batch),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL, .min = 1, .max = 1000,
      .doc = "Jobs claimed and acknowledged per statement; each worker still runs one job at a "
             "time. Absent (the default): adaptive -- a claim takes a job for every idle worker "
             "plus, when jobs are short, a small buffer ahead (none for long jobs), and "
             "successes of several workers are recorded together; an idle pool starts a new "
             "job at once. 1: strict -- each worker completes its job and claims the next in "
             "one transaction: no job is held in a buffer and a success is committed before "
             "the worker moves on, at one commit per job (about a fifth of the adaptive "
             "throughput on short jobs). N > 1: always up to N per claim and per ack "
             "statement, for many short jobs. Buffered and done-not-recorded jobs keep "
             "renewed leases; a crash makes them run again, as any crash does." },
    { .sec = SEC_POOL, .name = "queues", .kind = V_LIST, .off = CFG(queues),
      .count_off = CFG(nqueues), .line_off = NO_OFF, .def = "default",
      .doc = "Queues this pool claims from, comma-separated." },
    { .sec = SEC_POOL, .name = "lease_ttl", .kind = V_DURATION, .off = CFG(lease_ttl_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "30s", .min = MS_S, .max = MS_D,
      .doc = "How long a claimed job stays leased without a heartbeat; "
             "a job whose lease expires is retried by any live pool." },
    { .sec = SEC_POOL, .name = "heartbeat", .kind = V_DURATION, .off = CFG(heartbeat_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "10s", .min = 100, .max = MS_H,
      .doc = "How often the leases of in-flight jobs are renewed; must be shorter than lease_ttl." },
    { .sec = SEC_POOL, .name = "poll", .kind = V_DURATION, .off = CFG(poll_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1s", .min = 10, .max = MS_H,
      .doc = "Fallback poll for scheduled jobs and retries (new jobs wake a worker at once via LISTEN/NOTIFY)." },
    { .sec = SEC_POOL, .name = "shutdown_timeout", .kind = V_DURATION, .off = CFG(shutdown_timeout_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "30s", .min = 0, .max = MS_H,
      .doc = "On SIGTERM/SIGINT, how long in-flight jobs may finish before their leases are released." },
    { .sec = SEC_POOL, .name = "keep_done", .kind = V_DURATION, .off = CFG(keep_done_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1d", .min = 0, .max = 3650 * MS_D,
      .doc = "Retention of done jobs; 0 deletes them at once." },
    { .sec = SEC_POOL, .name = "keep_dead", .kind = V_DURATION, .off = CFG(keep_dead_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "30d", .min = 0, .max = 3650 * MS_D,
      .doc = "Retention of dead jobs (the dead-letter list)." },
    { .sec = SEC_POOL, .name = "metrics_listen", .kind = V_LISTEN, .off = CFG(metrics_listen),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "Serve Prometheus metrics over HTTP at GET /metrics on this HOST:PORT (e.g. "
             "127.0.0.1:9464; [::1]:9464; port 0: any free port, logged). Absent: off. Plain "
             "HTTP without authentication: bind to a loopback or private address." },

    { .sec = SEC_JOB, .name = "queue", .kind = V_NAME, .off = TYP(queue),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "default",
      .doc = "Queue that jobs of this type go to unless the producer names another." },
    { .sec = SEC_JOB, .name = "handler", .kind = V_HANDLER, .off = TYP(handler_kind),
      .count_off = NO_OFF, .line_off = TYP(handler_line), .def = NULL, .flags = F_REQUIRED,
      .doc = "What runs a job: `exec CMD ARGS...` (a command, payload on stdin; '...', \"...\" "
             "and backslash quoting), `plugin PATH SYMBOL` (a function in a shared object) or "
             "`callback NAME` (a C function registered by an embedding program)." },
    { .sec = SEC_JOB, .name = "timeout", .kind = V_DURATION, .off = TYP(timeout_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "60s", .min = 100, .max = 7 * MS_D,
      .doc = "Longest one attempt may run; then it fails (an exec handler is killed)." },
    { .sec = SEC_JOB, .name = "max_retries", .kind = V_INT, .off = TYP(max_retries),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "5", .min = 0, .max = 1000,
      .doc = "Retries after a failed attempt: N allows N+1 attempts, 0 means dead after the first failure." },
    { .sec = SEC_JOB, .name = "backoff_base", .kind = V_DURATION, .off = TYP(backoff_base_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1s", .min = 0, .max = MS_D,
      .doc = "Delay before the first retry; it doubles with each attempt, with jitter." },
    { .sec = SEC_JOB, .name = "backoff_max", .kind = V_DURATION, .off = TYP(backoff_max_ms),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "1h", .min = 0, .max = 7 * MS_D,
      .doc = "Upper bound of the retry delay; must not be less than backoff_base." },
    { .sec = SEC_JOB, .name = "priority", .kind = V_INT, .off = TYP(priority),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "0", .min = -1000, .max = 1000,
      .doc = "Default priority of jobs of this type; lower runs first." },
    { .sec = SEC_JOB, .name = "result_max", .kind = V_SIZE, .off = TYP(result_max),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "64KiB", .min = 0, .max = 16 << 20,
      .doc = "Most bytes of a job's result that are stored with its done attempt: an exec "
             "handler's stdout, or the text a plugin or callback handler gives "
             "pgq_ctx_set_result(). A longer one is cut to a whole UTF-8 character within it, "
             "with a note saying so (pgq show, pgq.job_results) and a log line; stdout that "
             "is not UTF-8 text is not stored, with a note. 0 keeps no result. Sizes: bytes, "
             "or with KiB, MiB or GiB (KB, MB, GB: the same, 1024-based)." },
    { .sec = SEC_JOB, .name = "require", .kind = V_REQUIRE, .off = TYP(require),
      .count_off = TYP(nrequire), .line_off = NO_OFF, .def = NULL,
      .doc = "Payload contract: required keys and their JSON types, e.g. `to:string, subject:string`; "
             "types: string, number, boolean, object, array, null." },
    { .sec = SEC_JOB, .name = "max_payload", .kind = V_SIZE, .off = TYP(max_payload),
      .count_off = NO_OFF, .line_off = TYP(max_payload_line), .def = "1MiB", .min = 0,
      .max = 256 << 20,
      .doc = "Largest payload of this type: an add (pgq add, pgq_add, pgq.add, pgq.enqueue) "
             "with a larger one is refused, naming the type, the size and the limit, and "
             "nothing is stored; a [cron NAME] payload over it is an error at load. Measured "
             "as PostgreSQL stores it: the payload's size as jsonb, uncompressed, which "
             "`SELECT pgq.payload_size('PAYLOAD')` prints (`{\"n\":1}` is 28 bytes; long "
             "strings count about their length in UTF-8). 0: no limit of pgq's own "
             "(PostgreSQL's jsonb limit, about 255 MiB, applies). Sizes as for result_max." },
    { .sec = SEC_JOB, .name = "concurrency", .kind = V_INT, .off = TYP(concurrency),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL, .min = 1, .max = 100000,
      .doc = "Fleet-wide limit: at most N jobs of this type running at once across every pool "
             "(enforced by the claim in the database). Absent: no limit." },
    { .sec = SEC_JOB, .name = "rate", .kind = V_RATE, .off = TYP(rate),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL, .min = 1, .max = 1000000,
      .doc = "Fleet-wide limit: at most N starts of this type per window, written N/DURATION "
             "(`10/1s`, `600/1m`); windows are fixed, aligned to the epoch. Absent: no limit." },
    { .sec = SEC_JOB, .name = "max_snoozes", .kind = V_INT, .off = TYP(max_snoozes),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "100", .min = 0, .max = 100000,
      .doc = "How often one job may snooze (`pgq snooze`, pgq_ctx_snooze); a snooze beyond it "
             "is refused. 0: never." },

    { .sec = SEC_CRON, .name = "schedule", .kind = V_SCHEDULE, .off = CRN(schedule),
      .count_off = NO_OFF, .line_off = CRN(schedule_line), .def = NULL, .flags = F_REQUIRED,
      .doc = "When the job is added: five cron fields `MIN HOUR DAY MONTH WEEKDAY` (lists `1,15`, "
             "ranges `9-17`, steps `*/10`, names `jan`..`dec`, `sun`..`sat`), `@hourly`, "
             "`@daily`, `@weekly`, `@monthly`, `@yearly`, or `@every DURATION` (1s..366d, "
             "ticks at multiples of it since 1970-01-01 UTC). One job per tick across every "
             "pool that has the section; after downtime only the latest missed tick runs." },
    { .sec = SEC_CRON, .name = "type", .kind = V_STRING, .off = CRN(type),
      .count_off = NO_OFF, .line_off = CRN(type_line), .def = NULL, .flags = F_REQUIRED,
      .doc = "Job type to add; a `[job TYPE]` section of the same file, whose contract the "
             "payload must meet." },
    { .sec = SEC_CRON, .name = "payload", .kind = V_JSON, .off = CRN(payload),
      .count_off = NO_OFF, .line_off = CRN(payload_line), .def = "{}",
      .doc = "The job's payload (JSON on one line), checked against the type's contract and "
             "max_payload at load." },
    { .sec = SEC_CRON, .name = "queue", .kind = V_NAME, .off = CRN(queue),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = NULL,
      .doc = "Queue of the jobs; absent: the type's queue." },
    { .sec = SEC_CRON, .name = "priority", .kind = V_INT, .off = CRN(priority),
      .count_off = NO_OFF, .line_off = CRN(priority_line), .def = NULL, .min = -1000, .max = 1000,
      .doc = "Priority of the jobs; absent: the type's priority." },
    { .sec = SEC_CRON, .name = "timezone", .kind = V_ZONE, .off = CRN(zone),
      .count_off = NO_OFF, .line_off = NO_OFF, .def = "UTC",
      .doc = "IANA time zone the five fields are read in, e.g. `Europe/Berlin`. Across a DST "
             "change a fixed time (`30 2 * * *`) runs once: at the change when the clocks skip "
             "it, at its first pass when they repeat it; a schedule whose minute or hour is "
             "`*...` runs at every instant that matches (both passes, none in the gap)." },
};
const size_t cfg_nkeys = sizeof cfg_keys / sizeof cfg_keys[0];
_Static_assert(sizeof cfg_keys / sizeof cfg_keys[0] <= CFG_KEYS_MAX, "raise CFG_KEYS_MAX");

const struct cfg_rule cfg_rules[] = {
    { SEC_POOL, "heartbeat", "lease_ttl", true, "must be shorter than", "must be longer than" },
    { SEC_JOB, "backoff_base", "backoff_max", false, "must not exceed", "must not be less than" },
};
const size_t cfg_nrules = sizeof cfg_rules / sizeof cfg_rules[0];

const char *const cfg_sec_title[] = { "", "[database]", "[pool]", "[job NAME]", "[cron NAME]" };
const char *const cfg_sec_noun[] = { "", "[database] section", "[pool] section", "job type",
                                     "[cron NAME] section" };
const char *const cfg_kind_title[] = {
    [V_STRING] = "string", [V_NAME] = "name", [V_INT] = "integer", [V_DURATION] = "duration",
    [V_LIST] = "list of names", [V_HANDLER] = "handler", [V_REQUIRE] = "payload contract",
    [V_POOLER] = "pooler", [V_RATE] = "rate", [V_LISTEN] = "address", [V_SIZE] = "size",
    [V_SCHEDULE] = "schedule", [V_JSON] = "JSON", [V_ZONE] = "time zone",
};

const struct cfg_key *cfg_find_key(enum sec_kind sec, const char *name)
{
    size_t i;

    for (i = 0; i < cfg_nkeys; i++)
        if (cfg_keys[i].sec == sec && strcmp(cfg_keys[i].name, name) == 0)
            return &cfg_keys[i];
    return NULL;
}
