/* A producer and a handler of the typed job map (tests/typed_test.c): every
 * contract type of tests/typed/all.ini goes through all_types_to_json /
 * pgq_add_all_types and comes back through all_types_from_job.
 *
 *   roundtrip local        build a payload, check its exact text, parse it
 *                          back, and check the errors of both directions
 *   roundtrip db POOL.INI  the same through a real database: register the
 *                          types, add, claim, parse the claimed job, complete;
 *                          prints "job ID"
 *
 * Every check prints "FAIL: ..." and the program exits 1 at the end when
 * one failed; "ok: N checks" otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "all_types.h"
#include "pgq_config.h"
#include "values.h"

static int nchecks, nfailed;

#define CHECK(cond, ...)                                                                    \
    do {                                                                                    \
        nchecks++;                                                                          \
        if (!(cond)) {                                                                      \
            nfailed++;                                                                      \
            printf("FAIL line %d: ", __LINE__);                                             \
            printf(__VA_ARGS__);                                                            \
            printf("\n");                                                                   \
        }                                                                                   \
    } while (0)

static struct all_types sample(void)
{
    return (struct all_types){
        .s = tricky, .n = 0.1, .b = true, .o = obj_text, .a = arr_text, .big_n = 1e300,
        .default_ = "", .k_2fa = false, ._t_ = "\xc3\xbcn\xc3\xaf",
    };
}

/* Two JSON texts mean the same: same structure, strings equal, numbers
 * equal as doubles (jsonb and jansson may write them differently). */
static int same_value(json_t *x, json_t *y)
{
    if (json_is_number(x) && json_is_number(y))
        return json_number_value(x) == json_number_value(y);
    if (json_typeof(x) != json_typeof(y))
        return 0;
    if (json_is_object(x)) {
        if (json_object_size(x) != json_object_size(y))
            return 0;
        for (void *it = json_object_iter(x); it; it = json_object_iter_next(x, it)) {
            json_t *w = json_object_get(y, json_object_iter_key(it));
            if (!w || !same_value(json_object_iter_value(it), w))
                return 0;
        }
        return 1;
    }
    if (json_is_array(x)) {
        if (json_array_size(x) != json_array_size(y))
            return 0;
        for (size_t i = 0; i < json_array_size(x); i++)
            if (!same_value(json_array_get(x, i), json_array_get(y, i)))
                return 0;
        return 1;
    }
    return json_equal(x, y);
}

static int same_json(const char *a, const char *b)
{
    json_error_t e;
    json_t *x = json_loads(a, JSON_DECODE_INT_AS_REAL, &e), *y = json_loads(b, JSON_DECODE_INT_AS_REAL, &e);
    int r = x && y && same_value(x, y);
    json_decref(x);
    json_decref(y);
    return r;
}

/* What a handler got equals what the producer gave. */
static void check_fields(const struct all_types *want, const struct all_types *got)
{
    CHECK(got->s && strcmp(got->s, want->s) == 0, "s: [%s]", got->s ? got->s : "(null)");
    CHECK(got->n == want->n, "n: %.17g", got->n);
    CHECK(got->b == want->b, "b: %d", got->b);
    CHECK(got->o && same_json(got->o, want->o), "o: %s", got->o ? got->o : "(null)");
    CHECK(got->a && same_json(got->a, want->a), "a: %s", got->a ? got->a : "(null)");
    CHECK(got->big_n == want->big_n, "big_n: %.17g", got->big_n);
    CHECK(got->default_ && strcmp(got->default_, want->default_) == 0, "default_: [%s]",
          got->default_ ? got->default_ : "(null)");
    CHECK(got->k_2fa == want->k_2fa, "k_2fa: %d", got->k_2fa);
    CHECK(got->_t_ && strcmp(got->_t_, want->_t_) == 0, "_t_: [%s]", got->_t_ ? got->_t_ : "(null)");
    CHECK(got->pgq_mem_ != NULL, "pgq_mem_ not set");
}

/* The build refuses p with a message containing want. */
static void build_refused(struct all_types p, const char *want)
{
    char err[512] = "";
    char *json = all_types_to_json(&p, err, sizeof err);
    CHECK(json == NULL && strstr(err, want) != NULL, "build: want an error with [%s], got [%s] %s",
          want, err, json ? json : "");
    free(json);
}

