/* The pool's Prometheus endpoint: `[pool] metrics_listen = HOST:PORT`
 * serves GET /metrics in the text exposition format (0.0.4) over plain
 * HTTP/1.0 and 1.1, one request per connection.
 *
 * The design is simple: the pool's own figures are fed by its events
 * (events.c), this module being one more subscriber: counters of outcomes
 * and histograms of job duration and queue wait per job type, under a
 * mutex of their own (the callbacks come from every worker). A thread of
 * its own accepts on the socket bound at pgq_pool_start (so a port in use
 * is a startup error) and answers one scrape at a time; it reads the
 * in-flight gauge under the pool mutex and the reconnect counter from its
 * atomic. The fleet-wide gauges per queue and state (the figures of `pgq
 * stats --prometheus`, written by the same core/prom.c) need a query over
 * pgq.jobs: it runs on this thread's own connection, at most once per
 * FLEET_EVERY_MS whatever the scrape rate (the text is cached), so that
 * scrapes cannot load the database. When the database is away the pool's
 * own figures are still served, the last fleet text is kept and
 * pgq_pool_fleet_up says 0.
 *
 * Nothing here is authenticated or encrypted: it is meant for a loopback
 * or private address, as node_exporter's default is. */
#include "pool_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"

#define FLEET_EVERY_MS 10000   /* the fleet query's rate limit */
#define REQUEST_MAX 8192       /* a scrape's request head; more is refused */
#define IO_TIMEOUT_MS 5000     /* per read or write of one connection */

/* Upper bounds of the histograms' buckets, in seconds (+Inf is implied):
 * from a few milliseconds (in-process jobs) to the longest timeouts. */
static const double bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                 1, 2.5, 5, 10, 30, 60, 300, 1800 };
#define NBOUNDS (sizeof bounds / sizeof bounds[0])

struct hist {
    uint64_t in[NBOUNDS + 1];      /* per bucket, not cumulative; the last is +Inf */
    uint64_t count;
    double sum;
};

/* The figures of one job type. */
struct tstat {
    char *type;
    uint64_t n[PGQ_EVENT__COUNT];
    struct hist duration, wait;
};

struct metrics {
    pgq_pool *pool;
    int fd;                        /* the listening socket */
    int stop[2];                   /* written by metrics_stop */
    pthread_t thread;
    bool running;
    char where[80];                /* the bound address, for the log */

    pthread_mutex_t mu;            /* guards types */
    struct tstat *types;
    size_t ntypes, cap;

    /* The metrics thread's alone. */
    pgq_conn *conn;
    char *fleet;                   /* cached fleet text, NULL before the first query */
    int64_t fleet_at_ms;           /* when it was last tried, monotonic; 0: never */
    bool fleet_up;
};

/* ---- the figures -------------------------------------------------------- */

static void observe(struct hist *h, double v)
{
    size_t i = 0;
    while (i < NBOUNDS && v > bounds[i])
        i++;
    h->in[i]++;
    h->count++;
    h->sum += v;
}

/* The type's figures (created on first use); NULL when out of memory. mu held. */
static struct tstat *tstat_of(struct metrics *m, const char *type)
{
    for (size_t i = 0; i < m->ntypes; i++)
        if (strcmp(m->types[i].type, type) == 0)
            return &m->types[i];
    if (m->ntypes == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        struct tstat *t = realloc(m->types, cap * sizeof *t);
        if (!t)
            return NULL;
        m->types = t;
        m->cap = cap;
    }
    struct tstat *t = &m->types[m->ntypes];
    memset(t, 0, sizeof *t);
    if (!(t->type = strdup(type)))
        return NULL;
    m->ntypes++;
    return t;
}

/* The event subscriber: called on the pool's threads, briefly. */
static void on_event(const pgq_event *ev, void *arg)
{
    struct metrics *m = arg;
    if ((unsigned)ev->kind >= PGQ_EVENT__COUNT)
        return;
    pthread_mutex_lock(&m->mu);
    struct tstat *t = tstat_of(m, ev->type);
    if (t) {
        t->n[ev->kind]++;
        if (ev->kind == PGQ_EVENT_STARTED)
            observe(&t->wait, ev->wait_s);
        else
            observe(&t->duration, ev->duration_s);
    }
    pthread_mutex_unlock(&m->mu);
}

