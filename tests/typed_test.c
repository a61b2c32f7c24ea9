/* The typed job map for C (`pgq types header`, README "Typed job map for
 * C"). The unit suite `typed` needs no database: generated headers compile
 * with -std=c17 -Wall -Wextra -Wpedantic -Werror (also for names the
 * mapping rule has to change), a producer and a handler round-trip every
 * contract type through build and parse (tests/typed/roundtrip.c, built by
 * make against a header generated from tests/typed/all.ini), a program that
 * names a key the contract lacks is refused by the compiler with the key
 * named (and compiles with the right key), the generator's refusals name
 * what is at fault, and make regenerates the embedding example's header
 * when its pool.ini changes. The suite `typed_db` sends the same payload
 * through a real database: added with pgq_add_all_types, checked in SQL,
 * claimed and parsed by all_types_from_job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "typed/values.h"

static char dir[64];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/pgq-typed-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    int st;
    if (getenv("PGQ_TYPED_TEST_KEEP") == NULL)
        free(tu_sh(tu_fmt("rm -rf '%s'", dir), &st));
}

static const char *in_dir(const char *name)
{
    return tu_fmt("%s/%s", dir, name);
}

/* The source tree (tests/..), and a build directory relative to it when
 * it is inside (make's own spelling of $(BUILD)). */
static const char *src_dir(void)
{
    return tu_fmt("%s/..", tu_test_dir());
}

static tu_run pgq(const char *const *argv)
{
    const char *bin = tu_fmt("%s/pgq", tu_bin_dir());
    return tu_run_cmd(dir, NULL, NULL, bin, argv, 60);
}

#define ARGV(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Compile src (a file) with the house's strict flags and the include dirs
 * given; the compiler's exit status and what it said. */
