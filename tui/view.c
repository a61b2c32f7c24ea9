/* The dashboard's views: draw the screens from the current snapshot.
 *
 * Nothing here touches the database; everything comes from u->snap and
 * u's own state, so a slow database can only make the picture old, never
 * the screen frozen. The frame is the same on every screen: row 0 the
 * screen tabs, row 1 the totals, the last row the status line (database
 * trouble, the age of the data, read-only, action outcomes, prompts).
 * Lists (Running, Dead letters, Jobs) draw rows with a cursor and marks;
 * the other screens (Overview, Health, a job's detail, help) are built as
 * a list of lines and drawn from a scroll offset, which is how they fit in
 * 80x24. Colour is used when the terminal has it; without it the same
 * things stand out by bold, reverse and words ("STALE", "IN DOUBT"). */
#include <curses.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "duration.h"
#include "ui.h"

enum { P_BAR = 1, P_BAD, P_WARN, P_GOOD, P_HEAD, P_MARK };

/* A lease owner is "host:pid:start/wN" (unique per pool run); on a list the
 * start time only pushes the worker number off the column: show
 * "host:pid/wN". */
static const char *short_owner(const char *owner, char *buf, size_t len)
{
    const char *slash = owner ? strrchr(owner, '/') : NULL;
    const char *colon = slash ? memrchr(owner, ':', (size_t)(slash - owner)) : NULL;
    if (!colon) {
        snprintf(buf, len, "%s", owner ? owner : "");
        return buf;
    }
    snprintf(buf, len, "%.*s%s", (int)(colon - owner), owner, slash);
    return buf;
}

static bool colored;

void view_colors(void)
{
    colored = true;
    use_default_colors();
    init_pair(P_BAR, COLOR_BLACK, COLOR_CYAN);
    init_pair(P_BAD, COLOR_RED, -1);
    init_pair(P_WARN, COLOR_YELLOW, -1);
    init_pair(P_GOOD, COLOR_GREEN, -1);
    init_pair(P_HEAD, COLOR_CYAN, -1);
    init_pair(P_MARK, COLOR_MAGENTA, -1);
}

/* The colour pair when there is colour, else the plain attribute. */
static attr_t look(int pair, attr_t plain)
{
    return colored ? (attr_t)COLOR_PAIR(pair) | (pair == P_BAD ? A_BOLD : 0) : plain;
}

/* ---- formatting ------------------------------------------------------------- */

static char *fmt_age(double s, char *buf, size_t len)
{
    if (s < 0)
        s = 0;
    long v = (long)s;
    if (v < 60)
        snprintf(buf, len, "%lds", v);
    else if (v < 3600)
        snprintf(buf, len, "%ldm%02lds", v / 60, v % 60);
    else if (v < 86400)
        snprintf(buf, len, "%ldh%02ldm", v / 3600, v % 3600 / 60);
    else
        snprintf(buf, len, "%ldd%02ldh", v / 86400, v % 86400 / 3600);
    return buf;
}

static char *fmt_bytes(int64_t b, char *buf, size_t len)
{
    static const char *const unit[] = { "B", "kB", "MB", "GB", "TB" };
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f%s" : "%.1f%s", v, unit[u]);
    return buf;
}

/* A count in a narrow column: digits while they fit (under a million),
 * then 144.9k, 1.25M; an estimate is "~N", a lower bound "N+" (pgq_stats
 * reads capped ranges; see pgq_count_kind). */
static char *fmt_count(int64_t v, pgq_count_kind k, char *buf, size_t len)
{
    char n[21];
    if (v < (k == PGQ_COUNT_EXACT ? 1000000 : 10000))
        snprintf(n, sizeof n, "%" PRId64, v);
    else if (v < 1000000)
        snprintf(n, sizeof n, "%.1fk", (double)v / 1e3);
    else if (v < 1000000000)
        snprintf(n, sizeof n, "%.2fM", (double)v / 1e6);
    else
        snprintf(n, sizeof n, "%.2fG", (double)v / 1e9);
    snprintf(buf, len, "%s%s%s", k == PGQ_COUNT_ESTIMATE ? "~" : "", n,
             k == PGQ_COUNT_AT_LEAST ? "+" : "");
    return buf;
}

/* Copy src for one screen line: control characters (newlines in errors
 * and queries) become spaces. */
static void clean(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < len; i++)
        dst[i] = (unsigned char)src[i] < 32 ? ' ' : src[i];
    dst[i] = '\0';
}