/* ---- the exposition ----------------------------------------------------- */

/* Counter families per type: the metric's name, its event, its help. */
static const struct {
    const char *name;
    enum pgq_event_kind kind;
    const char *help;
} counters[] = {
    { "pgq_jobs_started_total", PGQ_EVENT_STARTED, "Attempts this pool started." },
    { "pgq_jobs_done_total", PGQ_EVENT_DONE, "Attempts that succeeded (committed)." },
    { "pgq_jobs_failed_total", PGQ_EVENT_FAILED,
      "Attempts that failed with a retry scheduled." },
    { "pgq_jobs_dead_total", PGQ_EVENT_DEAD,
      "Attempts that failed with no retries left (dead-lettered)." },
    { "pgq_jobs_lease_lost_total", PGQ_EVENT_LEASE_LOST,
      "Attempts whose lease was lost (expired and reaped): their outcome was discarded." },
    { "pgq_jobs_cancelled_total", PGQ_EVENT_CANCELLED,
      "Attempts stopped by an operator's cancel." },
    { "pgq_jobs_snoozed_total", PGQ_EVENT_SNOOZED,
      "Attempts that snoozed their job (no attempt spent)." },
    { "pgq_jobs_released_total", PGQ_EVENT_RELEASED,
      "Attempts given back at shutdown (no attempt spent)." },
};

static void write_hist(FILE *f, const char *name, const char *help, const struct metrics *m,
                       bool wait)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < m->ntypes; i++) {
        const struct hist *h = wait ? &m->types[i].wait : &m->types[i].duration;
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBOUNDS; b++) {
            cum += h->in[b];
            fprintf(f, "%s_bucket{type=", name);
            pgq_prom_label(f, m->types[i].type);
            if (b < NBOUNDS)
                fprintf(f, ",le=\"%g\"} %" PRIu64 "\n", bounds[b], cum);
            else
                fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", cum);
        }
        fprintf(f, "%s_sum{type=", name);
        pgq_prom_label(f, m->types[i].type);
        fprintf(f, "} %.6f\n%s_count{type=", h->sum, name);
        pgq_prom_label(f, m->types[i].type);
        fprintf(f, "} %" PRIu64 "\n", h->count);
    }
}

