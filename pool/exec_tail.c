/*
 * exec_tail.c -- what a failed command says: the tail of its stderr and the
 * one-line error an attempt records.
 *
 * stderr is read as it comes (the pipe must not fill up, or the command
 * would block), but only the last EXEC_TAIL_CAP bytes are kept: a handler
 * that logs a megabyte before failing is remembered by its last lines. The
 * error is "<how it ended>[ after timeout (D) | after cancellation]:
 * <tail>", the tail cut to whole lines where it had to be cut and made
 * storable text (a job's error goes into a text column and onto a
 * terminal).
 */
#include "exec_int.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "duration.h"
#include "utf8.h"

#define TAIL_MAX 2000       /* at most this much of the tail goes into the error */

/* sigabbrev_np needs glibc 2.32; these are the signals a command dies of. */
static const char *signame(int sig, char *buf, size_t len)
{
    static const char *const names[] = {
        [SIGHUP] = "SIGHUP", [SIGINT] = "SIGINT", [SIGQUIT] = "SIGQUIT",
        [SIGILL] = "SIGILL", [SIGTRAP] = "SIGTRAP", [SIGABRT] = "SIGABRT",
        [SIGBUS] = "SIGBUS", [SIGFPE] = "SIGFPE", [SIGKILL] = "SIGKILL",
        [SIGUSR1] = "SIGUSR1", [SIGSEGV] = "SIGSEGV", [SIGUSR2] = "SIGUSR2",
        [SIGPIPE] = "SIGPIPE", [SIGALRM] = "SIGALRM", [SIGTERM] = "SIGTERM",
        [SIGSTKFLT] = "SIGSTKFLT", [SIGCHLD] = "SIGCHLD", [SIGCONT] = "SIGCONT",
        [SIGSTOP] = "SIGSTOP", [SIGTSTP] = "SIGTSTP", [SIGTTIN] = "SIGTTIN",
        [SIGTTOU] = "SIGTTOU", [SIGURG] = "SIGURG", [SIGXCPU] = "SIGXCPU",
        [SIGXFSZ] = "SIGXFSZ", [SIGVTALRM] = "SIGVTALRM", [SIGPROF] = "SIGPROF",
        [SIGWINCH] = "SIGWINCH", [SIGIO] = "SIGIO", [SIGPWR] = "SIGPWR",
        [SIGSYS] = "SIGSYS",
    };

    if (sig > 0 && (size_t)sig < sizeof names / sizeof names[0] && names[sig])
        return names[sig];
    if (sig >= SIGRTMIN && sig <= SIGRTMAX)
        snprintf(buf, len, "SIGRTMIN+%d", sig - SIGRTMIN);
    else
        snprintf(buf, len, "signal %d", sig);
    return buf;
}

static void tail_add(struct exec_tail *t, const char *p, size_t n)
{
    size_t keep;

    t->total += n;
    if (n >= EXEC_TAIL_CAP) {
        memcpy(t->buf, p + n - EXEC_TAIL_CAP, EXEC_TAIL_CAP);
        t->len = EXEC_TAIL_CAP;
        return;
    }
    keep = t->len + n > EXEC_TAIL_CAP ? EXEC_TAIL_CAP - n : t->len;
    memmove(t->buf, t->buf + t->len - keep, keep);
    memcpy(t->buf + keep, p, n);
    t->len = keep + n;
}

/* The tail as text of at most max bytes: whole lines when it had to be cut
 * and a line break allows, no leading blank lines, no trailing whitespace,
 * and storable: NUL, control characters and invalid UTF-8 become '?'
 * (tabs and newlines stay, CRLF becomes LF). */
static void tail_text(const struct exec_tail *t, char *dst, size_t max)
{
    const char *s = t->buf, *e = t->buf + t->len, *p;
    bool cut = t->total > t->len;
    size_t o = 0;

    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if ((size_t)(e - s) > max) {
        s = e - max;
        cut = true;
    }
    if (cut) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        if (nl && nl + 1 < e)
            s = nl + 1;
        else
            while (s < e && ((unsigned char)*s & 0xC0) == 0x80)
                s++;
    }
    for (p = s; p < e && isspace((unsigned char)*p); p++)
        if (*p == '\n')
            s = p + 1;
    for (p = s; p < e;) {
        unsigned char c = (unsigned char)*p;
        size_t n;

        if (c == '\r' && p + 1 < e && p[1] == '\n') {
            p++;
        } else if (c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7F)) {
            dst[o++] = (char)c;
            p++;
        } else if (c >= 0x80 && (n = utf8_char_len((const unsigned char *)p, (size_t)(e - p))) > 0) {
            memcpy(dst + o, p, n);
            o += n;
            p += n;
        } else {
            dst[o++] = '?';
            p++;
        }
    }
    dst[o] = '\0';
}

void exec_error_text(exec_result *res, const exec_request *req, const struct exec_tail *t,
                     int run_errno)
{
    char what[160], tail[TAIL_MAX + 1], buf[64], dur[32];
    size_t room;
    int n;

    if (!res->started) {
        snprintf(res->error, sizeof res->error, "cannot run \"%s\": %s", req->argv[0],
                 strerror_r(run_errno, buf, sizeof buf));
        return;
    }
    if (res->ok) {
        res->error[0] = '\0';
        return;
    }
    if (res->exit_code >= 0)
        n = snprintf(what, sizeof what, "exit status %d", res->exit_code);
    else if (res->term_signal > 0)
        n = snprintf(what, sizeof what, "killed by signal %d (%s)", res->term_signal,
                     signame(res->term_signal, buf, sizeof buf));
    else
        n = snprintf(what, sizeof what, "ended, but its status was lost");
    if (res->timed_out)
        snprintf(what + n, sizeof what - (size_t)n, " after timeout (%s)",
                 pgq_duration_format(req->timeout_ms, dur, sizeof dur));
    else if (res->cancelled)
        snprintf(what + n, sizeof what - (size_t)n, " after cancellation");

    room = sizeof res->error - strlen(what) - sizeof ": ";
    tail_text(t, tail, room < TAIL_MAX ? room : TAIL_MAX);
    if (tail[0])
        snprintf(res->error, sizeof res->error, "%s: %.*s", what, (int)room, tail);
    else
        snprintf(res->error, sizeof res->error, "%s", what);
}

bool exec_read_chunks(int fd, size_t chunk, int max_reads,
                      void (*add)(void *arg, const char *p, size_t n), void *arg)
{
    char buf[16384];
    if (chunk > sizeof buf)
        chunk = sizeof buf;
    for (int i = 0; i < max_reads;) {
        ssize_t n = read(fd, buf, chunk);
        if (n > 0) {
            add(arg, buf, (size_t)n);
            i++;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && errno == EAGAIN;
    }
    return true;
}

static void tail_sink(void *arg, const char *p, size_t n)
{
    tail_add(arg, p, n);
}

bool exec_tail_read(int fd, struct exec_tail *t, int max_reads)
{
    return exec_read_chunks(fd, 4096, max_reads, tail_sink, t);
}