/* Print at (y, x) clipped to the screen width. */
static void put(int y, int x, attr_t a, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(int y, int x, attr_t a, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    if (y < 0 || y >= LINES || x >= COLS)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    attrset(a);
    /* Clip by characters, not bytes, so UTF-8 (names, the sparkline) is
     * neither cut short nor wrapped; bytes that are not valid in the
     * locale fall back to the byte count. */
    wchar_t wbuf[1024];
    size_t wn = mbstowcs(wbuf, buf, sizeof wbuf / sizeof wbuf[0] - 1);
    if (wn != (size_t)-1) {
        wbuf[wn] = L'\0';
        mvaddnwstr(y, x, wbuf, COLS - x);
    } else {
        mvaddnstr(y, x, buf, COLS - x);
    }
    attrset(A_NORMAL);
}

/* ---- line lists (scrolling screens) ----------------------------------------- */

struct line {
    char *text;
    attr_t attr;
};

struct lines {
    struct line *v;
    size_t n, cap;
};

static void add_line(struct lines *l, attr_t a, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_line(struct lines *l, attr_t a, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct line *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    char *t = strdup(buf);
    if (!t)
        return;
    l->v[l->n++] = (struct line){ t, a };
}

/* Long text (an error, a payload line) wrapped to the width, each piece
 * indented; its own newlines start new lines. */
static void add_wrapped(struct lines *l, attr_t a, int indent, const char *text)
{
    int width = COLS - indent > 20 ? COLS - indent : 20;
    const char *p = text ? text : "";
    do {
        size_t n = strcspn(p, "\n");
        const char *end = p + n;
        do {
            int take = end - p > width ? width : (int)(end - p);
            char piece[1024];
            clean(piece, sizeof piece < (size_t)take + 1 ? sizeof piece : (size_t)take + 1, p);
            add_line(l, a, "%*s%s", indent, "", piece);
            p += take;
        } while (p < end);
        p = *end ? end + 1 : end;
    } while (*p);
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].text);
    free(l->v);
}

/* Draw rows [y0, y1) from line *scroll (clamped so the end stays in view). */
static void draw_lines(const struct lines *l, int y0, int y1, int *scroll)
{
    int h = y1 - y0;
    int max = (int)l->n - h;
    if (*scroll > max)
        *scroll = max;
    if (*scroll < 0)
        *scroll = 0;
    for (int i = 0; i < h && (size_t)(*scroll + i) < l->n; i++) {
        const struct line *ln = &l->v[*scroll + i];
        put(y0 + i, 0, ln->attr, "%s", ln->text);
    }
    if ((size_t)(*scroll + h) < l->n)
        put(y1 - 1, COLS - 8 > 0 ? COLS - 8 : 0, A_REVERSE, " more v ");
}

/* ---- frame ------------------------------------------------------------------ */

static const char *const tab_names[SCR__COUNT] = { "Overview", "Running", "Dead letters", "Jobs",
                                                    "Health" };

static void draw_tabs(const struct ui *u)
{
    attr_t bar = look(P_BAR, A_REVERSE);
    attrset(bar);
    mvhline(0, 0, ' ', COLS);
    put(0, 0, bar | A_BOLD, " pgq top ");
    int x = 9;
    for (int s = 0; s < SCR__COUNT; s++) {
        char t[32];
        snprintf(t, sizeof t, " %d %s ", s + 1, tab_names[s]);
        attr_t a = s == (int)u->screen ? (colored ? A_REVERSE | A_BOLD : A_NORMAL | A_BOLD) : bar;
        put(0, x, a, "%s", t);
        x += (int)strlen(t);
    }
    if (u->snap) {
        char who[160];
        snprintf(who, sizeof who, " %s%s ", u->snap->user, u->snap->read_only ? " (read-only)" : "");
        int w = (int)strlen(who);
        if (x + w < COLS)
            put(0, COLS - w, bar, "%s", who);
    }
}

static void draw_totals(const struct ui *u)
{
    const struct snapshot *s = u->snap;
    if (!s) {
        put(1, 0, A_NORMAL, "connecting...");
        return;
    }
    const pgq_queue_stats *t = &s->total;
    char a[24], b[24], c[24], d[24], e[24], w[24];
    put(1, 0, A_NORMAL, "ready %s  sched %s  running %" PRId64 "  retrying %s  waiting %s"
        "  dead %s  done/1h %s", fmt_count(t->ready, t->ready_is, a, sizeof a),
        fmt_count(t->scheduled, t->future_is, b, sizeof b), t->running,
        fmt_count(t->retrying, t->future_is, c, sizeof c),
        fmt_count(t->waiting, t->waiting_is, w, sizeof w), fmt_count(t->dead, t->dead_is, d, sizeof d),
        fmt_count(t->done_last_hour, t->done_last_hour_is, e, sizeof e));
}

