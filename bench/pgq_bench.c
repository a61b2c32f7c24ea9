/* pgq-bench: measure pgq against a fresh, empty PostgreSQL database
 * ($DATABASE_URL). bench/README.md says what each figure means.
 *
 *   pgq-bench throughput --jobs N --concurrency C [--profile default|strict|batched|exec]
 *                        [--batch N] [--exec CMD] [--max-drain-s S] [--timeout-s S]
 *   pgq-bench latency [--jobs 300] [--interval-ms 20] [--concurrency 8]
 *                     [--profile default|batched] [--batch N] [--timeout-s S]
 *   pgq-bench backlog [--sizes 10000,1000000,10000000] [--cycles 2000]
 *                     [--threads 8] [--passes 3] [--timeout-s S]
 *   pgq-bench soak --minutes M --rate R [--concurrency 8] [--keep-done 2m]
 *                  [--profile default|batched] [--batch N] [--timeout-s S]
 *   pgq-bench footprint [--concurrency 8] [--seconds 60] [--pool-bin PATH]
 *                       [--timeout-s S]
 *   pgq-bench pinned --jobs N --pin yes|no [--concurrency 8] [--max-drain-s 600]
 *   pgq-bench pinned --rate R [--before-minutes 2] [--pin-minutes 10]
 *                    [--after-minutes 5] [--sample-s 60] [--concurrency 8] [--keep-done 2m]
 *   pgq-bench spawn [--jobs 10000] [--concurrency 8] [--exec /bin/true] [--timeout-s S]
 *   pgq-bench dashboard [--sizes 10000,1000000,10000000] [--refreshes 20] [--timeout-s S]
 *
 * Every benchmark migrates first (not timed) and registers the job type
 * "bench-noop" (queue default). throughput, latency and soak embed a pool
 * (as examples/embed.c does) whose in-process callback only counts its
 * calls per job; the exec profile runs `exec /bin/true` instead. backlog
 * drives pgq_claim/pgq_complete itself; footprint runs the real pgq-pool;
 * pinned holds a transaction open in another session while a pool works;
 * spawn measures the bare posix_spawn + waitpid ceiling exec is judged by
 * (no database); dashboard fills the queue through pgq.enqueue and
 * pgq.complete_claim and reads the server CPU of dashboard refreshes and
 * pgq stats calls (dashboard.c).
 *
 * Output: JSON lines on stdout, one per run (backlog: one per size and
 * pass; soak: one per minute and a summary); the pool's warnings go to
 * stderr. Exit 0 when ok, 1 on failure, 2 on bad arguments. A watchdog
 * ends the process after --timeout-s with a JSON line saying ok:false. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "duration.h"

static const char usage_text[] =
    "usage: pgq-bench throughput --jobs N --concurrency C\n"
    "                            [--profile default|strict|batched|exec]\n"
    "                            [--batch N] [--exec CMD] [--max-drain-s S] [--timeout-s S]\n"
    "                            [--limits none|other|self]\n"
    "       pgq-bench latency [--jobs 300] [--interval-ms 20] [--concurrency 8]\n"
    "                         [--profile default|batched] [--batch N] [--timeout-s S]\n"
    "       pgq-bench backlog [--sizes 10000,1000000,10000000] [--cycles 2000]\n"
    "                         [--threads 8] [--passes 3] [--timeout-s S]\n"
    "       pgq-bench soak --minutes M --rate R [--concurrency 8] [--keep-done 2m]\n"
    "                      [--profile default|batched] [--batch N] [--timeout-s S]\n"
    "       pgq-bench footprint [--concurrency 8] [--seconds 60] [--pool-bin PATH]\n"
    "                           [--timeout-s S]\n"
    "       pgq-bench pinned --jobs N --pin yes|no [--concurrency 8] [--max-drain-s 600]\n"
    "                        [--timeout-s S]\n"
    "       pgq-bench pinned --rate R [--before-minutes 2] [--pin-minutes 10]\n"
    "                        [--after-minutes 5] [--sample-s 60] [--concurrency 8]\n"
    "                        [--keep-done 2m] [--timeout-s S]\n"
    "       pgq-bench spawn [--jobs 10000] [--concurrency 8] [--exec /bin/true]\n"
    "                       [--timeout-s S]\n"
    "       pgq-bench dashboard [--sizes 10000,1000000,10000000] [--refreshes 20]\n"
    "                           [--timeout-s S]\n"
    "DATABASE_URL names a fresh, empty database (spawn needs none). See bench/README.md.\n";

static void *watchdog(void *arg)
{
    (void)arg;
    sleep_ms((double)g_opts.timeout_s * 1000);
    char msg[96];
    snprintf(msg, sizeof msg, "timed out after %ld s (--timeout-s)", g_opts.timeout_s);
    fail_json(msg);
    fprintf(stderr, "pgq-bench: %s\n", msg);
    _exit(1);
}

/* ---- arguments ------------------------------------------------------------ */