/* Refresh the cached fleet text when it is older than FLEET_EVERY_MS. */
static void refresh_fleet(struct metrics *m)
{
    char err[512];
    int64_t now = pool_now_ms();
    if (m->fleet_at_ms && now - m->fleet_at_ms < FLEET_EVERY_MS)
        return;
    m->fleet_at_ms = now;
    if (!m->conn) {
        if (pgq_connect_via(m->pool->url, m->pool->cfg->pooler, &m->conn, err, sizeof err) < 0) {
            pool_log(PGQ_LOG_WARN, "metrics", "fleet figures: %s", err);
            pgq_disconnect(m->conn);
            m->conn = NULL;
            m->fleet_up = false;
            return;
        }
    } else if (!pgq_connected(m->conn) && pgq_reconnect(m->conn, err, sizeof err) < 0) {
        m->fleet_up = false;
        return;
    }
    pgq_queue_stats *s;
    size_t n;
    if (pgq_stats(m->conn, &s, &n, err, sizeof err) < 0) {
        pool_log(PGQ_LOG_WARN, "metrics", "fleet figures: %s", err);
        m->fleet_up = false;
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (f) {
        pgq_prom_write_stats(f, s, n);
        if (fclose(f) == 0) {
            free(m->fleet);
            m->fleet = text;
            text = NULL;
        }
    }
    free(text);
    free(s);
    m->fleet_up = true;
}

/* The whole scrape into *out (malloc'd, *len bytes); -1 when out of memory. */
static int render(struct metrics *m, char **out, size_t *len)
{
    pgq_pool *p = m->pool;
    refresh_fleet(m);
    FILE *f = open_memstream(out, len);
    if (!f)
        return -1;
    pthread_mutex_lock(&m->mu);
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", counters[c].name, counters[c].help,
                counters[c].name);
        for (size_t i = 0; i < m->ntypes; i++) {
            fprintf(f, "%s{type=", counters[c].name);
            pgq_prom_label(f, m->types[i].type);
            fprintf(f, "} %" PRIu64 "\n", m->types[i].n[counters[c].kind]);
        }
    }
    write_hist(f, "pgq_job_duration_seconds",
               "How long handlers ran, per outcome of an attempt.", m, false);
    write_hist(f, "pgq_job_queue_wait_seconds",
               "How long a job had been due when this pool started it.", m, true);
    pthread_mutex_unlock(&m->mu);

    pthread_mutex_lock(&p->mu);
    int held = slot_holding(p);
    pthread_mutex_unlock(&p->mu);
    fprintf(f, "# HELP pgq_pool_jobs_in_flight Jobs this pool's workers hold now.\n"
               "# TYPE pgq_pool_jobs_in_flight gauge\npgq_pool_jobs_in_flight %d\n"
               "# HELP pgq_pool_workers Worker threads of this pool.\n"
               "# TYPE pgq_pool_workers gauge\npgq_pool_workers %d\n"
               "# HELP pgq_pool_reconnects_total Database connections of this pool "
               "re-established after a loss.\n# TYPE pgq_pool_reconnects_total counter\n"
               "pgq_pool_reconnects_total %lld\n"
               "# HELP pgq_pool_fleet_up 1 when the last query of the fleet's figures (pgq_jobs "
               "and the pgq_queue_ gauges) succeeded.\n# TYPE pgq_pool_fleet_up gauge\n"
               "pgq_pool_fleet_up %d\n",
            held, p->nslots, (long long)atomic_load(&p->reconnects), m->fleet_up ? 1 : 0);
    if (m->fleet)
        fputs(m->fleet, f);
    pgq_prom_write_build_info(f);
    return fclose(f) == 0 ? 0 : -1;
}

/* ---- HTTP --------------------------------------------------------------- */