static void draw_status(const struct ui *u)
{
    int y = LINES - 1;
    attr_t bar = look(P_BAR, A_REVERSE);
    attrset(bar);
    mvhline(y, 0, ' ', COLS);
    attrset(A_NORMAL);
    if (u->mode == MODE_PROMPT) {
        /* The prompt starts empty; the filter in force is named, shortened. */
        const struct model_filter *f = &u->filter;
        char now[120], lead[200];
        snprintf(now, sizeof now, "%s%.20s%s%.20s%s%s%s%.20s", f->queue[0] ? "queue:" : "",
                 f->queue, f->type[0] ? " type:" : "", f->type, f->state[0] ? " state:" : "",
                 f->state, f->text[0] ? " " : "", f->text);
        if (now[0] == ' ')
            memmove(now, now + 1, strlen(now));
        if (now[0])
            snprintf(lead, sizeof lead, "filter (now %s; empty clears, Esc keeps): ", now);
        else
            snprintf(lead, sizeof lead, "filter (queue:Q type:T state:S text): ");
        /* a refused filter says why just above the prompt, which stays
         * open with the text to correct */
        if (u->msg_bad && u->msg[0])
            put(y - 1, 0, look(P_BAD, A_REVERSE | A_BOLD) | A_REVERSE, " %s ", u->msg);
        put(y, 0, A_BOLD, "%s%s", lead, u->prompt);
        int x = (int)strlen(lead) + (int)u->promptlen;
        move(y, x < COLS ? x : COLS - 1);
        return;
    }
    if (u->mode == MODE_CONFIRM) {
        put(y, 0, look(P_WARN, A_REVERSE) | A_BOLD | A_REVERSE, " %s ", u->question);
        return;
    }
    double now = (double)time(NULL);
    char age[32], right[96];
    if (u->st.error[0]) {
        /* The data on screen is old: say how old and why. */
        fmt_age(u->st.last_ok > 0 ? now - u->st.last_ok : 0, age, sizeof age);
        char e[400];
        clean(e, sizeof e, u->st.error);
        /* libpq says where before why; at 80 columns only the why fits */
        const char *why = strstr(e, " failed: ");
        why = why ? why + 9 : e;
        put(y, 0, look(P_BAD, A_REVERSE | A_BOLD) | A_REVERSE,
            u->st.connected ? " query failed (data %s old), retrying: %s "
                            : " database unreachable (data %s old), retrying: %s ",
            u->st.last_ok > 0 ? age : "none", why);
        return;
    }
    fmt_age(u->st.last_ok > 0 ? now - u->st.last_ok : 0, age, sizeof age);
    /* Counts carried over from an earlier refresh (the model counts again
     * as often as their cost allows) say how old they are. */
    char counts[48] = "", cage[32];
    if (u->snap && u->snap->counts_reused && now - u->snap->counts_taken >= 2)
        snprintf(counts, sizeof counts, ", counts %s old",
                 fmt_age(now - u->snap->counts_taken, cage, sizeof cage));
    snprintf(right, sizeof right, "%s%s%s  ? help  q quit ",
             u->snap && u->snap->read_only ? "READ-ONLY  " : "",
             u->snap ? (now - u->st.last_ok >= 3 ? age : "live") : "connecting", counts);
    int rw = (int)strlen(right);
    if (u->msg[0])
        put(y, 0, u->msg_bad ? look(P_BAD, A_REVERSE) | A_REVERSE : bar, " %.*s ",
            COLS - rw - 3 > 0 ? COLS - rw - 3 : 0, u->msg);
    if (rw < COLS)
        put(y, COLS - rw, bar, "%s", right);
}

/* ---- Overview ---------------------------------------------------------------- */

/* A queue's done jobs per minute and the share of its attempts that
 * failed, over the recent window pgq_stats read; the share is -1 when
 * nothing ended there. */
static double per_minute(int64_t n, double window_s)
{
    return window_s > 0 ? (double)n * 60.0 / window_s : 0;
}

static double fail_share(const pgq_queue_stats *q)
{
    double d = per_minute(q->done_5m, q->done_5m_window_s);
    double f = per_minute(q->failed_5m, q->failed_5m_window_s);
    return d + f > 0 ? f / (d + f) : -1;
}

