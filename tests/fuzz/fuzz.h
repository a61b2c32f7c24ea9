/* Shared by the libFuzzer targets (make fuzz, tests/fuzz/README.md): the
 * input as a NUL-terminated string, as every parser here takes one. */
#ifndef PGQ_FUZZ_H
#define PGQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline char *fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* A message must be a terminated string that fits its buffer. */
static inline void fuzz_check_msg(const char *err, size_t errlen)
{
    if (strnlen(err, errlen) >= errlen)
        abort();
}

#endif