static int compile(const char *src, const char *extra, char **said)
{
    int st;
    const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
    *said = tu_sh(tu_fmt("%s -std=c17 -Wall -Wextra -Wpedantic -Werror -fsyntax-only "
                         "-I'%s/core' $(pkg-config --cflags jansson) %s '%s' 2>&1", cc,
                         src_dir(), extra, src), &st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- unit: the header -------------------------------------------------- */

/* Names the mapping rule changes: keywords, macros (unix is one in GNU
 * C), leading digits, reserved spellings, comment enders, trigraphs,
 * quotes and backslashes, UTF-8; and a type with an empty contract. All
 * of it compiles, in ISO and in GNU C, twice in one translation unit with
 * another generated header (they share one runtime). */
START_TEST(generated_headers_compile_strictly)
{
    tu_write_file(in_dir("odd.ini"),
                  "[job int]\nhandler = callback a\n"
                  "require = default:string, unix:number, _X:boolean, __y:object, -Z:array, "
                  "9:null, x*/:string, \xc3\xa9:number\n"
                  "[job 9lives]\nhandler = callback b\nrequire = a\"b\\c:string, q?\?=:boolean\n"
                  "[job unix]\nhandler = callback c\n"
                  "[job a*/b?\?=c\"d\\e]\nhandler = callback d\nrequire = linux:string\n");
    tu_run r = pgq(ARGV("pgq", "types", "header", "-c", "odd.ini", "-o", "odd.h"));
    ck_assert_msg(r.code == 0 && !*r.out && !*r.err, "exit %d: %s%s", r.code, r.out, r.err);
    tu_run_free(&r);
    char *h = tu_slurp(in_dir("odd.h"));
    static const char *const want[] = {
        "struct int_ {", "const char *default_;", "double unix_;", "bool k__X;",
        "const char *k___y;", "const char *k__Z;", "/* \"9\": null -- no member",
        "const char *x__;", "double _;", "struct job_9lives {", "const char *a_b_c;",
        "bool q___;", "struct unix_ {", "struct a__b___c_d_e {", "const char *linux_;",
        "int pgq_add_int_(pgq_conn", "int job_9lives_from_job(", "void unix__clear(",
        "pgq_add(c, \"a*/b\\?\\?=c\\\"d\\\\e\", json", "#ifndef PGQ_TYPES_ODD_H",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(h, want[i]), "odd.h lacks [%s]", want[i]);
    free(h);

    tu_write_file(in_dir("both.c"), "#include \"odd.h\"\n#include \"embed_jobs.h\"\n"
                                    "#include \"odd.h\"\n"
                                    "int main(void) { struct int_ x = { .default_ = \"d\" };\n"
                                    "    struct send_email e = { .to = \"t\" };\n"
                                    "    return x.default_[0] == e.to[0]; }\n");
    char *said;
    const char *inc = tu_fmt("-I'%s' -I'%s/examples'", dir, tu_bin_dir());
    ck_assert_msg(compile(in_dir("both.c"), inc, &said) == 0, "c17: %s", said);
    free(said);
    ck_assert_msg(compile(in_dir("both.c"), tu_fmt("-std=gnu17 %s", inc), &said) == 0, "gnu17: %s",
                  said);
    free(said);
}
END_TEST

/* Build and parse: every contract type, escaping, numbers, the errors of
 * both sides (tests/typed/roundtrip.c says which check failed). */
START_TEST(producer_and_handler_round_trip_every_type)
{
    const char *bin = tu_fmt("%s/tests/typed/roundtrip", tu_bin_dir());
    tu_run r = tu_run_cmd(dir, NULL, NULL, bin, ARGV(bin, "local"), 60);
    ck_assert_msg(r.code == 0 && strncmp(r.out, "ok: ", 4) == 0, "roundtrip local: exit %d\n%s%s",
                  r.code, r.out, r.err);
    printf("typed_test: roundtrip local: %s", r.out);
    tu_run_free(&r);
}
END_TEST

/* A producer or a handler that names a key the contract lacks does not
 * compile, and the compiler names the key; with the contract's key the
 * same program compiles (so the refusal is the key's). */
START_TEST(unknown_key_does_not_compile)
{
    const char *src = tu_fmt("%s/typed/bad_field.c", tu_test_dir());
    const char *inc = tu_fmt("-I'%s/examples'", tu_bin_dir());
    char *said;
    ck_assert_msg(compile(src, inc, &said) == 0, "with the contract's keys: %s", said);
    free(said);
    ck_assert_int_ne(compile(src, tu_fmt("%s -DPRODUCER_KEY=subjet", inc), &said), 0);
    ck_assert_msg(strstr(said, "subjet") && strstr(said, "error"),
                  "the producer's refusal does not name the key: %s", said);
    printf("typed_test: producer .subjet: %s", said);
    free(said);
    ck_assert_int_ne(compile(src, tu_fmt("%s -DHANDLER_KEY=body", inc), &said), 0);
    ck_assert_msg(strstr(said, "body") && strstr(said, "struct send_email"),
                  "the handler's refusal does not name the key: %s", said);
    printf("typed_test: handler p.body: %s", said);
    free(said);
}
END_TEST

/* A refused run prints one line naming the fault, exits non-zero and
 * leaves the -o file as it was. */
static void refused(const char *ini_text, int code, const char *want)
{
    tu_write_file(in_dir("bad.ini"), ini_text);
    tu_write_file(in_dir("old.h"), "old\n");
    tu_run r = pgq(ARGV("pgq", "types", "header", "-c", "bad.ini", "-o", "old.h"));
    ck_assert_msg(r.code == code && strstr(r.err, want) && tu_count_lines(r.err) == 1 && !*r.out,
                  "want exit %d and [%s], got exit %d: %s%s", code, want, r.code, r.out, r.err);
    char *old = tu_slurp(in_dir("old.h"));
    ck_assert_str_eq(old, "old\n");
    free(old);
    tu_run_free(&r);
}

START_TEST(header_errors_name_the_fault)
{
    refused("[job a]\nhandler = callback a\nrequre = x:string\n", 1,
            "pgq types header: bad.ini:3: [job a] requre: unknown key");
    refused("[job a]\nhandler = callback a\nrequire = x:str\n", 1,
            "bad.ini:3: [job a] require: item 1 \"x:str\": unknown type \"str\"");
    refused("[job send-email]\nhandler = callback a\n\n[job send_email]\nhandler = callback b\n", 1,
            "bad.ini:4: [job send_email]: its C name send_email is also that of [job send-email] "
            "(line 1); rename one of them");
    refused("[job t]\nhandler = callback a\nrequire = a-b:string, x:null, a_b:number\n", 1,
            "bad.ini:1: [job t] require: keys \"a-b\" and \"a_b\" both map to the C member a_b");
    refused("[job batch]\nhandler = callback a\n", 1,
            "bad.ini:1: [job batch]: its typed add would be pgq_add_batch, which libpgq already "
            "names");
    refused("[job pgq-x]\nhandler = callback a\n", 1,
            "[job pgq-x]: its C name pgq_x begins with pgq_, the prefix of libpgq's names");
    refused("[job json.x]\nhandler = callback a\n", 1,
            "[job json.x]: its C name json_x begins with json_, the prefix of jansson's names");
    refused("[job t]\nhandler = callback a\nrequire = ok:number, b\xff" "d:string\n", 1,
            "bad.ini:1: [job t] require: key \"b\xff" "d\" is not valid UTF-8 at byte offset 1");
    refused("[job t]\nhandler = callback a\nrequire = pgq-mem-:string\n", 1,
            "[job t] require: key \"pgq-mem-\" maps to the C member pgq_mem_, which the generated "
            "struct keeps for itself");

    tu_run r = pgq(ARGV("pgq", "types", "header"));
    ck_assert_msg(r.code == 2 && strstr(r.err, "header needs -c pool.ini"), "%d %s", r.code, r.err);
    tu_run_free(&r);
    r = pgq(ARGV("pgq", "types", "header", "-c", "nonesuch.ini"));
    ck_assert_msg(r.code == 1 && strstr(r.err, "nonesuch.ini"), "%d %s", r.code, r.err);
    tu_run_free(&r);
    tu_write_file(in_dir("ok.ini"), "[job t]\nhandler = callback a\nrequire = x:string\n");
    r = pgq(ARGV("pgq", "types", "header", "-c", "ok.ini", "-o", "no/such/dir/t.h"));
    ck_assert_msg(r.code == 1 && strstr(r.err, "no/such/dir/t.h: No such file or directory"), "%d %s",
                  r.code, r.err);
    tu_run_free(&r);
    r = pgq(ARGV("pgq", "types", "header", "-c", "ok.ini", "-o"));
    ck_assert_msg(r.code == 2 && strstr(r.err, "-o needs a file name"), "%d %s", r.code, r.err);
    tu_run_free(&r);
    r = pgq(ARGV("pgq", "types", "header", "-c", "ok.ini", "--bogus"));
    ck_assert_msg(r.code == 2 && strstr(r.err, "unknown argument \"--bogus\""), "%d %s", r.code, r.err);
    tu_run_free(&r);
    /* to stdout, and no temporary file left behind by -o */
    r = pgq(ARGV("pgq", "types", "header", "-c", "ok.ini"));
    ck_assert_msg(r.code == 0 && strstr(r.out, "struct t {") && strstr(r.out, "#ifndef PGQ_TYPES_H"),
                  "%d %s", r.code, r.err);
    tu_run_free(&r);
    int st;
    char *left = tu_sh(tu_fmt("ls '%s' | grep tmp", dir), &st);
    ck_assert_msg(!*left, "temporary files left: %s", left);
    free(left);
}
END_TEST

/* make regenerates the example's header when its pool.ini changes (-W
 * pretends it changed; -o keeps pgq and libpgq out of it), and not
 * otherwise. */
START_TEST(make_regenerates_the_example_header)
{
    const char *root = src_dir(), *bin = tu_bin_dir();
    char real_root[4096], real_bin[4096];
    ck_assert_ptr_nonnull(realpath(root, real_root));
    ck_assert_ptr_nonnull(realpath(bin, real_bin));
    size_t n = strlen(real_root);
    ck_assert_msg(strncmp(real_bin, real_root, n) == 0 && real_bin[n] == '/',
                  "the build directory %s is not inside the tree %s", real_bin, real_root);
    const char *b = real_bin + n + 1;   /* build, build-address, ... */
    char cmd[2][8192];
    for (int w = 0; w < 2; w++)
        snprintf(cmd[w], sizeof cmd[w], "cd '%s' && make -n BUILD=%s -o %s/pgq -o %s/libpgq.a %s "
                 "%s/examples/embed-demo 2>&1", real_root, b, b, b,
                 w ? "-W examples/embed.ini" : "", b);
    const char *regen = tu_fmt("%s/pgq types header -c examples/embed.ini -o %s/examples/embed_jobs.h",
                               b, b);
    int st;
    char *quiet = tu_sh(cmd[0], &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(quiet, "types header"),
                  "make regenerates the header with nothing changed:\n%s", quiet);
    free(quiet);
    char *touched = tu_sh(cmd[1], &st);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0 && strstr(touched, regen) &&
                  strstr(touched, "examples/embed.c"),
                  "make does not regenerate the header (and rebuild embed.c) when "
                  "examples/embed.ini changes:\n%s", touched);
    free(touched);
}
END_TEST

/* ---- integration: through a real database -------------------------------- */

static void db_setup(void)
{
    tu_reset();
}

static void db_teardown(void)
{
    tu_check_invariants();
}

START_TEST(round_trip_through_the_database)
{
    const char *bin = tu_fmt("%s/tests/typed/roundtrip", tu_bin_dir());
    const char *ini = tu_fmt("%s/typed/all.ini", tu_test_dir());
    tu_run r = tu_run_cmd(dir, (const char *const[]){ tu_fmt("DATABASE_URL=%s", tu_db_url()), NULL },
                          NULL, bin, ARGV(bin, "db", ini), 60);
    long long id = 0;
    ck_assert_msg(r.code == 0 && sscanf(r.out, "job %lld\n", &id) == 1 && strstr(r.out, "ok: "),
                  "roundtrip db: exit %d\n%s%s", r.code, r.out, r.err);
    printf("typed_test: roundtrip db: %s", strstr(r.out, "ok: "));
    tu_run_free(&r);

    /* What the database holds is what the producer meant, key by key. */
    const char *p[] = { tu_lld(id), tricky }, *q[] = { tu_lld(id), obj_text, arr_text };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND state = 'done' "
                            "AND type = 'all-types'", 1, p), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND payload->>'s' = $2",
                            2, p), 1);
    char *types = tu_text("SELECT string_agg(k || ':' || jsonb_typeof(payload->k), ',' ORDER BY ord) "
                          "FROM pgq.jobs, unnest(ARRAY['s','n','b','o','a','z','big-n','default',"
                          "'2fa','\xc3\xa9t\xc3\xa9']) WITH ORDINALITY AS u(k, ord) WHERE id = $1", 1, p);
    ck_assert_str_eq(types, "s:string,n:number,b:boolean,o:object,a:array,z:null,big-n:number,"
                            "default:string,2fa:boolean,\xc3\xa9t\xc3\xa9:string");
    free(types);
    char *n = tu_text("SELECT payload->>'n' FROM pgq.jobs WHERE id = $1", 1, p);
    ck_assert_str_eq(n, "0.1");   /* the fewest digits, not 0.10000000000000001 */
    free(n);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND payload->'o' = $2::jsonb "
                            "AND payload->'a' = $3::jsonb AND payload->'big-n' = '1e300'::jsonb "
                            "AND payload->'b' = 'true' AND payload->'2fa' = 'false' "
                            "AND payload->>'default' = '' AND payload->>'\xc3\xa9t\xc3\xa9' = "
                            "'\xc3\xbcn\xc3\xaf'", 3, q), 1);
    /* the object's integer beyond 64 bits kept every digit */
    char *big = tu_text("SELECT payload->'o'->>'big' FROM pgq.jobs WHERE id = $1", 1, p);
    ck_assert_str_eq(big, "123456789012345678901234567890");
    free(big);
}
END_TEST

Suite *typed_suite(void)
{
    Suite *s = suite_create("typed");
    TCase *tc = tcase_create("typed");
    tcase_add_unchecked_fixture(tc, make_dir, remove_dir);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, generated_headers_compile_strictly);
    tcase_add_test(tc, producer_and_handler_round_trip_every_type);
    tcase_add_test(tc, unknown_key_does_not_compile);
    tcase_add_test(tc, header_errors_name_the_fault);
    tcase_add_test(tc, make_regenerates_the_example_header);
    suite_add_tcase(s, tc);
    return s;
}

Suite *typed_db_suite(void)
{
    Suite *s = suite_create("typed_db");
    TCase *tc = tcase_create("typed_db");
    tcase_add_unchecked_fixture(tc, make_dir, remove_dir);
    tcase_add_checked_fixture(tc, db_setup, db_teardown);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, round_trip_through_the_database);
    suite_add_tcase(s, tc);
    return s;
}
