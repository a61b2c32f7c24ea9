/*
 * utf8_test.c -- unit tests for core/utf8.c, the one UTF-8 rule: every
 * boundary where PostgreSQL starts or stops accepting a sequence, on both
 * sides of it. No database.
 */
#include <check.h>
#include <string.h>

#include "../core/utf8.h"

Suite *utf8_suite(void);

/* Valid as a whole, and the character count. */
static void ok(const char *s, size_t n, size_t want_chars)
{
    size_t bad = 99, chars = 99;
    ck_assert_msg(utf8_valid(s, n, &bad, &chars), "refused at byte %zu", bad);
    ck_assert_uint_eq(chars, want_chars);
}

/* Invalid, first at byte want_bad, after want_chars good characters. */
static void refused(const char *s, size_t n, size_t want_bad, size_t want_chars)
{
    size_t bad = 99, chars = 99;
    ck_assert_msg(!utf8_valid(s, n, &bad, &chars), "accepted %zu bytes", n);
    ck_assert_uint_eq(bad, want_bad);
    ck_assert_uint_eq(chars, want_chars);
}

#define OK(lit, chars) ok(lit, sizeof lit - 1, chars)
#define REFUSED(lit, bad, chars) refused(lit, sizeof lit - 1, bad, chars)

START_TEST(shortest_forms_pass)
{
    OK("", 0);
    OK("plain ascii \x7f", 13);
    OK("\xc2\x80", 1);                  /* U+0080, the first two-byte character */
    OK("caf\xc3\xa9", 4);
    OK("\xdf\xbf", 1);                  /* U+07FF */
    OK("\xe0\xa0\x80", 1);              /* U+0800, the first three-byte character */
    OK("\xed\x9f\xbf", 1);              /* U+D7FF, just below the surrogates */
    OK("\xee\x80\x80", 1);              /* U+E000, just above them */
    OK("\xef\xbf\xbf", 1);              /* U+FFFF */
    OK("\xf0\x90\x80\x80", 1);          /* U+10000, the first four-byte character */
    OK("\xf4\x8f\xbf\xbf", 1);          /* U+10FFFF, the last code point */
}
END_TEST

START_TEST(overlong_forms_are_refused)
{
    REFUSED("\xc0\xaf", 0, 0);          /* '/' in two bytes */
    REFUSED("\xc1\xbf", 0, 0);          /* U+007F in two bytes */
    REFUSED("a\xe0\x80\xaf", 1, 1);     /* '/' in three bytes */
    REFUSED("\xe0\x9f\xbf", 0, 0);      /* U+07FF in three bytes */
    REFUSED("ab\xf0\x80\x80\xaf", 2, 2);/* '/' in four bytes */
    REFUSED("\xf0\x8f\xbf\xbf", 0, 0);  /* U+FFFF in four bytes */
}
END_TEST

START_TEST(surrogates_are_refused)
{
    REFUSED("\xed\xa0\x80", 0, 0);      /* U+D800 */
    REFUSED("x\xed\xb2\x80", 1, 1);     /* U+DC80 */
    REFUSED("\xed\xbf\xbf", 0, 0);      /* U+DFFF */
    REFUSED("\xed\xa0\xbd\xed\xb8\x80", 0, 0);  /* a CESU-8 pair */
}
END_TEST

START_TEST(nothing_above_u10ffff)
{
    REFUSED("\xf4\x90\x80\x80", 0, 0);  /* U+110000 */
    REFUSED("\xf5\x80\x80\x80", 0, 0);
    REFUSED("\xf7\xbf\xbf\xbf", 0, 0);
    REFUSED("\xf8\x88\x80\x80\x80", 0, 0);  /* old five-byte form */
    REFUSED("\xfe", 0, 0);
    REFUSED("\xff", 0, 0);
}
END_TEST

START_TEST(truncated_sequences_are_refused)
{
    REFUSED("caf\xc3", 3, 3);                   /* cut at the end */
    REFUSED("\xe2\x82", 0, 0);
    REFUSED("\xf0\x9f\x98", 0, 0);
    REFUSED("\xe2\x82" "A", 0, 0);              /* cut by an ASCII byte */
    REFUSED("\xf0\x9f\x98\xc3\xa9", 0, 0);      /* cut by the next lead byte */
    /* the length given is the end, even with more bytes in memory */
    refused("\xc3\xa9", 1, 0, 0);
    ok("\xc3\xa9", 2, 1);
}
END_TEST

START_TEST(stray_continuation_bytes_are_refused)
{
    REFUSED("\x80", 0, 0);
    REFUSED("ab\xbf", 2, 2);
    REFUSED("\xc3\xa9\xa9", 2, 1);      /* one continuation too many */
}
END_TEST

START_TEST(nul_is_refused)
{
    REFUSED("ab\0cd", 2, 2);
    REFUSED("\0", 0, 0);
    ck_assert_uint_eq(utf8_char_len((const unsigned char *)"", 1), 0);
}
END_TEST

START_TEST(char_len_of_each_form)
{
    const unsigned char *s = (const unsigned char *)"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    ck_assert_uint_eq(utf8_char_len(s, 10), 1);
    ck_assert_uint_eq(utf8_char_len(s + 1, 9), 2);
    ck_assert_uint_eq(utf8_char_len(s + 3, 7), 3);
    ck_assert_uint_eq(utf8_char_len(s + 6, 4), 4);
    ck_assert_uint_eq(utf8_char_len(s + 6, 3), 0);
    ck_assert_uint_eq(utf8_char_len(s, 0), 0);
}
END_TEST

Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("utf8");

    tcase_add_test(tc, shortest_forms_pass);
    tcase_add_test(tc, overlong_forms_are_refused);
    tcase_add_test(tc, surrogates_are_refused);
    tcase_add_test(tc, nothing_above_u10ffff);
    tcase_add_test(tc, truncated_sequences_are_refused);
    tcase_add_test(tc, stray_continuation_bytes_are_refused);
    tcase_add_test(tc, nul_is_refused);
    tcase_add_test(tc, char_len_of_each_form);
    suite_add_tcase(s, tc);
    return s;
}
