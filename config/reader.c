/* The line reader inih reads pool.ini through (reader.h): whole lines of
 * any length with getline, counted, so every message has its line; lines
 * longer than inih's buffer, with a NUL byte or that inih would take for a
 * syntax error are refused with a precise message; a UTF-8 byte order mark
 * and leading whitespace are dropped (indented keys work, and inih never
 * sees a "continuation line"). Section headers go to the loader's hook,
 * which parses them itself. */
#include "reader.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* Report through the loader's hook, formatted here. */
__attribute__((format(printf, 3, 4)))
static void fail(struct cfg_reader *rd, int line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rd->on_error(rd->user, line, msg);
}

const char *cfg_find_or_comment(const char *s, const char *chars)
{
    bool was_space = false;

    while (*s && !strchr(chars, *s) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

char *cfg_read_line(char *str, int num, void *stream)
{
    struct cfg_reader *rd = stream;
    ssize_t got;
    size_t len;
    char *s;

    if (rd->failed(rd->user))
        return NULL;
    errno = 0;
    got = getline(&rd->line, &rd->cap, rd->f);
    if (got < 0) {
        if (ferror(rd->f))
            fail(rd, 0, "cannot read: %s", strerror(errno ? errno : EIO));
        else if (errno == ENOMEM)
            fail(rd, 0, "out of memory");
        else
            rd->on_eof(rd->user);
        return NULL;
    }
    rd->lineno++;
    s = rd->line;
    len = (size_t)got;
    if (len > 0 && s[len - 1] == '\n')
        len--;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    s[len] = '\0';
    if (strlen(s) != len) {
        fail(rd, rd->lineno, "line contains a NUL byte");
        return NULL;
    }
    if (rd->lineno == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
    }
    if (num < 1 || len > (size_t)num - 1) {
        fail(rd, rd->lineno, "line too long (max %d bytes)", num > 0 ? num - 1 : 0);
        return NULL;
    }
    while (isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    if (*s == '[') {
        if (rd->on_section(rd->user, s) < 0)
            return NULL;
    } else if (*s != '\0' && *s != ';' && *s != '#') {
        const char *sep = cfg_find_or_comment(s, "=:");
        if (*sep != '=' && *sep != ':') {
            fail(rd, rd->lineno, "syntax error (expected [section] or key = value)");
            return NULL;
        }
    }
    memcpy(str, s, len + 1);
    return str;
}
