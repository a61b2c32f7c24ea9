/*
 * result.c -- a handler's output made into the job's result: the text
 * stored with the done attempt (pgq show, pgq result, pgq.result() in SQL).
 *
 * One rule for both kinds of output, an exec handler's stdout and the text
 * a plugin or callback gives pgq_ctx_set_result(): at most the job type's
 * result_max bytes are kept; a longer output is cut at the last whole
 * UTF-8 character within them, and the note that goes with the result
 * says so ("stdout cut to the first 65535 of 200000 bytes (result_max =
 * 65536 bytes)"). A result must be text as PostgreSQL stores it (one
 * check, core/utf8.c): output that is not -- binary, another encoding, a
 * NUL byte -- is not stored at all, and the note says why and where. A
 * result is the output or nothing, never a guess at it: escaping or
 * replacing bytes would hand a script reading `pgq result` something its
 * handler never wrote.
 */
#include "result.h"

#include <stdbool.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

void result_clear(struct job_result *r)
{
    free(r->text);
    free(r->note);
    r->text = r->note = NULL;
}

int result_make(const char *s, size_t len, unsigned long long total, size_t max,
                const char *what, struct job_result *out)
{
    size_t keep = len < max ? len : max, i = 0;
    bool cut = total > keep;

    result_clear(out);
    if (max == 0)
        return 0;   /* result_max = 0: nothing kept, nothing to say */
    while (i < keep) {
        size_t k = utf8_char_len((const unsigned char *)s + i, keep - i);
        if (k > 0) {
            i += k;
            continue;
        }
        /* A character that goes on past the cut (the bytes after keep are
         * there to look at) is cut whole: the result ends before it. */
        size_t whole = utf8_char_len((const unsigned char *)s + i, len - i);
        if (cut && whole > 0 && i + whole > keep)
            break;
        char buf[300];
        snprintf(buf, sizeof buf, "not stored: %s is not UTF-8 text (byte %zu of %llu starts "
                 "no character; NUL bytes and other encodings cannot be stored)", what, i,
                 total);
        out->note = strdup(buf);
        return out->note ? 0 : -1;
    }
    out->text = malloc(i + 1);
    if (!out->text)
        return -1;
    memcpy(out->text, s, i);
    out->text[i] = '\0';
    if (cut) {
        char buf[300];
        snprintf(buf, sizeof buf, "%s cut to the first %zu of %llu bytes (result_max = %zu "
                 "bytes)", what, i, total, max);
        if (!(out->note = strdup(buf))) {
            result_clear(out);
            return -1;
        }
    }
    return 0;
}
