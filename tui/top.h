/* The pgq dashboard ("pgq top", "pgq-pool --tui"): a live ncurses console
 * for the whole fleet, read from PostgreSQL. */
#ifndef PGQ_TUI_TOP_H
#define PGQ_TUI_TOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct top_opts {
    int64_t refresh_ms;        /* between refreshes; <= 0: 1 s */
    double stale_s;            /* a pool without heartbeat this long is stale; <= 0: 60 */
    const char *who;           /* recorded with actions in pgq.actions; NULL: "pgq top" */
    bool no_color;             /* plain even where the terminal has colour */
    /* true (pgq top): SIGINT/SIGTERM/SIGHUP end the dashboard cleanly; this
     * blocks them in the calling thread and waits for them on a thread of
     * its own. false (embedded): the host handles signals and sets *stop. */
    bool handle_signals;
    atomic_bool *stop;         /* may be NULL; set true (any thread) to quit */
};

#define TOP_OPTS_INIT { 1000, 60, NULL, false, true, NULL }

/* Run the dashboard on the terminal (stdin/stdout) against db_url until the
 * operator quits (q), *stop is set, or a handled signal arrives; the
 * terminal is restored in every case. 0 on a normal end, -1 with err when
 * it could not start (no terminal, no thread). Database errors do not end
 * it: they show in the status line while the model reconnects. Call from
 * one thread at a time (ncurses is not reentrant). */
int pgq_top_run(const char *db_url, const struct top_opts *o, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