enum { T = 1, L = 2, B = 4, S = 8, F = 16, P = 32, X = 64, D = 128 };   /* which benchmarks take an option */

__attribute__((format(printf, 1, 2), noreturn))
static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pgq-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text);
    exit(2);
}

static long parse_long(const char *opt, const char *val, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(val, &end, 10);
    if (errno || end == val || *end || v < min || v > max)
        usage_error("%s: expected an integer in %ld..%ld, got \"%s\"", opt, min, max, val);
    return v;
}

static double parse_minutes(const char *opt, const char *val, double min)
{
    char *end;
    errno = 0;
    double v = strtod(val, &end);
    if (errno || end == val || *end || !(v >= min) || v > 7 * 24 * 60)
        usage_error("%s: expected minutes (a number, decimals allowed) from %g, got \"%s\"", opt,
                    min, val);
    return v;
}

/* "10000,1000000" -> ascending sizes. */
static void parse_sizes(const char *opt, const char *val, struct opts *o)
{
    o->nsizes = 0;
    const char *p = val;
    for (;;) {
        char item[32];
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof item)
            usage_error("%s: expected sizes like 10000,1000000, got \"%s\"", opt, val);
        if (o->nsizes == MAX_SIZES)
            usage_error("%s: at most %d sizes, got \"%s\"", opt, MAX_SIZES, val);
        memcpy(item, p, len);
        item[len] = '\0';
        long v = parse_long(opt, item, 1, 100000000);
        if (o->nsizes > 0 && v <= o->sizes[o->nsizes - 1])
            usage_error("%s: sizes must be ascending, got \"%s\"", opt, val);
        o->sizes[o->nsizes++] = v;
        if (!p[len])
            break;
        p += len + 1;
    }
}

