/* Internal to config/: splitting a handler's command line into words the
 * way a shell would (without expansions), and the string vectors it makes. */
#ifndef PGQ_CFG_WORDS_H
#define PGQ_CFG_WORDS_H

#include <ctype.h>
#include <stddef.h>

/* Split s into words like a shell without expansions: whitespace separates,
 * '...' is literal, "..." honours \" \\ \$ \`, and a backslash outside quotes
 * escapes the next character. 0 with *argv (NULL-terminated, even when
 * empty; free with cfg_strv_free) and *argc, or -1 with a message in err. */
int cfg_split_words(const char *s, char ***argv, size_t *argc, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Free n strings and the vector; accepts NULL. */
void cfg_strv_free(char **v, size_t n);

/* Narrow [*b, *e) to its text without surrounding whitespace. Inline so the
 * value parsers and the payload contract need no common object. */
static inline void cfg_trim(const char **b, const char **e)
{
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

#endif