/* Wait for fd to be ready for events, up to IO_TIMEOUT_MS or a stop. */
static bool ready(struct metrics *m, int fd, short events)
{
    struct pollfd fds[2] = { { fd, events, 0 }, { m->stop[0], POLLIN, 0 } };
    int n;
    while ((n = poll(fds, 2, IO_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    return n > 0 && !fds[1].revents && fds[0].revents;
}

static void send_all(struct metrics *m, int fd, const char *b, size_t n)
{
    while (n > 0) {
        if (!ready(m, fd, POLLOUT))
            return;
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (w <= 0)
            return;
        b += w;
        n -= (size_t)w;
    }
}

static void reply(struct metrics *m, int fd, const char *status, const char *ctype,
                  const char *body, size_t len, bool head)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr, "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu"
                     "\r\nConnection: close\r\n\r\n", status, ctype, len);
    send_all(m, fd, hdr, (size_t)n);
    if (!head)
        send_all(m, fd, body, len);
}

static void error_reply(struct metrics *m, int fd, const char *status)
{
    char body[128];
    int n = snprintf(body, sizeof body, "%s\n", status);
    reply(m, fd, status, "text/plain; charset=utf-8", body, (size_t)n, false);
}

/* Read one request head and answer it. */
static void serve(struct metrics *m, int fd)
{
    char req[REQUEST_MAX + 1];
    size_t n = 0;
    while (!memmem(req, n, "\r\n\r\n", 4) && !memmem(req, n, "\n\n", 2)) {
        if (n == REQUEST_MAX) {
            error_reply(m, fd, "431 Request Header Fields Too Large");
            return;
        }
        if (!ready(m, fd, POLLIN))
            return;
        ssize_t r = recv(fd, req + n, REQUEST_MAX - n, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return;
        n += (size_t)r;
    }
    req[n] = '\0';
    char method[16], target[1024], version[16];
    if (sscanf(req, "%15s %1023s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        error_reply(m, fd, "400 Bad Request");
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        error_reply(m, fd, "405 Method Not Allowed");
        return;
    }
    /* /metrics, with or without a query string (Prometheus sends none). */
    size_t path = strcspn(target, "?");
    if (!(path == 8 && strncmp(target, "/metrics", 8) == 0)) {
        error_reply(m, fd, "404 Not Found");
        return;
    }
    char *body = NULL;
    size_t len = 0;
    if (render(m, &body, &len) < 0) {
        free(body);
        error_reply(m, fd, "500 Internal Server Error");
        return;
    }
    reply(m, fd, "200 OK", "text/plain; version=0.0.4; charset=utf-8", body, len, head);
    free(body);
}

static void *metrics_main(void *arg)
{
    struct metrics *m = arg;
    for (;;) {
        struct pollfd fds[2] = { { m->fd, POLLIN, 0 }, { m->stop[0], POLLIN, 0 } };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            pool_log(PGQ_LOG_ERROR, "metrics", "poll: %s; no more scrapes", strerror(errno));
            break;
        }
        if (fds[1].revents)
            break;
        int c = accept4(m->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (c < 0)
            continue;   /* the client went away, or EMFILE: try again at the next */
        serve(m, c);
        close(c);
    }
    pgq_disconnect(m->conn);
    m->conn = NULL;
    return NULL;
}

/* ---- life --------------------------------------------------------------- */

int metrics_new(pgq_pool *p, char *err, size_t errlen)
{
    const char *text = p->cfg->metrics_listen;
    if (!text)
        return 0;
    struct sockaddr_storage ss;
    socklen_t sl;
    char e[256];
    if (cfg_listen_parse(text, &ss, &sl, e, sizeof e) < 0) {
        snprintf(err, errlen, "[pool] metrics_listen: %s", e);
        return -1;
    }
    struct metrics *m = calloc(1, sizeof *m);
    struct event_sub *subs = realloc(p->subs, (p->nsubs + 1) * sizeof *subs);
    if (!m || !subs) {
        free(m);
        if (subs)
            p->subs = subs;
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->subs = subs;
    m->pool = p;
    m->fd = m->stop[0] = m->stop[1] = -1;
    pthread_mutex_init(&m->mu, NULL);
    p->metrics = m;   /* freed by metrics_free from here on */
    m->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (m->fd < 0 || setsockopt(m->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(m->fd, (struct sockaddr *)&ss, sl) < 0 || listen(m->fd, 16) < 0) {
        int en = errno;
        snprintf(err, errlen, "[pool] metrics_listen = %s: cannot listen: %s%s", text,
                 strerror(en), en == EADDRINUSE ? " (another process has this port: a second "
                 "pool on this host needs a port of its own)" : "");
        return -1;
    }
    if (pipe2(m->stop, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    /* The address as bound: port 0 became a real one. */
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(m->fd, (struct sockaddr *)&got, &gl) == 0) {
        if (got.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&got;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&got;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    snprintf(m->where, sizeof m->where, got.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
             port);
    p->subs[p->nsubs++] = (struct event_sub){ on_event, m };
    return 0;
}

int metrics_start(pgq_pool *p, char *err, size_t errlen)
{
    struct metrics *m = p->metrics;
    if (!m)
        return 0;
    if (pthread_create(&m->thread, NULL, metrics_main, m) != 0) {
        snprintf(err, errlen, "cannot start the metrics thread");
        return -1;
    }
    m->running = true;
    pool_log(PGQ_LOG_INFO, "metrics", "serving http://%s/metrics", m->where);
    return 0;
}

void metrics_stop(pgq_pool *p)
{
    struct metrics *m = p->metrics;
    if (!m || !m->running)
        return;
    ssize_t w = write(m->stop[1], "x", 1);
    (void)w;
    pthread_join(m->thread, NULL);
    m->running = false;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->fd >= 0)
        close(m->fd);
    if (m->stop[0] >= 0) {
        close(m->stop[0]);
        close(m->stop[1]);
    }
    for (size_t i = 0; i < m->ntypes; i++)
        free(m->types[i].type);
    free(m->types);
    free(m->fleet);
    pgq_disconnect(m->conn);
    pthread_mutex_destroy(&m->mu);
    free(m);
}