static void overview_lines(const struct ui *u, struct lines *l)
{
    const struct snapshot *s = u->snap;
    char a[32], b[32];
    /* the name keeps 12 columns at least: on a narrow screen the figures
     * on the right are cut, not the queue's name */
    int qw = COLS - 70 > 12 ? COLS - 70 : 12;
    if (qw > 40)
        qw = 40;
    attr_t head = look(P_HEAD, A_BOLD) | A_BOLD;
    /* line 0 the header, line 1 + i queue i (the view puts the cursor there) */
    add_line(l, head, "  %-*s %7s %6s %5s %6s %6s %6s %7s %6s %5s", qw, "QUEUE", "READY", "SCHED",
             "RUN", "RETRY", "WAIT", "DEAD", "OLDEST", "DONE/m", "FAIL%");
    size_t unserved = 0;
    for (size_t i = 0; i < s->nqueues; i++) {
        const pgq_queue_stats *q = &s->queues[i];
        char name[256], c[5][24], old[24], rate[24], fail[16];
        clean(name, sizeof name, q->queue);
        bool nobody = pgq_queue_unserved(q);
        unserved += nobody;
        if (q->oldest_ready_s < 0)
            snprintf(old, sizeof old, "-");
        else
            fmt_age(q->oldest_ready_s, old, sizeof old);
        double pm = per_minute(q->done_5m, q->done_5m_window_s);
        snprintf(rate, sizeof rate, pm >= 100 || pm == 0 ? "%.0f" : "%.1f", pm);
        double fs = fail_share(q);
        if (fs < 0)
            snprintf(fail, sizeof fail, "-");
        else
            snprintf(fail, sizeof fail, "%.0f", fs * 100);
        attr_t at = nobody ? look(P_BAD, A_BOLD) : q->paused ? look(P_WARN, A_NORMAL)
                  : q->dead ? look(P_BAD, A_NORMAL) : A_NORMAL;
        add_line(l, at, "%c %-*.*s %7s %6s %5" PRId64 " %6s %6s %6s %7s %6s %5s",
                 nobody ? '!' : q->paused ? 'P' : ' ', qw, qw, name,
                 fmt_count(q->ready, q->ready_is, c[0], sizeof c[0]),
                 fmt_count(q->scheduled, q->future_is, c[1], sizeof c[1]), q->running,
                 fmt_count(q->retrying, q->future_is, c[2], sizeof c[2]),
                 fmt_count(q->waiting, q->waiting_is, c[4], sizeof c[4]),
                 fmt_count(q->dead, q->dead_is, c[3], sizeof c[3]), old, rate, fail);
    }
    if (s->nqueues == 0)
        add_line(l, A_DIM, "(no jobs yet)");
    else
        add_line(l, A_DIM, "P paused  ! no live pool serves it  ~ estimate  + at least"
                 "  p pause/resume");
    if (unserved)
        add_line(l, look(P_BAD, A_BOLD) | A_BOLD, "%zu queue%s (!) with due jobs that no live "
                 "pool claims from", unserved, unserved == 1 ? "" : "s");
    add_line(l, A_NORMAL, "%s", "");

    /* Limited types only (pgq.type_use): their use now, marked at a limit. */
    if (s->nlimits)
        add_line(l, head, "%-*s %11s %22s", qw, "LIMITED TYPE", "RUNNING", "STARTS / WINDOW");
    for (size_t i = 0; i < s->nlimits; i++) {
        const struct snap_limit *t = &s->limits[i];
        char name[256], run[40], rate[48];
        clean(name, sizeof name, t->type);
        if (t->concurrency > 0)
            snprintf(run, sizeof run, "%" PRId64 "/%d", t->running, t->concurrency);
        else
            snprintf(run, sizeof run, "%" PRId64, t->running);
        if (t->rate_count > 0)
            snprintf(rate, sizeof rate, "%" PRId64 "/%d per %s", t->window_starts,
                     t->rate_count, pgq_duration_format(t->rate_ms, a, sizeof a));
        else
            snprintf(rate, sizeof rate, "-");
        add_line(l, t->blocked ? look(P_BAD, A_BOLD) : A_NORMAL, "%-*.*s %11s %22s%s", qw, qw,
                 name, run, rate, t->blocked ? "  AT LIMIT" : "");
    }
    if (s->nlimits)
        add_line(l, A_NORMAL, "%s", "");

    /* Throughput: oldest bucket left, newest right. */
    int64_t max = 0;
    for (int i = 0; i < MODEL_TPUT_BUCKETS; i++)
        if (s->tput[i] > max)
            max = s->tput[i];
    int bs = s->q.tput_bucket_s;
    add_line(l, head, "THROUGHPUT  done per %ds over the last %s: now %" PRId64 ", peak %" PRId64,
             bs, fmt_age((double)bs * MODEL_TPUT_BUCKETS, a, sizeof a), s->tput[0], max);
    /* Buckets older than the newest jobs read reach are unknown, not zero. */
    int known = (int)(s->tput_covered_s / bs);
    if (known < MODEL_TPUT_BUCKETS)
        add_line(l, A_DIM, "  (the newest %d done jobs reach %s back: '?' further)",
                 s->q.stats_cap, fmt_age(s->tput_covered_s, b, sizeof b));
    static const char *const blocks[] = { " ", "\u2581", "\u2582", "\u2583", "\u2584",
                                          "\u2585", "\u2586", "\u2587", "\u2588" };
    static const char ascii[] = " .:-=+*#%@";
    char spark[MODEL_TPUT_BUCKETS * 3 + 1];
    size_t k = 0;
    for (int i = MODEL_TPUT_BUCKETS - 1; i >= 0; i--) {
        int64_t v = s->tput[i];
        if (i >= known) {
            spark[k++] = '?';
            continue;
        }
        if (u->utf8) {
            int lvl = max ? (int)((v * 8 + max - 1) / max) : 0;
            size_t n = strlen(blocks[lvl]);
            memcpy(spark + k, blocks[lvl], n);
            k += n;
        } else {
            int lvl = max ? (int)((v * 9 + max - 1) / max) : 0;
            spark[k++] = ascii[lvl];
        }
    }
    spark[k] = '\0';
    add_line(l, look(P_GOOD, A_NORMAL), "%s|now", spark);
    add_line(l, A_NORMAL, "%s", "");

    add_line(l, head, "POOLS  %zu registered", s->npools);
    if (s->nstale)
        add_line(l, look(P_BAD, A_BOLD), "%zu pool%s STALE: no heartbeat for over %s", s->nstale,
                 s->nstale == 1 ? "" : "s", fmt_age(s->q.stale_s, a, sizeof a));
    int hw = COLS - 50 > 16 ? COLS - 50 : 16;
    if (hw > 40)
        hw = 40;
    add_line(l, head, "%-*s %7s %7s %8s %9s  %s", hw, "HOST:PID", "WORKERS", "IN-FL",
             "BEAT", "UP", "QUEUES");
    for (size_t i = 0; i < s->npools; i++) {
        const struct snap_pool *p = &s->pools[i];
        char hp[300];
        snprintf(hp, sizeof hp, "%s:%d", p->host, p->pid);
        add_line(l, p->stale ? look(P_BAD, A_BOLD) : A_NORMAL, "%-*.*s %7d %7d %8s %9s  %s%s",
                 hw, hw, hp, p->workers, p->in_flight, fmt_age(p->beat_age_s, a, sizeof a),
                 fmt_age(p->up_s, b, sizeof b), p->stale ? "STALE " : "", p->queues);
    }
    if (s->npools == 0)
        add_line(l, A_DIM, "(no pool is registered: start pgq-pool)");
    if (s->running_orphans)
        add_line(l, look(P_WARN, A_BOLD), "%" PRId64 " running job%s leased by no registered "
                 "pool (retried when the lease expires)", s->running_orphans,
                 s->running_orphans == 1 ? "" : "s");

    /* Periodic jobs, a line each; only when there are any. */
    if (s->ncrons == 0)
        return;
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, head, "CRON  %zu schedule%s", s->ncrons, s->ncrons == 1 ? "" : "s");
    int cw = COLS - 58 > 12 ? COLS - 58 : 12;
    if (cw > 30)
        cw = 30;
    add_line(l, head, "%-*s %-18s %-14s %-12s %s", cw, "NAME", "SCHEDULE", "TYPE", "NEXT",
             "LAST JOB");
    for (size_t i = 0; i < s->ncrons; i++) {
        const struct snap_cron *cr = &s->crons[i];
        char name[256], sched[256], type[256], next[48], job[64];
        clean(name, sizeof name, cr->name);
        clean(sched, sizeof sched, cr->schedule);
        clean(type, sizeof type, cr->type);
        if (!cr->has_next)
            snprintf(next, sizeof next, "-");
        else if (cr->next_in_s >= 0)
            snprintf(next, sizeof next, "in %s", fmt_age(cr->next_in_s, a, sizeof a));
        else
            snprintf(next, sizeof next, "late %s", fmt_age(-cr->next_in_s, a, sizeof a));
        if (cr->last_job < 0)
            snprintf(job, sizeof job, "-");
        else
            snprintf(job, sizeof job, "%" PRId64 " %s", cr->last_job,
                     cr->last_state ? cr->last_state : "(pruned)");
        bool late = cr->has_next && cr->next_in_s < -60;
        add_line(l, late ? look(P_BAD, A_NORMAL) : A_NORMAL, "%-*.*s %-18.18s %-14.14s %-12s %s",
                 cw, cw, name, sched, type, next, job);
    }
}

