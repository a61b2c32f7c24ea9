/* The pool's log: one line per event (start, claim, done, failed, dead,
 * lease lost, reconnect, shutdown), level and context first, written to
 * stderr with one write(2) per line so threads never interleave. Library
 * functions elsewhere never log; the pool is the program that knows the
 * context, so it does.
 *
 * Under systemd, when stderr is the journal (JOURNAL_STREAM names its
 * device and inode), a line starts with its syslog priority as "<N>" and
 * carries no timestamp: the journal stamps and filters lines by itself.
 * Checked at every line, since --log FILE points stderr elsewhere after
 * start. */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int threshold = PGQ_LOG_INFO;

void pgq_pool_set_log_level(enum pgq_log_level level)
{
    atomic_store(&threshold, (int)level);
}

bool pool_log_enabled(enum pgq_log_level level)
{
    return (int)level <= atomic_load(&threshold);
}

/* Whether stderr is the stream systemd connected to the journal. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void pool_log(enum pgq_log_level level, const char *who, const char *fmt, ...)
{
    static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    static const int syslog_prio[] = { 3, 4, 6, 7 };   /* err, warning, info, debug */
    char line[4096];
    struct timeval tv;
    struct tm tm;
    int n;

    if (!pool_log_enabled(level))
        return;
    if (stderr_is_journal()) {
        n = snprintf(line, sizeof line, "<%d>%-5s %s: ", syslog_prio[level], names[level],
                     who ? who : "pool");
    } else {
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), names[level], who ? who : "pool",
                     ": ");
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    /* one event, one line: fold newlines and tabs inside the message */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\t' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
