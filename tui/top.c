/* The dashboard's loop: terminal set-up, signals, and the UI thread.
 *
 * pgq_top_run starts the model thread (model.c), then loops on the UI
 * thread: take the newest snapshot, keep each list's selection on the same
 * job id, draw (view.c) when anything changed or once a second (ages tick),
 * and wait at most 100 ms for a key, which goes through the key table
 * (keys.c). The wait is short so that a new snapshot, a resize (ncurses
 * turns SIGWINCH into KEY_RESIZE) or a request to stop shows promptly; the
 * database is never waited for here.
 *
 * Signals (pgq top): SIGINT, SIGTERM and SIGHUP are blocked before any
 * thread starts, so every thread inherits the mask, and a dedicated thread
 * takes them with sigwait and sets an atomic flag the loop polls; the loop
 * then ends normally and endwin() restores the terminal. Embedded
 * (pgq-pool --tui) the host keeps its own signal handling and sets
 * opts->stop instead. */
#include "top.h"

#include <curses.h>
#include <langinfo.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ui.h"

/* ---- the loop ------------------------------------------------------------------ */

static void push_query(struct ui *u, bool force)
{
    static const unsigned parts[SCR__COUNT] = { MODEL_OVERVIEW, MODEL_RUNNING, MODEL_DEAD,
                                                MODEL_JOBS, MODEL_HEALTH };
    struct model_query q;
    memset(&q, 0, sizeof q);
    q.parts = parts[u->screen];
    q.filter = u->filter;
    q.detail_id = u->detail_id;
    q.stale_s = u->opts->stale_s;
    model_set_query(u->model, &q, force);
}

/* A new snapshot arrived: take its action message, move every list's
 * cursor and window onto the new rows (follow.c says how), keep the
 * Overview's queue cursor on its queue, and forget marks of jobs gone. */
static void adopt(struct ui *u, struct snapshot *s)
{
    snapshot_release(u->snap);
    u->snap = s;
    if (s->msg_seq != u->msg_seq) {
        u->msg_seq = s->msg_seq;
        ui_say(u, strncmp(s->msg, "action failed", 13) == 0 || strncmp(s->msg, "refused", 7) == 0,
               "%s", s->msg);
    }
    enum tab keep = u->screen;
    for (int sc = SCR_RUNNING; sc <= SCR_JOBS; sc++) {
        size_t n;
        u->screen = (enum tab)sc;
        const struct snap_job *rows = ui_rows(u, &n);
        if (!rows)
            continue;
        list_follow(&u->pos[sc], rows, n, ui_page());
        if (sc == (int)keep) {
            size_t k = 0;
            for (size_t m = 0; m < u->nmarked; m++)
                if (snapshot_find(rows, n, u->marked[m]) >= 0)
                    u->marked[k++] = u->marked[m];
            u->nmarked = k;
        }
    }
    u->screen = keep;
    /* the Overview's queue cursor stays on its queue, by name */
    if (s->q.parts & MODEL_OVERVIEW) {
        int i = -1;
        for (size_t q = 0; q < s->nqueues && i < 0; q++)
            if (strcmp(s->queues[q].queue, u->qsel) == 0)
                i = (int)q;
        if (i < 0)
            i = u->qcursor < (int)s->nqueues ? u->qcursor : (int)s->nqueues - 1;
        u->qcursor = i < 0 ? 0 : i;
        snprintf(u->qsel, sizeof u->qsel, "%s", s->nqueues ? s->queues[u->qcursor].queue : "");
    }
}

/* The signal thread: wait for one of the blocked signals, raise the flag. */
struct sigwatch {
    sigset_t set;
    atomic_int got;
    pthread_t thread;
};

static void *sig_main(void *arg)
{
    struct sigwatch *w = arg;
    int sig = 0;
    if (sigwait(&w->set, &sig) == 0)
        atomic_store(&w->got, sig);
    return NULL;
}

int pgq_top_run(const char *db_url, const struct top_opts *o, char *err, size_t errlen)
{
    static const struct top_opts defaults = TOP_OPTS_INIT;
    struct top_opts opts = o ? *o : defaults;
    struct ui u;
    struct sigwatch sw;
    sigset_t oldmask;
    bool sig_started = false, term_up = false;
    SCREEN *scr = NULL;
    int rc = -1;

    memset(&u, 0, sizeof u);
    memset(&sw, 0, sizeof sw);
    if (opts.refresh_ms <= 0)
        opts.refresh_ms = 1000;
    if (opts.stale_s <= 0)
        opts.stale_s = 60;
    u.opts = &opts;

    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        snprintf(err, errlen, "the dashboard needs a terminal (stdin and stdout)");
        return -1;
    }
    if (opts.handle_signals) {
        sigemptyset(&sw.set);
        sigaddset(&sw.set, SIGINT);
        sigaddset(&sw.set, SIGTERM);
        sigaddset(&sw.set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &sw.set, &oldmask);
        int e = pthread_create(&sw.thread, NULL, sig_main, &sw);
        if (e != 0) {
            snprintf(err, errlen, "cannot start the signal thread: %s", strerror(e));
            goto out;
        }
        sig_started = true;
    }
    if (model_start(db_url, opts.who ? opts.who : "pgq top", opts.refresh_ms, &u.model, err,
                    errlen) < 0)
        goto out;

    /* Only the character type: the model parses numbers with strtod, which
     * must keep the C locale's decimal point. */
    setlocale(LC_CTYPE, "");
    u.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    scr = newterm(NULL, stdout, stdin);
    if (!scr) {
        const char *t = getenv("TERM");
        snprintf(err, errlen, "cannot use the terminal (TERM=%s)", t ? t : "unset");
        goto out;
    }
    term_up = true;
    set_escdelay(25);
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    timeout(100);
    curs_set(0);
    if (has_colors() && !opts.no_color && start_color() == OK) {
        view_colors();
        u.color = true;
    }
    push_query(&u, true);

    time_t drawn_at = 0;
    struct model_status last_st;
    memset(&last_st, 0, sizeof last_st);
    bool dirty = true;
    for (;;) {
        if (atomic_load(&sw.got) || (opts.stop && atomic_load(opts.stop)))
            break;
        struct snapshot *s = model_acquire(u.model);
        if (s && (!u.snap || s->gen != u.snap->gen)) {
            adopt(&u, s);
            dirty = true;
        } else {
            snapshot_release(s);
        }
        model_status(u.model, &u.st);
        if (memcmp(&u.st, &last_st, sizeof last_st) != 0) {
            last_st = u.st;
            dirty = true;
        }
        if (dirty || time(NULL) != drawn_at) {
            view_draw(&u);
            drawn_at = time(NULL);
            dirty = false;
        }
        int ch = getch();
        if (ch == ERR)
            continue;
        dirty = true;
        if (ch == KEY_RESIZE)
            continue;
        enum next nx = keys_handle(&u, ch);
        if (nx == NEXT_QUIT)
            break;
        push_query(&u, nx == NEXT_REFETCH);
    }
    rc = 0;
out:
    if (term_up) {
        endwin();
        delscreen(scr);
    }
    model_stop(u.model);
    snapshot_release(u.snap);
    free(u.marked);
    free(u.pending.ids);
    if (opts.handle_signals) {
        if (sig_started) {
            /* wake the signal thread if no signal came; it takes it */
            if (!atomic_load(&sw.got))
                pthread_kill(sw.thread, SIGTERM);
            pthread_join(sw.thread, NULL);
        }
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
    }
    return rc;
}