/* ---- Health ------------------------------------------------------------------ */

static void health_lines(const struct ui *u, struct lines *l)
{
    const struct snapshot *s = u->snap;
    char a[32], b[32], c[32];
    attr_t head = look(P_HEAD, A_BOLD) | A_BOLD;
    add_line(l, A_NORMAL, "database size %s", fmt_bytes(s->db_bytes, a, sizeof a));
    add_line(l, head, "%-16s %9s %10s %9s %12s %12s", "TABLE", "SIZE", "LIVE ROWS", "DEAD ROWS",
             "VACUUM", "AUTOVACUUM");
    for (size_t i = 0; i < s->ntables; i++) {
        const struct snap_table *t = &s->tables[i];
        char v[40], av[40];
        if (t->vacuum_age_s < 0)
            snprintf(v, sizeof v, "never");
        else
            snprintf(v, sizeof v, "%s ago", fmt_age(t->vacuum_age_s, b, sizeof b));
        if (t->autovacuum_age_s < 0)
            snprintf(av, sizeof av, "never");
        else
            snprintf(av, sizeof av, "%s ago", fmt_age(t->autovacuum_age_s, c, sizeof c));
        /* Many dead rows against live ones: vacuum is behind. */
        bool bloat = t->dead > 1000 && t->dead > t->live / 5;
        add_line(l, bloat ? look(P_WARN, A_BOLD) : A_NORMAL, "%-16.16s %9s %10" PRId64 " %9" PRId64
                 " %12s %12s", t->name, fmt_bytes(t->bytes, a, sizeof a), t->live, t->dead, v, av);
    }
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, head, "OLDEST TRANSACTIONS (their snapshots hold back vacuum)");
    if (s->nxacts == 0)
        add_line(l, A_DIM, "none");
    else
        add_line(l, head, "%7s %9s %9s  %-20s %s", "PID", "AGE", "XMIN AGE", "STATE", "USER/APP: QUERY");
    for (size_t i = 0; i < s->nxacts; i++) {
        const struct snap_xact *x = &s->xacts[i];
        char q[400];
        clean(q, sizeof q, x->query);
        add_line(l, x->age_s > 300 ? look(P_WARN, A_BOLD) : A_NORMAL,
                 "%7d %9s %9" PRId64 "  %-20.20s %s/%s: %s", x->pid,
                 fmt_age(x->age_s, a, sizeof a), x->xmin_age, x->state, x->user, x->app, q);
    }
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, head, "LOCK WAITS ON PGQ TABLES");
    if (s->nlocks == 0)
        add_line(l, A_DIM, "none");
    else
        add_line(l, head, "%7s %9s  %-20s %-18s %-10s %s", "PID", "WAITING", "ON", "MODE",
                 "BLOCKED BY", "QUERY");
    for (size_t i = 0; i < s->nlocks; i++) {
        const struct snap_lock *k = &s->locks[i];
        char q[400];
        clean(q, sizeof q, k->query);
        add_line(l, look(P_WARN, A_BOLD), "%7d %9s  %-20.20s %-18.18s %-10.10s %s", k->pid,
                 fmt_age(k->wait_s, a, sizeof a), k->rel, k->mode, k->blockers, q);
    }
}

/* ---- a job's detail ----------------------------------------------------------- */

