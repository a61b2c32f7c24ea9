/* utf8.c -- the UTF-8 rule, written once.
 *
 * Everything libpgq sends PostgreSQL as text must be valid UTF-8 as
 * PostgreSQL sees it (pg_utf8_islegal plus its ban on NUL), or the whole
 * statement fails: a payload, a queue name, a handler's error text. So the
 * rule is strict: the shortest form only (C0, C1 and the overlong E0/F0
 * ranges refused), no UTF-16 surrogates (ED A0..BF), nothing above
 * U+10FFFF (F4 90.., F5..FF), no NUL. The second byte carries every one of
 * these limits, so it is checked against a range that depends on the first
 * byte; the later bytes need only be continuation bytes. */
#include "utf8.h"

size_t utf8_char_len(const unsigned char *s, size_t n)
{
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len;

    if (n == 0 || s[0] == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        len = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        len = 3;
        if (s[0] == 0xE0)
            lo = 0xA0;          /* below: overlong */
        else if (s[0] == 0xED)
            hi = 0x9F;          /* above: surrogates */
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        len = 4;
        if (s[0] == 0xF0)
            lo = 0x90;          /* below: overlong */
        else if (s[0] == 0xF4)
            hi = 0x8F;          /* above: beyond U+10FFFF */
    } else {
        return 0;               /* continuation byte, C0/C1 (overlong), F5..FF */
    }
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool utf8_valid(const char *s, size_t n, size_t *bad, size_t *chars)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, count = 0;

    while (i < n) {
        size_t k = utf8_char_len(p + i, n - i);
        if (k == 0)
            break;
        i += k;
        count++;
    }
    if (bad)
        *bad = i;
    if (chars)
        *chars = count;
    return i == n;
}
