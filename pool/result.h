/* result.h -- a handler's output made into the job's result (result.c):
 * the text stored with the done attempt, and the note that says what
 * became of the output when the text is not all of it. Internal to pool/. */
#ifndef PGQ_RESULT_H
#define PGQ_RESULT_H

#include <stddef.h>

/* Text and note, each malloc'd or NULL. */
struct job_result {
    char *text;
    char *note;
};

/* From len bytes at s, of total bytes the handler wrote (total > len when
 * the reader kept only the first len), what is stored: at most max bytes,
 * cut before the first character that does not fit, with a note saying
 * so; when the kept bytes are not UTF-8 text (or hold a NUL), no text and
 * a note saying why. what names the output in the note ("stdout",
 * "result"). max 0: nothing, no note. out is cleared first. -1 when out
 * of memory (out empty). Thread-safe. */
int result_make(const char *s, size_t len, unsigned long long total, size_t max,
                const char *what, struct job_result *out) __attribute__((warn_unused_result));

/* Free both strings and empty r; accepts an empty one. */
void result_clear(struct job_result *r);

#endif