static void detail_lines(const struct ui *u, struct lines *l)
{
    const struct snapshot *s = u->snap;
    const pgq_job_detail *d = s->detail;
    attr_t head = look(P_HEAD, A_BOLD) | A_BOLD;
    char a[32], b[32];
    if (s->q.detail_id != u->detail_id) {
        add_line(l, A_DIM, "loading job %" PRId64 "...", u->detail_id);
        return;
    }
    if (!d) {
        add_line(l, look(P_BAD, A_BOLD), "job %" PRId64 " does not exist (pruned or deleted)",
                 u->detail_id);
        return;
    }
    add_line(l, A_BOLD, "job %" PRId64 "  type %s  queue %s  state %s", d->id, d->type, d->queue,
             d->state);
    add_line(l, A_NORMAL, "attempts %d of %d (max_retries %d)  priority %d", d->attempts,
             d->max_retries + 1, d->max_retries, d->priority);
    add_line(l, A_NORMAL, "created  %s", d->created_at);
    add_line(l, A_NORMAL, "run at   %s", d->run_at);
    if (d->started_at)
        add_line(l, A_NORMAL, "started  %s", d->started_at);
    if (d->finished_at)
        add_line(l, A_NORMAL, "finished %s", d->finished_at);
    if (d->lease_owner && strcmp(d->state, "running") == 0)
        add_line(l, A_NORMAL, "lease    %s until %s", d->lease_owner,
                 d->lease_expires_at ? d->lease_expires_at : "-");
    else if (d->lease_owner)
        add_line(l, A_NORMAL, "last ran on %s", d->lease_owner);
    if (d->idempotency_key)
        add_line(l, A_NORMAL, "idempotency key %s", d->idempotency_key);
    if (d->last_error) {
        /* done: the error is an earlier attempt's, not the job's state */
        add_line(l, A_NORMAL, "%s", strcmp(d->state, "done") == 0
                                        ? "error of an earlier attempt (the job is done):"
                                        : "last error:");
        add_wrapped(l, look(P_BAD, A_BOLD), 2, d->last_error);
    }
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, head, "PAYLOAD");
    add_wrapped(l, A_NORMAL, 2, d->payload_pretty);
    if (d->result || d->result_note) {
        /* The head of a long result: `pgq result ID` prints all of it. */
        enum { SHOWN = 2000 };
        add_line(l, A_NORMAL, "%s", "");
        add_line(l, head, "RESULT");
        if (d->result) {
            size_t n = strlen(d->result), k = n;
            if (k > SHOWN) {
                k = SHOWN;
                while (k > 0 && ((unsigned char)d->result[k] & 0xC0) == 0x80)
                    k--;   /* not inside a UTF-8 character */
            }
            char *shown = strndup(d->result, k);
            if (shown) {
                add_wrapped(l, A_NORMAL, 2, shown);
                free(shown);
            }
            if (k < n)
                add_line(l, A_DIM, "  ... %zu bytes in all (pgq result %" PRId64 ")", n, d->id);
        }
        if (d->result_note)
            add_wrapped(l, look(P_WARN, A_NORMAL), 2, d->result_note);
    }
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, head, "ATTEMPTS (%zu)", d->nattempts);
    if (d->nattempts)
        add_line(l, head, "%3s %-13s %-22s %9s %8s %8s %5s", "#", "OUTCOME", "WORKER",
                 "DURATION", "CPU", "MAX RSS", "EXIT");
    for (size_t i = 0; i < d->nattempts; i++) {
        const pgq_attempt_row *t = &d->attempts_v[i];
        char dur[24] = "-", cpu[24] = "-", rss[24] = "-", ex[16] = "-";
        if (t->duration_ms >= 0)
            snprintf(dur, sizeof dur, "%.0fms", t->duration_ms);
        if (t->cpu_ms >= 0)
            snprintf(cpu, sizeof cpu, "%" PRId64 "ms", t->cpu_ms);
        if (t->max_rss_kb >= 0)
            fmt_bytes(t->max_rss_kb * 1024, rss, sizeof rss);
        if (t->term_signal > 0)
            snprintf(ex, sizeof ex, "sig%d", t->term_signal);
        else if (t->exit_code >= 0)
            snprintf(ex, sizeof ex, "%d", t->exit_code);
        bool bad = strcmp(t->outcome, "done") != 0 && strcmp(t->outcome, "released") != 0;
        add_line(l, bad ? look(P_WARN, A_NORMAL) : A_NORMAL, "%3d %-13s %-22.22s %9s %8s %8s %5s",
                 t->attempt, t->outcome, t->worker ? t->worker : "-", dur, cpu, rss, ex);
        /* the time to the second, then the error, wrapped */
        char when[64];
        snprintf(when, sizeof when, "%.19s", t->finished_at);
        if (t->error) {
            char *both = NULL;
            if (asprintf(&both, "%s  %s", when, t->error) >= 0) {
                add_wrapped(l, look(P_BAD, A_NORMAL), 4, both);
                free(both);
            }
        } else {
            add_line(l, A_DIM, "    %s", when);
        }
    }
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, head, "EFFECTS (run_once: %zu)", d->neffects);
    for (size_t i = 0; i < d->neffects; i++) {
        const pgq_effect_row *e = &d->effects[i];
        add_line(l, e->in_doubt ? look(P_BAD, A_BOLD) : A_NORMAL, "  %-30s %-8s attempt %d  %.19s%s%.19s",
                 e->key, e->state, e->attempt, e->started_at,
                 e->finished_at ? " .. " : "", e->finished_at ? e->finished_at : "");
        if (e->in_doubt)
            add_line(l, look(P_BAD, A_BOLD),
                     "    IN DOUBT: its worker died while it ran; it will not run again");
    }
    /* Dependencies (pgq add --after): whom it waits for, who waits for it. */
    if (d->nparents || d->nchildren_total) {
        add_line(l, A_NORMAL, "%s", "");
        add_line(l, head, "WAITS FOR (%zu, %d not done)", d->nparents, d->waiting_for);
        for (size_t i = 0; i < d->nparents; i++)
            add_line(l, strcmp(d->parents[i].state, "dead") == 0 ||
                            strcmp(d->parents[i].state, "cancelled") == 0
                            ? look(P_BAD, A_NORMAL) : A_NORMAL,
                     "  job %-12" PRId64 " %s", d->parents[i].id, d->parents[i].state);
        add_line(l, head, "WAITED FOR BY (%zu)", d->nchildren_total);
        for (size_t i = 0; i < d->nchildren; i++)
            add_line(l, A_NORMAL, "  job %-12" PRId64 " %s", d->children[i].id,
                     d->children[i].state);
        if (d->nchildren < d->nchildren_total)
            add_line(l, A_DIM, "  (the first %zu shown)", d->nchildren);
    }
    (void)a;
    (void)b;
}

