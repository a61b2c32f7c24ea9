/* Internal: the one UTF-8 rule of libpgq, what PostgreSQL accepts as text
 * in a UTF-8 database. Not installed; hidden from libpgq.so's exports. */
#ifndef PGQ_UTF8_H
#define PGQ_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#define UTF8_INTERNAL __attribute__((visibility("hidden")))

/* Length (1..4) of the character that starts at s, of which n bytes are
 * there to read; 0 when none does: a NUL, a stray continuation byte, an
 * overlong form, a UTF-16 surrogate, a code point above U+10FFFF, or a
 * sequence cut short by n or by a byte that does not continue it. */
size_t utf8_char_len(const unsigned char *s, size_t n) UTF8_INTERNAL;

/* Whether s[0..n) is valid text. When it is not, *bad (if not NULL) gets
 * the offset of the first byte that starts no character. *chars (if not
 * NULL) gets the number of characters before that point (all of them when
 * valid). */
bool utf8_valid(const char *s, size_t n, size_t *bad, size_t *chars) UTF8_INTERNAL;

#endif