/* A handler refuses the job with a message containing want. */
static void parse_refused(const char *type, const char *payload, const char *want)
{
    char err[512] = "";
    pgq_job job = { .id = 7, .queue = "typed", .type = type, .payload = payload };
    struct all_types p;
    p.s = "not zeroed";
    int rc = all_types_from_job(&job, &p, err, sizeof err);
    CHECK(rc < 0 && strstr(err, want) != NULL && p.s == NULL && p.pgq_mem_ == NULL,
          "parse: want an error with [%s], got rc %d [%s]", want, rc, err);
}

static void local(void)
{
    char err[512] = "";
    struct all_types in = sample();
    char *json = all_types_to_json(&in, err, sizeof err);
    CHECK(json != NULL, "to_json: %s", err);
    if (!json)
        return;
    /* The exact text: the contract's order, jansson's escaping, numbers
     * with the fewest digits, object and array texts as given. */
    char want[4096];
    snprintf(want, sizeof want, "{\"s\":%s,\"n\":0.1,\"b\":true,\"o\":%s,\"a\":%s,\"z\":null,"
             "\"big-n\":1e300,\"default\":\"\",\"2fa\":false,\"\xc3\xa9t\xc3\xa9\":\"\xc3\xbcn\xc3\xaf\"}",
             tricky_json, obj_text, arr_text);
    CHECK(strcmp(json, want) == 0, "payload text:\n got %s\nwant %s", json, want);

    pgq_job job = { .id = 1, .queue = "typed", .type = "all-types", .payload = json };
    struct all_types out;
    CHECK(all_types_from_job(&job, &out, err, sizeof err) == 0, "from_job: %s", err);
    check_fields(&in, &out);
    all_types_clear(&out);
    CHECK(out.s == NULL && out.pgq_mem_ == NULL, "clear did not zero");
    all_types_clear(&out);   /* twice is fine */
    all_types_clear(NULL);
    free(json);

    /* Whole numbers are written as integers, others exactly. */
    in.n = 3;
    in.big_n = -0.3333333333333333;
    json = all_types_to_json(&in, err, sizeof err);
    CHECK(json && strstr(json, "\"n\":3,") && strstr(json, "\"big-n\":-0.3333333333333333,"),
          "numbers: %s", json ? json : err);
    job.payload = json;
    CHECK(all_types_from_job(&job, &out, err, sizeof err) == 0 && out.n == 3 &&
              out.big_n == -0.3333333333333333, "numbers back: %s", err);
    all_types_clear(&out);
    free(json);

    /* A type with an empty contract. */
    struct empty e0 = { 0 };
    json = empty_to_json(&e0, err, sizeof err);
    CHECK(json && strcmp(json, "{}") == 0, "empty: %s", json ? json : err);
    free(json);

    /* The producer's errors name the key. */
    in = sample();
    in.s = NULL;
    build_refused(in, "all-types: \"s\" is NULL");
    in = sample();
    in.n = NAN;
    build_refused(in, "all-types: \"n\" is nan, which JSON cannot hold");
    in = sample();
    in.big_n = INFINITY;
    build_refused(in, "\"big-n\" (member big_n) is inf");
    in = sample();
    in.o = "[1]";
    build_refused(in, "\"o\" must be a JSON object, not an array");
    in = sample();
    in.a = "{}";
    build_refused(in, "\"a\" must be a JSON array, not an object");
    in = sample();
    in.o = "{\"x\": }";
    build_refused(in, "\"o\" is not valid JSON");
    in = sample();
    in.o = "{\"d\": 1, \"d\": 2}";
    build_refused(in, "\"o\" is not valid JSON: duplicate object key");
    in = sample();
    in.a = "[1] [2]";
    build_refused(in, "\"a\" is not valid JSON");
    in = sample();
    in.a = NULL;
    build_refused(in, "\"a\" is NULL");
    in = sample();
    in.s = "bad \xff byte";
    build_refused(in, "\"s\" is not valid UTF-8");
    in = sample();
    in._t_ = "\xed\xa0\x80";   /* a UTF-16 surrogate */
    build_refused(in, "\"\xc3\xa9t\xc3\xa9\" (member _t_) is not valid UTF-8");
    char *none = all_types_to_json(NULL, err, sizeof err);
    CHECK(none == NULL && strstr(err, "no payload struct"), "NULL struct: %s", err);

    /* The handler's errors name the job and the key; extra keys are fine. */
    const char *full = "{\"s\":\"x\",\"n\":1,\"b\":false,\"o\":{},\"a\":[],\"z\":null,"
                       "\"big-n\":18446744073709551616000,\"default\":\"d\",\"2fa\":true,"
                       "\"\xc3\xa9t\xc3\xa9\":\"\",\"extra\":[1,2]}";
    job.payload = full;
    CHECK(all_types_from_job(&job, &out, err, sizeof err) == 0 && out.big_n == 18446744073709551616000.0 &&
              strcmp(out.o, "{}") == 0 && strcmp(out.a, "[]") == 0 && out.k_2fa,
          "extra keys and a number beyond 64 bits: %s", err);
    all_types_clear(&out);
    parse_refused("other", full, "job 7 is a \"other\" job, not \"all-types\"");
    parse_refused("all-types", "{\"s\":\"x\"}", "job 7 (all-types): payload has no key \"n\"");
    parse_refused("all-types", "{\"s\":1}", "job 7 (all-types): \"s\" is a number, not a string");
    parse_refused("all-types",
                  "{\"s\":\"x\",\"n\":1,\"b\":false,\"o\":{},\"a\":[],\"z\":0}",
                  "\"z\" is a number, not a null");
    parse_refused("all-types",
                  "{\"s\":\"x\",\"n\":1,\"b\":false,\"o\":[],\"a\":[],\"z\":null}",
                  "\"o\" is an array, not an object");
    parse_refused("all-types", "[1]", "job 7 (all-types): payload is an array, not an object");
    parse_refused("all-types", "{\"s\":", "job 7 (all-types): payload is not valid JSON");
    parse_refused("all-types", "{\"n\": 1e400}", "payload is not valid JSON: real number overflow");
}