/* ---- lists ---------------------------------------------------------------------- */

static void list_title(const struct ui *u, const char *what, size_t shown, int64_t total,
                       bool capped)
{
    const struct model_filter *f = &u->snap->q.filter;
    char filt[700] = "";
    if (f->queue[0] || f->type[0] || f->state[0] || f->text[0])
        snprintf(filt, sizeof filt, "  filter:%s%s%s%s%s%s%s%s", f->queue[0] ? " queue:" : "",
                 f->queue, f->type[0] ? " type:" : "", f->type,
                 f->state[0] && u->screen == SCR_JOBS ? " state:" : "",
                 u->screen == SCR_JOBS ? f->state : "", f->text[0] ? " " : "", f->text);
    char sel[48] = "";
    if (u->nmarked)
        snprintf(sel, sizeof sel, "  [%zu selected]", u->nmarked);
    put(2, 0, A_BOLD, "%s %" PRId64 "%s%s%s%s", what, total, capped ? "+" : "",
        (int64_t)shown < total ? " (newest shown)" : "", filt, sel);
}

static void draw_list(struct ui *u)
{
    size_t n;
    const struct snap_job *rows = ui_rows(u, &n);
    const struct snapshot *s = u->snap;
    struct list_pos *p = &u->pos[u->screen];
    attr_t head = look(P_HEAD, A_BOLD) | A_BOLD;
    int page = ui_page();
    int y0 = 4;
    char a[32], b[32];

    if (u->screen == SCR_RUNNING) {
        list_title(u, "RUNNING", n, s->running_total, s->running_total_capped);
        int ww = COLS - 63 > 8 ? COLS - 63 : 8;
        put(3, 0, head, "  %-8s %-16s %-10s %-*s %5s %8s %8s", "ID", "TYPE", "QUEUE", ww,
            "POOL/WORKER", "TRY", "ELAPSED", "LEASE");
    } else if (u->screen == SCR_DEAD) {
        list_title(u, "DEAD LETTERS", n, s->dead_total, s->dead_total_capped);
        put(3, 0, head, "  %-8s %-14s %-9s %5s %7s  %s", "ID", "TYPE", "QUEUE", "TRIES", "DIED",
            "LAST ERROR");
    } else {
        list_title(u, "JOBS", n, s->jobs_total, s->jobs_total_capped);
        put(3, 0, head, "  %-8s %-14s %-9s %-9s %5s %7s  %s", "ID", "TYPE", "QUEUE", "STATE",
            "TRIES", "AGE", "LAST ERROR / WORKER");
    }
    if (n == 0) {
        put(y0, 2, A_DIM, "%s", u->screen == SCR_DEAD ? "no dead letters"
                                : u->screen == SCR_RUNNING ? "no job is running"
                                                           : "no job matches");
        return;
    }
    /* Keep the cursor on screen. */
    if (p->cursor < p->top)
        p->top = p->cursor;
    if (p->cursor >= p->top + page)
        p->top = p->cursor - page + 1;
    if (p->top > (int)n - page)
        p->top = (int)n - page > 0 ? (int)n - page : 0;
    for (int i = 0; i < page && (size_t)(p->top + i) < n; i++) {
        const struct snap_job *j = &rows[p->top + i];
        bool cur = p->top + i == p->cursor;
        bool mk = ui_is_marked(u, j->id);
        char id[24], line[1024], err[600];
        snprintf(id, sizeof id, "%" PRId64, j->id);
        clean(err, sizeof err, j->error);
        attr_t at = A_NORMAL;
        if (u->screen == SCR_RUNNING) {
            int ww = COLS - 63 > 8 ? COLS - 63 : 8;
            char left[32];
            if (j->lease_left_s < 0) {
                snprintf(left, sizeof left, "EXPIRED");
                at = look(P_BAD, A_BOLD);
            } else {
                fmt_age(j->lease_left_s, left, sizeof left);
            }
            char owner[300];
            snprintf(line, sizeof line, "%c %-8s %-16.16s %-10.10s %-*.*s %2d/%-2d %8s %8s",
                     mk ? '*' : ' ', id, j->type, j->queue, ww, ww,
                     short_owner(j->owner, owner, sizeof owner), j->attempts,
                     j->max_retries + 1, fmt_age(j->age_s, a, sizeof a), left);
        } else if (u->screen == SCR_DEAD) {
            snprintf(line, sizeof line, "%c %-8s %-14.14s %-9.9s %5d %7s  %s", mk ? '*' : ' ',
                     id, j->type, j->queue, j->attempts, fmt_age(j->age_s, a, sizeof a), err);
        } else {
            const char *st = j->state;
            if (j->scheduled)
                st = j->attempts > 0 ? "retrying" : "scheduled";
            if (strcmp(st, "dead") == 0)
                at = look(P_BAD, A_NORMAL);
            else if (strcmp(st, "running") == 0)
                at = look(P_GOOD, A_NORMAL);
            else if (j->scheduled)
                at = look(P_WARN, A_NORMAL);
            char when[40], owner[300];
            if (j->scheduled)
                snprintf(when, sizeof when, "in %s", fmt_age(j->lease_left_s, b, sizeof b));
            else
                fmt_age(j->age_s, when, sizeof when);
            snprintf(line, sizeof line, "%c %-8s %-14.14s %-9.9s %-9.9s %5d %7s  %s",
                     mk ? '*' : ' ', id, j->type, j->queue, st, j->attempts, when,
                     strcmp(j->state, "running") == 0 ? short_owner(j->owner, owner, sizeof owner)
                                                      : err);
        }
        if (mk)
            at = look(P_MARK, A_BOLD) | A_BOLD;
        if (cur)
            at |= A_REVERSE;
        if (cur) {
            attrset(at);
            mvhline(y0 + i, 0, ' ', COLS);
        }
        put(y0 + i, 0, at, "%s", line);
    }
}

