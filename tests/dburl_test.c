/* The database URL check (core/dburl.c): what libpq cannot use is refused
 * with a message that names the fault, and no message shows a password. */
#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "db.h"

static void redacts(const char *url, const char *want)
{
    char out[256];
    pgq_url_redact(url, out, sizeof out);
    ck_assert_msg(strcmp(out, want) == 0, "%s -> [%s], want [%s]", url, out, want);
}

START_TEST(passwords_are_masked)
{
    redacts("postgresql://u:secret@db.example:5432/app", "postgresql://u:***@db.example:5432/app");
    redacts("postgres://u:p@ss@host/db", "postgres://u:***@host/db");
    redacts("postgresql://u@host/db?sslmode=require", "postgresql://u@host/db?sslmode=require");
    redacts("postgresql:///db", "postgresql:///db");
    redacts("postgresql://u:x@[::1/db", "postgresql://u:***@[::1/db");
    redacts("host=h password=secret dbname=d", "host=h password=*** dbname=d");
    redacts("password='a b\\' c' user=u", "password=*** user=u");
    redacts("password = s3 user=u", "password = *** user=u");
    redacts("dbname=password", "dbname=password");
    /* found by fuzz_dburl: a key=value URL longer than the output buffer
     * looped forever (the scan advanced inside PUT, skipped when full) */
    char small[16];
    pgq_url_redact("host=h application_name=abcdefghijklmnop password=x", small, sizeof small);
    ck_assert_str_eq(small, "host=h applicat");
    ck_assert(pgq_url_has_password("password= v v=u password= v"));
    /* found by fuzz_dburl: an empty password looped forever */
    redacts("postgres://w:@[:0]%5ser/u", "postgres://w:@[:0]%5ser/u");
    redacts("postgresql://u:@h/db", "postgresql://u:@h/db");
}
END_TEST

static void refused(const char *url, const char *want)
{
    char err[512];
    ck_assert_int_eq(db_url_check(url, err, sizeof err), -1);
    ck_assert_msg(strcmp(err, want) == 0, "%s -> [%s]\nwant [%s]", url, err, want);
    ck_assert_msg(!strstr(err, "secret") && !strstr(err, "s%zz"), "a password shows: %s", err);
}

START_TEST(bad_urls_are_named_without_their_password)
{
    refused("not a url", "database URL \"not a url\" is not understood: give "
            "postgresql://USER@HOST:PORT/DBNAME (postgresql:///DBNAME for the local socket) or "
            "key=value pairs");
    refused("postgresql://u:s%zzsecret@localhost/db",
            "database URL \"postgresql://u:***@localhost/db\" is not valid: invalid "
            "percent-encoded token");
    refused("postgresql://u:secret@[::1/db",
            "database URL \"postgresql://u:***@[::1/db\" is not valid: end of string reached "
            "when looking for matching \"]\" in IPv6 host address in URI");
    refused("host=h password=secret bogus=1",
            "database URL \"host=h password=*** bogus=1\" is not valid: invalid connection "
            "option \"bogus\"");
    char err[64];
    ck_assert_int_eq(db_url_check("", err, sizeof err), 0);   /* libpq's environment */
    ck_assert_int_eq(db_url_check("postgresql://u:secret@localhost/db", err, sizeof err), 0);
    ck_assert_int_eq(db_url_check("host=localhost dbname=x", err, sizeof err), 0);
}
END_TEST

static void hides(const char *url, const char *want)
{
    char arg[256];
    size_t len = strlen(url);
    snprintf(arg, sizeof arg, "%s", url);
    arg[len + 1] = 'Z';   /* the next argument's first byte: must survive */
    pgq_url_hide_arg(arg);
    ck_assert_msg(strcmp(arg, want) == 0, "%s -> [%s], want [%s]", url, arg, want);
    for (size_t i = strlen(arg); i < len; i++)
        ck_assert_msg(arg[i] == '\0', "%s: byte %zu not cleared", url, i);
    ck_assert_int_eq(arg[len + 1], 'Z');
}

/* What ps shows of --db after the programs hid it (cli/dbarg.c). */
START_TEST(arguments_are_hidden_in_place)
{
    hides("postgresql://u:secret@h/db", "postgresql://u:***@h/db");
    hides("postgresql://u:p@h/db", "postgresql://u:***@h/");    /* cut, never longer */
    hides("host=h password=secret", "host=h password=***");
    hides("postgresql://u@h/db", "postgresql://u@h/db");
    ck_assert(pgq_url_has_password("postgresql://u:s@h/db"));
    ck_assert(pgq_url_has_password("host=h password=s"));
    ck_assert(!pgq_url_has_password("postgresql://u@h/db?application_name=password"));
    ck_assert(!pgq_url_has_password("dbname=password"));
}
END_TEST

Suite *dburl_suite(void)
{
    Suite *s = suite_create("dburl");
    TCase *tc = tcase_create("dburl");
    tcase_add_test(tc, passwords_are_masked);
    tcase_add_test(tc, bad_urls_are_named_without_their_password);
    tcase_add_test(tc, arguments_are_hidden_in_place);
    suite_add_tcase(s, tc);
    return s;
}