static void db(const char *ini)
{
    char err[1024];
    pgq_cfg *cfg;
    pgq_conn *c;
    if (pgq_cfg_load(ini, &cfg, err, sizeof err) < 0 ||
        pgq_connect(getenv("DATABASE_URL"), &c, err, sizeof err) < 0 ||
        pgq_cfg_apply_types(c, cfg, err, sizeof err) < 0) {
        CHECK(0, "setup: %s", err);
        return;
    }
    struct all_types in = sample();
    pgq_add_result res;
    int rc = pgq_add_all_types(c, &in, NULL, &res, err, sizeof err);
    CHECK(rc == 0, "pgq_add_all_types: %s", err);
    /* The database holds the producer to the contract too: a payload the
     * typed add could not have built is refused, naming a key. */
    CHECK(pgq_add(c, "all-types", "{\"s\":\"x\"}", NULL, &(pgq_add_result){ 0 }, err, sizeof err) < 0 &&
              strstr(err, "missing required key"), "an untyped add missing keys: %s", err);
    const char *queues[] = { "typed" };
    pgq_job *job = NULL;
    CHECK(pgq_claim(c, queues, 1, "roundtrip", 30000, &job, err, sizeof err) == 0 && job,
          "claim: %s", job ? "" : err);
    if (rc == 0 && job) {
        struct all_types out;
        CHECK(job->id == res.id, "claimed job %lld, added %lld", (long long)job->id, (long long)res.id);
        CHECK(all_types_from_job(job, &out, err, sizeof err) == 0, "from_job: %s (payload %s)", err,
              job->payload);
        check_fields(&in, &out);
        all_types_clear(&out);
        bool lost;
        CHECK(pgq_complete(c, job->id, job->lease_token, NULL, &lost, err, sizeof err) == 0 && !lost,
              "complete: %s", err);
        printf("job %lld\n", (long long)job->id);
    }
    pgq_job_free(job);
    pgq_disconnect(c);
    pgq_cfg_free(cfg);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "local") == 0) {
        local();
    } else if (argc == 3 && strcmp(argv[1], "db") == 0) {
        db(argv[2]);
    } else {
        fprintf(stderr, "usage: roundtrip local | roundtrip db POOL.INI\n");
        return 2;
    }
    if (nfailed)
        printf("%d of %d checks failed\n", nfailed, nchecks);
    else
        printf("ok: %d checks\n", nchecks);
    return nfailed ? 1 : 0;
}