/* ---- help -------------------------------------------------------------------------- */

static void help_lines(struct lines *l)
{
    size_t n;
    const struct key_help *k = keys_help(&n);
    add_line(l, A_BOLD, "KEYS  (any key closes this help)");
    for (size_t i = 0; i < n; i++)
        add_line(l, A_NORMAL, "  %-10s %s", k[i].keys, k[i].help);
    add_line(l, A_NORMAL, "%s", "");
    add_line(l, A_NORMAL, "  Actions ask for confirmation (y); each is recorded in pgq.actions.");
}

/* ---- entry ----------------------------------------------------------------------------- */

void view_draw(struct ui *u)
{
    static const unsigned needed[SCR__COUNT] = { MODEL_OVERVIEW, MODEL_RUNNING, MODEL_DEAD,
                                                 MODEL_JOBS, MODEL_HEALTH };
    erase();
    curs_set(u->mode == MODE_PROMPT ? 1 : 0);
    draw_tabs(u);
    draw_totals(u);
    if (u->mode == MODE_HELP) {
        struct lines l = { 0 };
        int sc = 0;
        help_lines(&l);
        draw_lines(&l, 2, LINES - 1, &sc);
        lines_free(&l);
    } else if (!u->snap) {
        put(3, 2, A_DIM, "waiting for the first data from the database...");
    } else if (u->mode == MODE_DETAIL || (u->mode == MODE_CONFIRM && u->detail_id)) {
        struct lines l = { 0 };
        put(2, 0, A_BOLD, "JOB %" PRId64 "   Esc back  j/k scroll  r requeue  c cancel",
            u->detail_id);
        detail_lines(u, &l);
        draw_lines(&l, 3, LINES - 1, &u->detail_scroll);
        lines_free(&l);
    } else if (!(u->snap->q.parts & needed[u->screen])) {
        put(3, 2, A_DIM, "loading...");   /* the snapshot is of another screen */
    } else if (u->screen == SCR_OVERVIEW || u->screen == SCR_HEALTH) {
        struct lines l = { 0 };
        if (u->screen == SCR_OVERVIEW) {
            overview_lines(u, &l);
            /* the queue under the cursor: line 1 + qcursor, kept in view
             * when it moved */
            size_t ln = 1 + (size_t)u->qcursor;
            if (u->snap->nqueues && ln < l.n && u->mode == MODE_NORMAL)
                l.v[ln].attr |= A_REVERSE;
            int h = LINES - 3;
            if (u->qmoved && h > 0) {
                if ((int)ln < u->scroll[SCR_OVERVIEW] + 1)
                    u->scroll[SCR_OVERVIEW] = (int)ln - 1 > 0 ? (int)ln - 1 : 0;
                if ((int)ln >= u->scroll[SCR_OVERVIEW] + h)
                    u->scroll[SCR_OVERVIEW] = (int)ln - h + 1;
            }
            u->qmoved = false;
        } else {
            health_lines(u, &l);
        }
        draw_lines(&l, 2, LINES - 1, &u->scroll[u->screen]);
        lines_free(&l);
    } else {
        draw_list(u);
    }
    draw_status(u);
    refresh();
}