static int bench_bit(const char *name)
{
    static const char *const names[] = { "throughput", "latency", "backlog", "soak", "footprint",
                                         "pinned", "spawn", "dashboard" };
    for (int i = 0; i < 8; i++)
        if (strcmp(name, names[i]) == 0)
            return 1 << i;
    return 0;
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    if (argc < 2)
        usage_error("%s", "no benchmark given");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage_text, stdout);
        exit(0);
    }
    int me = bench_bit(argv[1]);
    if (!me)
        usage_error("unknown benchmark \"%s\"", argv[1]);
    static const long default_sizes[] = { 10000, 1000000, 10000000 };
    *o = (struct opts){
        .bench = argv[1], .profile = me == F ? "exec" : me == X ? "posix_spawn" : "default",
        .jobs = me == L ? 300 : me == X ? 10000 : -1, .concurrency = me == T ? -1 : 8, .batch = 512,
        .max_drain_s = 60, .timeout_s = -1, .interval_ms = 20, .nsizes = 3,
        .cycles = 2000, .threads = 8, .passes = 3, .minutes = -1, .rate = -1,
        .keep_done = "2m", .seconds = 60, .pool_bin = NULL, .exec_cmd = "/bin/true",
        .pin = NULL, .before_min = 2, .pin_min = 10, .after_min = 5, .sample_s = 60,
    };
    if (me == P) {
        o->concurrency = 8;
        o->max_drain_s = 600;
    }
    if (me == D)
        o->cycles = 20;   /* refreshes per measurement */
    memcpy(o->sizes, default_sizes, sizeof default_sizes);
    bool batch_given = false;

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        static const struct { const char *name; int benches; } known[] = {
            { "--jobs", T | L | P | X }, { "--concurrency", T | L | S | F | P | X },
            { "--profile", T | L | S }, { "--batch", T | L | S }, { "--max-drain-s", T | P },
            { "--timeout-s", T | L | B | S | F | P | X | D }, { "--interval-ms", L },
            { "--sizes", B | D }, { "--refreshes", D },
            { "--cycles", B }, { "--threads", B }, { "--passes", B }, { "--minutes", S },
            { "--rate", S | P }, { "--keep-done", T | S | P }, { "--seconds", F },
            { "--pool-bin", F }, { "--exec", T | X }, { "--pin", P }, { "--before-minutes", P },
            { "--pin-minutes", P }, { "--after-minutes", P }, { "--sample-s", P },
            { "--limits", T },
        };
        int benches = -1;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strcmp(a, known[k].name) == 0)
                benches = known[k].benches;
        if (benches < 0)
            usage_error("unknown option \"%s\"", a);
        if (!(benches & me))
            usage_error("%s is not an option of %s", a, o->bench);
        if (!v)
            usage_error("%s needs a value", a);
        i++;
        if (strcmp(a, "--jobs") == 0)
            o->jobs = parse_long(a, v, 1, 100000000);
        else if (strcmp(a, "--concurrency") == 0)
            o->concurrency = parse_long(a, v, 1, 256);
        else if (strcmp(a, "--batch") == 0) {
            o->batch = parse_long(a, v, 1, 10000);
            batch_given = true;
        } else if (strcmp(a, "--timeout-s") == 0)
            o->timeout_s = parse_long(a, v, 1, 7 * 86400);
        else if (strcmp(a, "--max-drain-s") == 0)
            o->max_drain_s = parse_long(a, v, 1, 86400);
        else if (strcmp(a, "--interval-ms") == 0)
            o->interval_ms = parse_long(a, v, 0, 60000);
        else if (strcmp(a, "--sizes") == 0)
            parse_sizes(a, v, o);
        else if (strcmp(a, "--cycles") == 0)
            o->cycles = parse_long(a, v, 1, 1000000);
        else if (strcmp(a, "--refreshes") == 0)
            o->cycles = parse_long(a, v, 1, 10000);
        else if (strcmp(a, "--threads") == 0)
            o->threads = parse_long(a, v, 1, 256);
        else if (strcmp(a, "--passes") == 0)
            o->passes = parse_long(a, v, 1, 100);
        else if (strcmp(a, "--minutes") == 0)
            o->minutes = parse_long(a, v, 1, 7 * 24 * 60);
        else if (strcmp(a, "--rate") == 0)
            o->rate = parse_long(a, v, 1, 1000000);
        else if (strcmp(a, "--seconds") == 0)
            o->seconds = parse_long(a, v, 1, 86400);
        else if (strcmp(a, "--pool-bin") == 0)
            o->pool_bin = v;
        else if (strcmp(a, "--pin") == 0) {
            if (strcmp(v, "yes") != 0 && strcmp(v, "no") != 0)
                usage_error("--pin: expected yes or no, got \"%s\"", v);
            o->pin = v;
        } else if (strcmp(a, "--before-minutes") == 0)
            o->before_min = parse_minutes(a, v, 0);
        else if (strcmp(a, "--pin-minutes") == 0)
            o->pin_min = parse_minutes(a, v, 0.01);
        else if (strcmp(a, "--after-minutes") == 0)
            o->after_min = parse_minutes(a, v, 0.01);
        else if (strcmp(a, "--sample-s") == 0)
            o->sample_s = parse_long(a, v, 1, 3600);
        else if (strcmp(a, "--exec") == 0) {
            /* It goes into pool.ini and, as is, into the JSON line. */
            if (!*v || strlen(v) > 500 || strpbrk(v, "\"\\\n"))
                usage_error("--exec: a command line of 1 to 500 characters without "
                            "quotes, backslashes or newlines");
            o->exec_cmd = v;
        }
        else if (strcmp(a, "--keep-done") == 0) {
            int64_t ms;
            char e[256];
            if (pgq_duration_parse(v, &ms, e, sizeof e) < 0)
                usage_error("--keep-done: %s", e);
            o->keep_done = v;
            o->keep_done_ms = ms;
            o->keep_done_given = true;
        } else if (strcmp(a, "--limits") == 0) {
            if (strcmp(v, "none") != 0 && strcmp(v, "other") != 0 && strcmp(v, "self") != 0)
                usage_error("--limits: expected none, other or self, got \"%s\"", v);
            o->limits = v;
        } else if (strcmp(a, "--profile") == 0) {
            bool exec_ok = me == T;
            if (strcmp(v, "default") != 0 && strcmp(v, "strict") != 0 &&
                strcmp(v, "batched") != 0 && (!exec_ok || strcmp(v, "exec") != 0))
                usage_error("--profile: expected %s, got \"%s\"",
                            exec_ok ? "default, strict, batched or exec"
                                    : "default, strict or batched", v);
            o->profile = v;
        }
    }
    if (o->jobs < 0 && (me & T))
        usage_error("%s is required", "--jobs");
    if (o->concurrency < 0)
        usage_error("%s is required", "--concurrency");
    if (me == S && o->minutes < 0)
        usage_error("%s is required", "--minutes");
    if (me == S && o->rate < 0)
        usage_error("%s is required", "--rate");
    if (me == P) {
        /* --jobs: the drain; --rate: the sustained run. */
        if ((o->jobs < 0) == (o->rate < 0))
            usage_error("pinned: give either --jobs (drain) or --rate (sustained), not %s",
                        o->jobs < 0 ? "neither" : "both");
        if (o->jobs >= 0 && !o->pin)
            usage_error("pinned --jobs: %s is required", "--pin yes|no");
        if (o->rate >= 0 && o->pin)
            usage_error("%s", "pinned --rate: --pin is for the drain (--jobs) only");
        o->profile = o->jobs >= 0 ? (strcmp(o->pin, "yes") == 0 ? "drain-pinned" : "drain")
                                  : "sustained";
    }
    if (batch_given && strcmp(o->profile, "batched") != 0)
        usage_error("--batch: only with --profile batched (profile is \"%s\")", o->profile);
    if (o->timeout_s < 0)
        o->timeout_s = me == B || me == D ? 3600 : me == S ? o->minutes * 60 + 300
                     : me == F ? o->seconds + 120
                     : me == P && o->jobs >= 0 ? o->max_drain_s + 300
                     : me == P ? (long)((o->before_min + o->pin_min + o->after_min) * 60) + 600
                     : 120;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv, &g_opts);

    /* Threads inherit the signal mask: nothing here wants SIGPIPE, and the
     * pool's threads must not take SIGINT/SIGTERM (their default action
     * ends the process, which is fine for a benchmark). */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    pthread_t wd;
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0) {
        fprintf(stderr, "pgq-bench: cannot start the watchdog thread\n");
        return 1;
    }
    pthread_detach(wd);
    pgq_pool_set_log_level(PGQ_LOG_WARN);

    int me = bench_bit(g_opts.bench);
    if (me & (T | L | S | P)) {
        /* Job orders k that the handler counts: soak and pinned add at most
         * rate/s. */
        g_njobs = me == S ? g_opts.rate * (g_opts.minutes * 60 + 60) + 100000
                : me == P && g_opts.rate > 0
                ? (long)((double)g_opts.rate * ((g_opts.before_min + g_opts.pin_min +
                                                 g_opts.after_min) * 60 + 120)) + 100000
                : g_opts.jobs;
        g_calls = calloc((size_t)g_njobs, sizeof *g_calls);
        if (!g_calls || (me == L && !(g_start_ns = calloc((size_t)g_njobs, sizeof *g_start_ns)))) {
            fail_json("out of memory");
            return 1;
        }
    }
    int rc = me == T ? run_throughput() : me == L ? run_latency() : me == B ? run_backlog()
           : me == S ? run_soak() : me == F ? run_footprint() : me == P ? run_pinned()
           : me == D ? run_dashboard() : run_spawn();
    fflush(stdout);
    free(g_calls);
    free(g_start_ns);
    return rc;
}
