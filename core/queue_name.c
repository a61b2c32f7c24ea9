/* queue_name.c -- the one rule for queue names.
 *
 * A queue name is 1 to PGQ_QUEUE_NAME_MAX characters (Unicode code points
 * of valid UTF-8) with no ASCII whitespace (space, \t, \n, \r, \v, \f).
 * pool.ini ([pool] queues, [job X] queue), every library call that takes a
 * queue, the CLI and PostgreSQL for SQL producers (pgq.enqueue, pgq.add)
 * hold names to this same rule, so a job that any producer can add is one
 * that some pool can be configured to serve. Messages quote the name made
 * printable (escapes for whitespace, control and invalid bytes) and cut to
 * a readable length, since the name may be the very thing that is wrong. */
#include "db.h"
#include "utf8.h"

#include <stdio.h>
#include <string.h>

#define SHOWN_CHARS 32

/* The letter of a whitespace escape (\t ...), or 0. */
static char escape_letter(unsigned char c)
{
    switch (c) {
    case '\t': return 't';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\v': return 'v';
    case '\f': return 'f';
    }
    return 0;
}

/* name as a message shows it: its first SHOWN_CHARS characters (then
 * "..."), each at most 4 bytes in buf, so nothing is cut silently. */
static void shown(const char *name, char buf[SHOWN_CHARS * 4 + sizeof "..."])
{
    const unsigned char *s = (const unsigned char *)name, *e = s + strlen(name);
    size_t o = 0;

    for (int chars = 0; s < e; chars++) {
        size_t k = utf8_char_len(s, (size_t)(e - s));
        if (chars == SHOWN_CHARS) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (escape_letter(*s)) {
            buf[o++] = '\\';
            buf[o++] = escape_letter(*s);
            s++;
        } else if (k == 0 || *s < 0x20 || *s == 0x7f) {
            o += (size_t)snprintf(buf + o, 5, "\\x%02x", *s);
            s++;
        } else {
            memcpy(buf + o, s, k);
            o += k;
            s += k;
        }
    }
    buf[o] = '\0';
}

int pgq_queue_name_check(const char *name, char *err, size_t errlen)
{
    char show[SHOWN_CHARS * 4 + sizeof "..."];
    size_t len, bad, chars;

    if (!name)
        return seterr(err, errlen, "queue name is missing");
    len = strlen(name);
    if (len == 0)
        return seterr(err, errlen, "queue name is empty");
    if (!utf8_valid(name, len, &bad, &chars)) {
        shown(name, show);
        return seterr(err, errlen, "queue name \"%s\" is not valid UTF-8 at byte offset %zu",
                      show, bad);
    }
    bad = strcspn(name, " \t\n\r\v\f");
    if (bad < len) {
        shown(name, show);
        return seterr(err, errlen, "queue name \"%s\" contains whitespace at byte offset %zu",
                      show, bad);
    }
    if (chars > PGQ_QUEUE_NAME_MAX) {
        shown(name, show);
        return seterr(err, errlen, "queue name \"%s\" is %zu characters; at most %d", show,
                      chars, PGQ_QUEUE_NAME_MAX);
    }
    return 0;
}
