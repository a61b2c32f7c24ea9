/*
 * exec_out.c -- what a command writes on stdout: the first bytes of it,
 * kept for the job's result.
 *
 * stdout is read as it comes, in the same poll loop as stdin and stderr
 * (exec.c), so that a command writing more than a pipe holds never blocks
 * on a full pipe while the pool waits for it to end: past the cap the
 * bytes are read and counted, not kept. Only the first max bytes matter
 * (the result is the beginning of the output), plus a few more so that
 * the cut can see whether the character at the cut is whole
 * (pool/result.c makes the stored text and its note).
 */
#include "exec_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void out_add(struct exec_out *o, const char *p, size_t n)
{
    size_t want = o->max ? o->max + EXEC_OUT_LOOKAHEAD : 0;
    o->total += n;
    if (o->len >= want)
        return;
    if (n > want - o->len)
        n = want - o->len;
    if (o->len + n + 1 > o->cap) {
        /* Doubling up to the cap, not the cap at once: most outputs are small. */
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        if (cap > want + 1)
            cap = want + 1;
        char *grown = realloc(o->buf, cap);
        if (!grown) {
            o->oom = true;   /* keep what we have; the rest is counted as cut */
            return;
        }
        o->buf = grown;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void out_sink(void *arg, const char *p, size_t n)
{
    out_add(arg, p, n);
}

bool exec_out_read(int fd, struct exec_out *o, int max_reads)
{
    return exec_read_chunks(fd, 16384, max_reads, out_sink, o);
}
