/* Promises 1 and 2: durable, idempotent enqueue (also under concurrent adds
 * from many connections) and the payload contract (refused adds name the
 * key and store nothing). Also batch adds and verbatim storage of SQL
 * metacharacters. */
#include <pthread.h>
#include <stdio.h>
#include <sys/select.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static void setup(void)
{
    tu_reset();
    tu_type("email", "emails", "to:string,subject:string", 3, 1000);
    tu_type("free", "default", "", 3, 1000);
}

static long long jobs(void)
{
    return tu_int("SELECT count(*) FROM pgq.jobs", 0, NULL);
}

START_TEST(add_returns_committed_id)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, "email", "{\"to\":\"a@x\",\"subject\":\"hi\"}", NULL, &r, err,
                          sizeof err) == 0, "%s", err);
    ck_assert(!r.duplicate);
    /* Visible from another connection: committed. */
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)r.id);
    const char *p[] = { id };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND state = 'ready'"
                            " AND queue = 'emails' AND max_retries = 3", 1, p), 1);
    pgq_disconnect(c);
}
END_TEST

START_TEST(duplicate_key_returns_existing)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "email:a:welcome";
    pgq_add_result r1, r2;
    ck_assert(pgq_add(c, "free", "{}", &o, &r1, err, sizeof err) == 0);
    ck_assert(pgq_add(c, "free", "{\"other\":1}", &o, &r2, err, sizeof err) == 0);
    ck_assert(!r1.duplicate);
    ck_assert(r2.duplicate);
    ck_assert_int_eq(r1.id, r2.id);
    ck_assert_int_eq(jobs(), 1);
    pgq_disconnect(c);
}
END_TEST

#define RACERS 8
#define ROUNDS 25

struct racer {
    tu_barrier *start;
    int64_t ids[ROUNDS];
    bool dup[ROUNDS];
    char err[512];
    int rc;
};

static void *race_add(void *arg)
{
    struct racer *r = arg;
    pgq_conn *c = NULL;
    r->rc = pgq_connect(tu_db_url(), &c, r->err, sizeof r->err);
    for (int k = 0; k < ROUNDS; k++) {
        char key[32];
        pgq_add_opts o = PGQ_ADD_OPTS_INIT;
        pgq_add_result res = { 0, false, false };
        snprintf(key, sizeof key, "race-%d", k);
        o.idempotency_key = key;
        tu_barrier_wait(r->start);   /* all 8 connections add this key at once */
        if (r->rc == 0)
            r->rc = pgq_add(c, "free", "{}", &o, &res, r->err, sizeof r->err);
        r->ids[k] = res.id;
        r->dup[k] = res.duplicate;
    }
    pgq_disconnect(c);
    return NULL;
}

START_TEST(concurrent_adds_one_key_make_one_job)
{
    pthread_t th[RACERS];
    struct racer *rs = calloc(RACERS, sizeof *rs);
    tu_barrier *b = tu_barrier_new(RACERS);
    for (int i = 0; i < RACERS; i++) {
        rs[i].start = b;
        pthread_create(&th[i], NULL, race_add, &rs[i]);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < RACERS; i++)
        ck_assert_msg(rs[i].rc == 0, "racer %d: %s", i, rs[i].err);
    for (int k = 0; k < ROUNDS; k++) {
        int fresh = 0;
        for (int i = 0; i < RACERS; i++) {
            ck_assert_int_eq(rs[i].ids[k], rs[0].ids[k]);
            fresh += !rs[i].dup[k];
        }
        ck_assert_msg(fresh == 1, "key race-%d: %d adds claim to have inserted", k, fresh);
    }
    ck_assert_int_eq(jobs(), ROUNDS);
    ck_assert_int_eq(tu_int("SELECT count(DISTINCT idempotency_key) FROM pgq.jobs", 0, NULL),
                     ROUNDS);
    tu_barrier_free(b);
    free(rs);
}
END_TEST

START_TEST(batch_add_maps_results_in_order)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_item items[5] = {
        { "free", "{\"n\":1}", PGQ_ADD_OPTS_INIT },
        { "free", "{\"n\":2}", PGQ_ADD_OPTS_INIT },
        { "email", "{\"to\":\"t\",\"subject\":\"s\"}", PGQ_ADD_OPTS_INIT },
        { "free", "{\"n\":4}", PGQ_ADD_OPTS_INIT },
        { "free", "{\"n\":5}", PGQ_ADD_OPTS_INIT },
    };
    items[1].opts.idempotency_key = "b";
    items[3].opts.idempotency_key = "b";      /* duplicate inside the batch */
    items[4].opts.queue = "other";
    items[4].opts.priority = -5;
    pgq_add_result res[5];
    ck_assert_msg(pgq_add_batch(c, items, 5, res, err, sizeof err) == 0, "%s", err);
    ck_assert(!res[0].duplicate && !res[1].duplicate && !res[2].duplicate && !res[4].duplicate);
    ck_assert(res[3].duplicate);
    ck_assert_int_eq(res[3].id, res[1].id);
    ck_assert_int_eq(jobs(), 4);
    for (int i = 0; i < 5; i++) {
        char id[24], n[8];
        snprintf(id, sizeof id, "%lld", (long long)res[i].id);
        snprintf(n, sizeof n, "%d", i == 3 ? 2 : i + 1);
        const char *p[] = { id, n };
        if (i == 2)
            continue;
        ck_assert_msg(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1"
                             " AND payload->>'n' = $2", 2, p) == 1, "item %d misplaced", i);
    }
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE queue = 'other'"
                            " AND priority = -5", 0, NULL), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE type = 'email'"
                            " AND queue = 'emails'", 0, NULL), 1);
    pgq_disconnect(c);
}
END_TEST

/* Each case: the add is refused, the message is exact, nothing stored. */
static void refused(const char *type, const char *payload, const char *want)
{
    char err[512] = "";
    pgq_conn *c = tu_connect();
    pgq_add_result r;
    long long before = jobs();
    ck_assert_int_eq(pgq_add(c, type, payload, NULL, &r, err, sizeof err), -1);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(jobs(), before);
    pgq_disconnect(c);
}

START_TEST(contract_violations_are_refused)
{
    refused("email", "{\"to\":\"a\"}",
            "payload for job type \"email\" is missing required key \"subject\" (string)");
    refused("email", "{\"to\":\"a\",\"subject\":7}",
            "payload for job type \"email\": key \"subject\" must be string, not number");
    refused("email", "[\"to\"]",
            "payload for job type \"email\" must be a JSON object, not array");
    refused("nosuch", "{}", "unknown job type \"nosuch\" (register it with pgq types apply)");
    refused("free", "{\"a\":", "payload is not valid JSON: The input string ended unexpectedly.");
    refused("free", "{'a':1}", "payload is not valid JSON: Token \"'\" is invalid.");
    refused("", "{}", "job type is missing");
}
END_TEST

START_TEST(bad_item_refuses_whole_batch)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_item items[3] = {
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "email", "{\"to\":\"x\",\"subject\":\"y\"}", PGQ_ADD_OPTS_INIT },
        { "email", "{\"to\":\"x\"}", PGQ_ADD_OPTS_INIT },
    };
    pgq_add_result res[3];
    ck_assert_int_eq(pgq_add_batch(c, items, 3, res, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 3: payload for job type \"email\" is missing required key "
                          "\"subject\" (string)");
    items[2].payload = "nope";
    ck_assert_int_eq(pgq_add_batch(c, items, 3, res, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 3: payload is not valid JSON: Token \"nope\" is invalid.");
    ck_assert_int_eq(jobs(), 0);
    pgq_disconnect(c);
}
END_TEST

START_TEST(metacharacters_stored_verbatim)
{
    char err[512];
    const char *type = "it's\"; DROP TABLE pgq.jobs; --";
    const char *queue = "q'\"\\;--$1";
    const char *key = "k'); DELETE FROM pgq.jobs; --\\";
    const char *payload = "{\"it's\":\"\\\"quoted\\\" \\\\ back ✓\"}";
    tu_type(type, queue, "it's:string", 1, 1000);
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = key;
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, type, payload, &o, &r, err, sizeof err) == 0, "%s", err);
    const char *p[] = { type, queue, key, payload };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE type = $1 AND queue = $2"
                            " AND idempotency_key = $3 AND payload = $4::jsonb", 4, p), 1);
    /* and claimable from that queue */
    pgq_job *j = NULL;
    const char *qs[] = { queue };
    ck_assert(pgq_claim(c, qs, 1, "w'\"", 60000, &j, err, sizeof err) == 0);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(j->type, type);
    ck_assert_str_eq(j->queue, queue);
    pgq_job_free(j);
    pgq_disconnect(c);
}
END_TEST

START_TEST(keys_that_look_like_ordinals_are_keys)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_item items[3] = {
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "free", "{}", PGQ_ADD_OPTS_INIT },
    };
    items[0].opts.idempotency_key = "#2";
    items[2].opts.idempotency_key = "2";
    pgq_add_result res[3];
    ck_assert_msg(pgq_add_batch(c, items, 3, res, err, sizeof err) == 0, "%s", err);
    ck_assert(!res[0].duplicate && !res[1].duplicate && !res[2].duplicate);
    ck_assert_int_eq(jobs(), 3);
    pgq_disconnect(c);
}
END_TEST

START_TEST(odd_inputs_refused_naming_the_item)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.run_at = "infinity";
    pgq_add_result r;
    ck_assert_int_eq(pgq_add(c, "free", "{}", &o, &r, err, sizeof err), -1);
    ck_assert_str_eq(err, "run_at must be a finite time, not infinity");
    ck_assert_int_eq(pgq_add(c, "free", "{\"a\":\"\\u0000\"}", NULL, &r, err, sizeof err), -1);
    ck_assert_msg(strncmp(err, "payload is not valid JSON: ", 27) == 0, "%s", err);
    ck_assert_int_eq(jobs(), 0);
    pgq_disconnect(c);
}
END_TEST

START_TEST(invalid_utf8_refused_naming_field_item_and_byte)
{
    /* A surrogate and an overlong '/': the old C check let both through to
     * PostgreSQL, which refused the statement without saying where. */
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_result r[2];
    ck_assert_int_eq(pgq_add(c, "free", "{\"a\":\"\xed\xa0\x80\"}", NULL, r, err, sizeof err),
                     -1);
    ck_assert_str_eq(err, "payload is not valid UTF-8 at byte offset 6");
    pgq_add_item items[2] = { { "free", "{}", PGQ_ADD_OPTS_INIT },
                              { "free", "[\"\xc0\xaf\"]", PGQ_ADD_OPTS_INIT } };
    ck_assert_int_eq(pgq_add_batch(c, items, 2, r, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 2: payload is not valid UTF-8 at byte offset 2");
    items[1].payload = "{}";
    items[1].opts.idempotency_key = "key-\xf4\x90\x80\x80";
    ck_assert_int_eq(pgq_add_batch(c, items, 2, r, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 2: idempotency key is not valid UTF-8 at byte offset 4");
    ck_assert_int_eq(pgq_add(c, "fr\xc3", "{}", NULL, r, err, sizeof err), -1);
    ck_assert_str_eq(err, "job type is not valid UTF-8 at byte offset 2");
    ck_assert_int_eq(jobs(), 0);
    pgq_disconnect(c);
}
END_TEST

START_TEST(queue_names_follow_the_one_rule)
{
    char err[512], name[256] = "";
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    pgq_add_result r[2];

    /* 100 characters in 200 bytes: the limit counts characters */
    for (int i = 0; i < 100; i++)
        strcat(name, "\xc3\xa9");
    o.queue = name;
    ck_assert_msg(pgq_add(c, "free", "{}", &o, r, err, sizeof err) == 0, "%s", err);
    const char *params[] = { name };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE queue = $1", 1, params), 1);
    strcat(name, "\xc3\xa9");
    ck_assert_int_eq(pgq_add(c, "free", "{}", &o, r, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "\" is 101 characters; at most 100"), "%s", err);
    pgq_add_item items[2] = { { "free", "{}", PGQ_ADD_OPTS_INIT }, { "free", "{}", PGQ_ADD_OPTS_INIT } };
    items[1].opts.queue = "bulk emails";
    ck_assert_int_eq(pgq_add_batch(c, items, 2, r, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 2: queue name \"bulk emails\" contains whitespace at byte offset 4");
    ck_assert_int_eq(jobs(), 1);

    const char *queues[] = { "default", "bulk emails" };
    pgq_job *j = NULL;
    ck_assert_int_eq(pgq_claim(c, queues, 2, "w", 60000, &j, err, sizeof err), -1);
    ck_assert_str_eq(err, "claim: queue name \"bulk emails\" contains whitespace at byte offset 4");
    ck_assert_ptr_null(j);
    pgq_disconnect(c);
}
END_TEST

/* Items of a big batch: payload {"i":k}, and a key "k<k>" when keyed. */
struct big {
    pgq_add_item *items;
    pgq_add_result *res;
    char (*payload)[32];
    char (*key)[32];
    size_t n;
};

static struct big big_batch(size_t n, bool keyed)
{
    struct big b = { calloc(n, sizeof *b.items), calloc(n, sizeof *b.res),
                     calloc(n, sizeof *b.payload), calloc(n, sizeof *b.key), n };
    ck_assert(b.items && b.res && b.payload && b.key);
    for (size_t k = 0; k < n; k++) {
        snprintf(b.payload[k], sizeof b.payload[k], "{\"i\":%zu}", k);
        snprintf(b.key[k], sizeof b.key[k], "k%zu", k);
        b.items[k] = (pgq_add_item){ "free", b.payload[k], PGQ_ADD_OPTS_INIT };
        if (keyed)
            b.items[k].opts.idempotency_key = b.key[k];
    }
    return b;
}

static void big_free(struct big *b)
{
    free(b->items);
    free(b->res);
    free(b->payload);
    free(b->key);
}

/* Every result names the job that holds its item's payload (and key). */
static void assert_mapped(const struct big *b, bool keyed)
{
    char *ids = malloc(b->n * 24 + 2), *p = ids;
    ck_assert_ptr_nonnull(ids);
    *p++ = '{';
    for (size_t k = 0; k < b->n; k++)
        p += sprintf(p, k ? ",%lld" : "%lld", (long long)b->res[k].id);
    strcpy(p, "}");
    const char *params[] = { ids, keyed ? "t" : "f" };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM unnest($1::bigint[]) WITH ORDINALITY AS r(id, ord)"
                            " JOIN pgq.jobs j ON j.id = r.id"
                            " WHERE (j.payload->>'i')::bigint = r.ord - 1"
                            "   AND j.idempotency_key IS NOT DISTINCT FROM"
                            "       CASE WHEN $2::bool THEN 'k' || (r.ord - 1) END",
                            2, params), (long long)b->n);
    free(ids);
}

START_TEST(big_batch_without_keys_maps_every_item)
{
    char err[512];
    pgq_conn *c = tu_connect();
    struct big b = big_batch(10000, false);
    ck_assert_msg(pgq_add_batch(c, b.items, b.n, b.res, err, sizeof err) == 0, "%s", err);
    for (size_t k = 0; k < b.n; k++) {
        ck_assert(!b.res[k].duplicate);
        if (k)
            ck_assert_int_gt(b.res[k].id, b.res[k - 1].id);   /* ids follow item order */
    }
    assert_mapped(&b, false);
    ck_assert_int_eq(jobs(), 10000);
    big_free(&b);
    pgq_disconnect(c);
}
END_TEST

START_TEST(big_batch_with_keys_maps_every_item_and_repeats_as_duplicates)
{
    char err[512];
    pgq_conn *c = tu_connect();
    struct big b = big_batch(10000, true);
    ck_assert_msg(pgq_add_batch(c, b.items, b.n, b.res, err, sizeof err) == 0, "%s", err);
    for (size_t k = 0; k < b.n; k++)
        ck_assert(!b.res[k].duplicate);
    assert_mapped(&b, true);

    /* the same batch again: nothing new, every item answered by its job */
    pgq_add_result *first = malloc(b.n * sizeof *first);
    memcpy(first, b.res, b.n * sizeof *first);
    ck_assert_msg(pgq_add_batch(c, b.items, b.n, b.res, err, sizeof err) == 0, "%s", err);
    for (size_t k = 0; k < b.n; k++) {
        ck_assert(b.res[k].duplicate);
        ck_assert_int_eq(b.res[k].id, first[k].id);
    }
    ck_assert_int_eq(jobs(), 10000);
    free(first);
    big_free(&b);
    pgq_disconnect(c);
}
END_TEST

START_TEST(batch_mixes_new_stored_and_repeated_keys)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "old";
    pgq_add_result old;
    ck_assert_msg(pgq_add(c, "free", "{\"n\":0}", &o, &old, err, sizeof err) == 0, "%s", err);

    pgq_add_item items[6] = {
        { "free", "{\"n\":1}", PGQ_ADD_OPTS_INIT },   /* no key */
        { "free", "{\"n\":2}", PGQ_ADD_OPTS_INIT },   /* stored before */
        { "free", "{\"n\":3}", PGQ_ADD_OPTS_INIT },   /* new key */
        { "free", "{\"n\":4}", PGQ_ADD_OPTS_INIT },   /* repeats item 3 */
        { "free", "{\"n\":5}", PGQ_ADD_OPTS_INIT },   /* no key */
        { "free", "{\"n\":6}", PGQ_ADD_OPTS_INIT },   /* stored before, again */
    };
    items[1].opts.idempotency_key = "old";
    items[2].opts.idempotency_key = "new";
    items[3].opts.idempotency_key = "new";
    items[5].opts.idempotency_key = "old";
    pgq_add_result res[6];
    ck_assert_msg(pgq_add_batch(c, items, 6, res, err, sizeof err) == 0, "%s", err);
    bool dup[6] = { false, true, false, true, false, true };
    for (int i = 0; i < 6; i++)
        ck_assert_msg(res[i].duplicate == dup[i], "item %d", i + 1);
    ck_assert_int_eq(res[1].id, old.id);
    ck_assert_int_eq(res[5].id, old.id);
    ck_assert_int_eq(res[3].id, res[2].id);
    ck_assert_int_ne(res[0].id, res[4].id);
    ck_assert_int_eq(jobs(), 4);   /* old, 1, 3, 5 */
    const char *n3[] = { "new" };
    ck_assert_int_eq(tu_int("SELECT (payload->>'n')::int FROM pgq.jobs WHERE idempotency_key = $1",
                            1, n3), 3);
    pgq_disconnect(c);
}
END_TEST

#define BATCHERS 4
#define BATCH_KEYS 300

struct batcher {
    tu_barrier *start;
    int reversed;
    pgq_add_result res[BATCH_KEYS];   /* by key number */
    char err[512];
    int rc;
};

static void *race_batch(void *arg)
{
    struct batcher *b = arg;
    pgq_conn *c = NULL;
    pgq_add_item items[BATCH_KEYS];
    pgq_add_result res[BATCH_KEYS];
    char keys[BATCH_KEYS][16];
    for (int i = 0; i < BATCH_KEYS; i++) {
        int k = b->reversed ? BATCH_KEYS - 1 - i : i;   /* the same keys in another order */
        snprintf(keys[i], sizeof keys[i], "batch-%d", k);
        items[i] = (pgq_add_item){ "free", "{}", PGQ_ADD_OPTS_INIT };
        items[i].opts.idempotency_key = keys[i];
    }
    b->rc = pgq_connect(tu_db_url(), &c, b->err, sizeof b->err);
    tu_barrier_wait(b->start);
    if (b->rc == 0)
        b->rc = pgq_add_batch(c, items, BATCH_KEYS, res, b->err, sizeof b->err);
    for (int i = 0; b->rc == 0 && i < BATCH_KEYS; i++)
        b->res[b->reversed ? BATCH_KEYS - 1 - i : i] = res[i];
    pgq_disconnect(c);
    return NULL;
}

START_TEST(concurrent_batches_with_one_set_of_keys_make_one_job_each)
{
    pthread_t th[BATCHERS];
    struct batcher *bs = calloc(BATCHERS, sizeof *bs);
    tu_barrier *b = tu_barrier_new(BATCHERS);
    for (int i = 0; i < BATCHERS; i++) {
        bs[i].start = b;
        bs[i].reversed = i % 2;
        pthread_create(&th[i], NULL, race_batch, &bs[i]);
    }
    for (int i = 0; i < BATCHERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < BATCHERS; i++)
        ck_assert_msg(bs[i].rc == 0, "batcher %d: %s", i, bs[i].err);
    for (int k = 0; k < BATCH_KEYS; k++) {
        int fresh = 0;
        for (int i = 0; i < BATCHERS; i++) {
            ck_assert_int_eq(bs[i].res[k].id, bs[0].res[k].id);
            fresh += !bs[i].res[k].duplicate;
        }
        ck_assert_msg(fresh == 1, "key batch-%d: %d batches claim to have inserted", k, fresh);
    }
    ck_assert_int_eq(jobs(), BATCH_KEYS);
    tu_barrier_free(b);
    free(bs);
}
END_TEST

START_TEST(single_add_applies_options)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.queue = "elsewhere";
    o.priority = 7;
    o.delay_ms = 3600 * 1000;
    o.max_retries = 0;
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, "free", "{}", &o, &r, err, sizeof err) == 0, "%s", err);
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)r.id);
    const char *p[] = { id };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND queue = 'elsewhere'"
                            " AND priority = 7 AND max_retries = 0 AND state = 'ready'"
                            " AND run_at > now() + interval '59 minutes'", 1, p), 1);
    o = (pgq_add_opts)PGQ_ADD_OPTS_INIT;
    o.run_at = "2001-02-03 04:05:06+00";
    ck_assert_msg(pgq_add(c, "email", "{\"to\":\"a\",\"subject\":\"b\"}", &o, &r, err,
                          sizeof err) == 0, "%s", err);
    snprintf(id, sizeof id, "%lld", (long long)r.id);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND queue = 'emails'"
                            " AND priority = 0 AND max_retries = 3"
                            " AND run_at = '2001-02-03 04:05:06+00'", 1, p), 1);
    pgq_disconnect(c);
}
END_TEST

START_TEST(batch_refusal_names_the_first_item_by_kind)
{
    /* As in schema version 1: a bad run_at anywhere comes before an unknown
     * type, which comes before a broken contract; then the lowest item. */
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_item items[4] = {
        { "email", "{\"to\":\"x\"}", PGQ_ADD_OPTS_INIT },
        { "nosuch", "{}", PGQ_ADD_OPTS_INIT },
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "email", "[]", PGQ_ADD_OPTS_INIT },
    };
    items[3].opts.run_at = "-infinity";
    pgq_add_result res[4];
    ck_assert_int_eq(pgq_add_batch(c, items, 4, res, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 4: run_at must be a finite time, not -infinity");
    items[3].opts.run_at = NULL;
    ck_assert_int_eq(pgq_add_batch(c, items, 4, res, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 2: unknown job type \"nosuch\" (register it with pgq types apply)");
    items[1].type = "free";
    ck_assert_int_eq(pgq_add_batch(c, items, 4, res, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 1: payload for job type \"email\" is missing required key "
                          "\"subject\" (string)");
    items[0].payload = "{\"to\":\"x\",\"subject\":\"y\"}";
    ck_assert_int_eq(pgq_add_batch(c, items, 4, res, err, sizeof err), -1);
    ck_assert_str_eq(err, "item 4: payload for job type \"email\" must be a JSON object, not array");
    items[3].type = "free";   /* no contract: any JSON will do */
    ck_assert_msg(pgq_add_batch(c, items, 4, res, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(jobs(), 4);
    pgq_disconnect(c);
}
END_TEST

/* Notifications on pgq_jobs seen by conn l, up to and including the
 * "sentinel" one (notifications arrive in commit order). */
static int collect_notifies(PGconn *l, char got[][64], int max)
{
    int n = 0;
    for (int waited = 0; waited < 100;) {
        ck_assert(PQconsumeInput(l));
        PGnotify *nt;
        while ((nt = PQnotifies(l))) {
            bool last = strcmp(nt->extra, "sentinel") == 0;
            if (!last && n < max)
                snprintf(got[n++], 64, "%s", nt->extra);
            PQfreemem(nt);
            if (last)
                return n;
        }
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(PQsocket(l), &fds);
        struct timeval tv = { 0, 100 * 1000 };
        if (select(PQsocket(l) + 1, &fds, NULL, NULL, &tv) == 0)
            waited++;
    }
    ck_abort_msg("no sentinel notification within 10 s");
    return n;
}

static int count_of(char got[][64], int n, const char *q)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        k += strcmp(got[i], q) == 0;
    return k;
}

START_TEST(due_jobs_notify_once_per_queue)
{
    char err[512], got[64][64];
    PGconn *l = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(l), CONNECTION_OK);
    PQclear(PQexec(l, "LISTEN pgq_jobs"));
    pgq_conn *c = tu_connect();

    /* a batch: two due queues (one of them twice), one scheduled-only queue */
    pgq_add_item items[5] = {
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "email", "{\"to\":\"a\",\"subject\":\"b\"}", PGQ_ADD_OPTS_INIT },
        { "free", "{}", PGQ_ADD_OPTS_INIT },
        { "free", "{}", PGQ_ADD_OPTS_INIT },
    };
    items[3].opts.queue = "later";
    items[3].opts.delay_ms = 3600 * 1000;
    items[4].opts.idempotency_key = "n";   /* the keyed path notifies as well */
    pgq_add_result res[5];
    ck_assert_msg(pgq_add_batch(c, items, 4, res, err, sizeof err) == 0, "%s", err);
    PQclear(PQexec(pgq_conn_pg(c), "NOTIFY pgq_jobs, 'sentinel'"));
    int n = collect_notifies(l, got, 64);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(count_of(got, n, "default"), 1);
    ck_assert_int_eq(count_of(got, n, "emails"), 1);

    items[0].opts.queue = "keyed";
    ck_assert_msg(pgq_add_batch(c, items, 5, res, err, sizeof err) == 0, "%s", err);
    PQclear(PQexec(pgq_conn_pg(c), "NOTIFY pgq_jobs, 'sentinel'"));
    n = collect_notifies(l, got, 64);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(count_of(got, n, "keyed"), 1);
    ck_assert_int_eq(count_of(got, n, "default"), 1);
    ck_assert_int_eq(count_of(got, n, "emails"), 1);

    /* single adds: a due job notifies, a scheduled one and a duplicate do not */
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, "email", "{\"to\":\"a\",\"subject\":\"b\"}", &o, &r, err,
                          sizeof err) == 0, "%s", err);
    o.delay_ms = 60000;
    ck_assert_msg(pgq_add(c, "free", "{}", &o, &r, err, sizeof err) == 0, "%s", err);
    o.delay_ms = 0;
    o.idempotency_key = "n";
    ck_assert_msg(pgq_add(c, "free", "{}", &o, &r, err, sizeof err) == 0, "%s", err);
    ck_assert(r.duplicate);
    PQclear(PQexec(pgq_conn_pg(c), "NOTIFY pgq_jobs, 'sentinel'"));
    n = collect_notifies(l, got, 64);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(got[0], "emails");

    pgq_disconnect(c);
    PQfinish(l);
}
END_TEST

/* sql fails with the primary message msg and the detail detail. */
static void sql_refused(const char *sql, const char *msg, const char *detail)
{
    PGresult *r = PQexec(tu_pg(), sql);
    ck_assert_int_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY), msg);
    ck_assert_str_eq(PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL), detail);
    PQclear(r);
}

START_TEST(plain_sql_producers_are_held_to_the_contract)
{
    /* pgq.enqueue takes NULL for a whole column, and refuses like pgq_add. */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.enqueue('{free,email}',"
                            " '{\"{}\",\"{\\\"to\\\":\\\"a\\\",\\\"subject\\\":\\\"b\\\"}\"}',"
                            " NULL, NULL, NULL, NULL, NULL, '{NULL,sql-key}') WHERE NOT duplicate",
                            0, NULL), 2);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.enqueue('{free}', '{1}', NULL, NULL, NULL,"
                            " NULL, NULL, '{sql-key}') WHERE duplicate", 0, NULL), 1);
    sql_refused("SELECT * FROM pgq.enqueue('{free,email}', '{\"{}\",\"{\\\"to\\\":1}\"}',"
                " NULL, NULL, NULL, NULL, NULL, NULL)",
                "payload for job type \"email\": key \"to\" must be string, not number",
                "item 2");
    ck_assert_int_eq(jobs(), 2);

    /* pgq.jobs has no CHECKs (migration 003): pgq.enqueue and pgq.add hold
     * queue names (one rule with C and config: 1..100 characters, no
     * whitespace) and max_retries to what they said. */
    sql_refused("SELECT * FROM pgq.enqueue('{free,free}', '{1,2}', ARRAY['ok', repeat('q', 101)],"
                " NULL, NULL, NULL, NULL, NULL)",
                "queue name must be 1 to 100 characters, not 101", "item 2");
    sql_refused("SELECT * FROM pgq.enqueue('{free}', '{1}', '{\"\"}', NULL, NULL, NULL, NULL,"
                " NULL)", "queue name must be 1 to 100 characters, not 0", "item 1");
    sql_refused("SELECT * FROM pgq.enqueue('{free}', '{1}', '{\"a b\"}', NULL, NULL, NULL, NULL,"
                " NULL)", "queue name \"a b\" contains whitespace", "item 1");
    sql_refused("SELECT * FROM pgq.add('free', '1', queue => repeat('é', 101))",
                "queue name must be 1 to 100 characters, not 101", "item 1");
    sql_refused("SELECT * FROM pgq.add('free', '1', max_retries => -1)",
                "max_retries must be 0 or more, not -1", "item 1");
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.add('free', '1', queue => repeat('é', 100))"
                            " WHERE NOT duplicate", 0, NULL), 1);
    tu_exec("DELETE FROM pgq.jobs WHERE queue = repeat('é', 100)", 0, NULL);
    sql_refused("SELECT * FROM pgq.enqueue('{free}', '{1}', NULL, NULL, NULL, NULL, '{-1}', NULL)",
                "max_retries must be 0 or more, not -1", "item 1");
    ck_assert_int_eq(jobs(), 2);

    /* A NULL element takes the default; an empty column is all defaults. */
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.enqueue('{free,free}', '{1,2}',"
                            " '{q1,NULL}', '{7,NULL}', NULL, '{NULL,NULL}', '{}', '{NULL,NULL}')",
                            0, NULL), 2);
    ck_assert_int_eq(jobs(), 4);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE payload = '1' AND queue = 'q1'"
                            " AND priority = 7 AND max_retries = 3 AND run_at <= now()", 0, NULL),
                     1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE payload = '2'"
                            " AND queue = 'default' AND priority = 0 AND run_at <= now()"
                            " AND idempotency_key IS NULL", 0, NULL), 1);
}
END_TEST

/* pgq_conn_wrap: adds inside the caller's own transaction exist only if it
 * commits, and wake workers only then; the caller's connection is never
 * closed or reconnected by pgq. */
START_TEST(adds_in_the_callers_transaction)
{
    char err[512], got[64][64];
    PGconn *l = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(l), CONNECTION_OK);
    PQclear(PQexec(l, "LISTEN pgq_jobs"));
    PGconn *app = PQconnectdb(tu_db_url());
    ck_assert_int_eq(PQstatus(app), CONNECTION_OK);
    pgq_conn *c = pgq_conn_wrap(app);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_null(pgq_conn_wrap(NULL));

    /* rolled back: nothing, and no wake-up */
    PQclear(PQexec(app, "BEGIN"));
    PQclear(PQexec(app, "CREATE TEMP TABLE orders (id int)"));
    pgq_add_result r;
    ck_assert_msg(pgq_add(c, "free", "{}", NULL, &r, err, sizeof err) == 0, "%s", err);
    pgq_add_item items[2] = { { "free", "{}", PGQ_ADD_OPTS_INIT },
                              { "free", "{}", PGQ_ADD_OPTS_INIT } };
    pgq_add_result res[2];
    ck_assert_msg(pgq_add_batch(c, items, 2, res, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(jobs(), 0);   /* not visible before the commit */
    PQclear(PQexec(app, "ROLLBACK"));
    ck_assert_int_eq(jobs(), 0);
    PQclear(PQexec(tu_pg(), "NOTIFY pgq_jobs, 'sentinel'"));
    ck_assert_int_eq(collect_notifies(l, got, 64), 0);

    /* committed: there, with the caller's own row, and the pools woken */
    PQclear(PQexec(app, "BEGIN"));
    PQclear(PQexec(app, "CREATE TABLE pgq_wrap_orders (id int)"));
    PQclear(PQexec(app, "INSERT INTO pgq_wrap_orders VALUES (1)"));
    ck_assert_msg(pgq_add(c, "free", "{\"order\": 1}", NULL, &r, err, sizeof err) == 0, "%s",
                  err);
    PQclear(PQexec(app, "COMMIT"));
    PQclear(PQexec(tu_pg(), "NOTIFY pgq_jobs, 'sentinel'"));
    ck_assert_int_eq(collect_notifies(l, got, 64), 1);
    ck_assert_int_eq(jobs(), 1);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq_wrap_orders", 0, NULL), 1);
    tu_exec("DROP TABLE pgq_wrap_orders", 0, NULL);

    /* pgq does not reconnect it, and pgq_disconnect leaves it open */
    ck_assert_int_eq(pgq_reconnect(c, err, sizeof err), -1);
    ck_assert_str_eq(err, "connect: a borrowed connection (pgq_conn_wrap) is not reconnected by "
                          "pgq: reconnect it, then wrap it again");
    pgq_disconnect(c);
    PGresult *x = PQexec(app, "SELECT 1");
    ck_assert_int_eq(PQresultStatus(x), PGRES_TUPLES_OK);
    PQclear(x);
    PQfinish(app);
    PQfinish(l);
}
END_TEST

/* pgq.enqueue refuses arrays of the wrong shape, and NULL or out-of-range
 * items, naming the column or the item, and stores nothing (a 2x2 types
 * array once stored 2 of its 4 jobs; a longer column was cut silently). */
START_TEST(sql_enqueue_refuses_misshapen_arrays)
{
    static const struct { const char *args, *err; } cases[] = {
        { "'{{free,free},{free,free}}', '{{\"{}\",\"{}\"},{\"{}\",\"{}\"}}'",
          "pgq.enqueue: types is a 2-dimensional array; each column is a list" },
        { "'{free}', '{\"{}\"}', '{a,b}'", "pgq.enqueue: 1 types but 2 queues" },
        { "'{free,free}', '{\"{}\",\"{}\"}', '{a}'", "pgq.enqueue: 2 types but 1 queues" },
        { "'{free,free}', '{\"{}\"}'", "pgq.enqueue: 2 types but 1 payloads" },
        { "'{}', '{\"{}\"}'", "pgq.enqueue: 0 types but 1 payloads" },
        { "'[0:1]={free,free}', '{\"{}\",\"{}\"}'",
          "pgq.enqueue: types starts at index 0; arrays start at 1" },
        { "'{free,free}', ARRAY['{}', NULL]", "payload is NULL (item 2)" },
        { "'{free,NULL}', '{\"{}\",\"{}\"}'", "type is NULL (item 2)" },
        { "'{free}', '{\"{}\"}', NULL, NULL, NULL, '{99999999999999999}'",
          "delay must be at most 100 years (3155760000000 ms), not 99999999999999999 ms "
          "(item 1)" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* pad to pgq.enqueue's eight arguments with NULLs */
        int nargs = 1, depth = 0;
        bool quoted = false;
        for (const char *q = cases[i].args; *q; q++) {
            if (*q == '\'')
                quoted = !quoted;
            else if (!quoted && (*q == '(' || *q == '['))
                depth++;
            else if (!quoted && (*q == ')' || *q == ']'))
                depth--;
            else if (!quoted && !depth && *q == ',')
                nargs++;
        }
        char sql[1024];
        int len = snprintf(sql, sizeof sql, "SELECT * FROM pgq.enqueue(%s", cases[i].args);
        for (; nargs < 8; nargs++)
            len += snprintf(sql + len, sizeof sql - (size_t)len, ", NULL");
        snprintf(sql + len, sizeof sql - (size_t)len, ")");
        PGresult *r = PQexec(tu_pg(), sql);
        const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                   *d = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
        const char *got = m ? (d ? tu_fmt("%s (%s)", m, d) : m) : "(no error)";
        ck_assert_msg(strcmp(got, cases[i].err) == 0, "pgq.enqueue(%s): [%s], want [%s]",
                      cases[i].args, got, cases[i].err);
        PQclear(r);
    }
    ck_assert_int_eq(jobs(), 0);
}
END_TEST

/* Dedup windows: within the window a second add returns the first job,
 * even done; after it a new job is made (the old one keeps a record of the
 * key); without a window the key lives with the row. */
START_TEST(unique_for_windows_dedup)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "win";
    o.unique_for_ms = 3600 * 1000;
    pgq_add_result a, b;
    ck_assert_msg(pgq_add(c, "free", "{\"n\":1}", &o, &a, err, sizeof err) == 0, "%s", err);
    ck_assert(!a.duplicate);
    tu_exec("UPDATE pgq.jobs SET state = 'done', attempts = 1, finished_at = now()", 0, NULL);
    ck_assert_msg(pgq_add(c, "free", "{\"n\":2}", &o, &b, err, sizeof err) == 0, "%s", err);
    ck_assert(b.duplicate && !b.replaced && b.id == a.id);
    /* the first job is now older than the window */
    tu_exec("UPDATE pgq.jobs SET created_at = now() - interval '2 hours'", 0, NULL);
    ck_assert_msg(pgq_add(c, "free", "{\"n\":3}", &o, &b, err, sizeof err) == 0, "%s", err);
    ck_assert(!b.duplicate && b.id != a.id);
    const char *p[] = { tu_lld(a.id) };
    char *k = tu_text("SELECT coalesce(idempotency_key, '-') || '/' || idempotency_key_expired"
                      " FROM pgq.jobs WHERE id = $1", 1, p);
    ck_assert_str_eq(k, "-/win");
    free(k);
    /* needs a key; a window must be positive */
    pgq_add_opts bad = PGQ_ADD_OPTS_INIT;
    bad.unique_for_ms = 1000;
    ck_assert_int_eq(pgq_add(c, "free", "{}", &bad, &b, err, sizeof err), -1);
    ck_assert_str_eq(err, "unique_for needs an idempotency key");
    bad.idempotency_key = "x";
    bad.unique_for_ms = -5;
    ck_assert_int_eq(pgq_add(c, "free", "{}", &bad, &b, err, sizeof err), -1);
    ck_assert_str_eq(err, "unique_for must be positive, not -5 ms");
    ck_assert_int_eq(jobs(), 2);
    pgq_disconnect(c);
}
END_TEST

/* Debounce: a waiting job with the key takes the new payload and run_at;
 * once it started, an add is a plain duplicate; in a batch the last item
 * of a key wins. */
START_TEST(replace_debounces_waiting_jobs)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "deb";
    o.replace = true;
    o.delay_ms = 60 * 1000;
    pgq_add_result a, b;
    ck_assert_msg(pgq_add(c, "free", "{\"v\":1}", &o, &a, err, sizeof err) == 0, "%s", err);
    ck_assert(!a.duplicate && !a.replaced);
    o.delay_ms = 120 * 1000;
    ck_assert_msg(pgq_add(c, "free", "{\"v\":2}", &o, &b, err, sizeof err) == 0, "%s", err);
    ck_assert(b.duplicate && b.replaced && b.id == a.id);
    const char *p[] = { tu_lld(a.id) };
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND payload = '{\"v\":2}'"
                            " AND run_at > now() + interval '100 seconds'", 1, p), 1);
    pgq_add_item items[3] = { { "free", "{\"v\":3}", o }, { "free", "{\"v\":4}", o },
                              { "free", "{}", PGQ_ADD_OPTS_INIT } };
    pgq_add_result res[3];
    ck_assert_msg(pgq_add_batch(c, items, 3, res, err, sizeof err) == 0, "%s", err);
    ck_assert(res[0].replaced && res[1].replaced && res[0].id == a.id && res[1].id == a.id);
    ck_assert(!res[2].duplicate);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND payload = '{\"v\":4}'",
                            1, p), 1);
    /* started: no longer waiting, so a duplicate, not replaced */
    tu_exec("UPDATE pgq.jobs SET state = 'running', attempts = 1, lease_owner = 'w',"
            " lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 minute',"
            " started_at = now() WHERE id = $1", 1, p);
    ck_assert_msg(pgq_add(c, "free", "{\"v\":5}", &o, &b, err, sizeof err) == 0, "%s", err);
    ck_assert(b.duplicate && !b.replaced && b.id == a.id);
    ck_assert_int_eq(tu_int("SELECT count(*) FROM pgq.jobs WHERE id = $1 AND payload = '{\"v\":4}'",
                            1, p), 1);
    pgq_add_opts nokey = PGQ_ADD_OPTS_INIT;
    nokey.replace = true;
    ck_assert_int_eq(pgq_add(c, "free", "{}", &nokey, &b, err, sizeof err), -1);
    ck_assert_str_eq(err, "replace needs an idempotency key");
    tu_exec("UPDATE pgq.jobs SET state = 'done', lease_token = NULL, lease_expires_at = NULL,"
            " finished_at = now() WHERE id = $1", 1, p);
    pgq_disconnect(c);
}
END_TEST

struct window_racer {
    tu_barrier *start;
    int rc;
    pgq_add_result res;
    char err[256];
};

static void *race_window(void *arg)
{
    struct window_racer *r = arg;
    pgq_conn *c = NULL;
    r->rc = pgq_connect(tu_db_url(), &c, r->err, sizeof r->err);
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "race-window";
    o.unique_for_ms = 1000;
    o.replace = true;
    tu_barrier_wait(r->start);
    if (r->rc == 0)
        r->rc = pgq_add(c, "free", "{}", &o, &r->res, r->err, sizeof r->err);
    pgq_disconnect(c);
    return NULL;
}

/* Eight connections add one key at once with a window and replace, right
 * after its old job's window ended: one new job, the others answered by it. */
START_TEST(concurrent_windowed_adds_make_one_job)
{
    char err[512];
    pgq_conn *c = tu_connect();
    pgq_add_opts o = PGQ_ADD_OPTS_INIT;
    o.idempotency_key = "race-window";
    pgq_add_result old;
    ck_assert_msg(pgq_add(c, "free", "{}", &o, &old, err, sizeof err) == 0, "%s", err);
    tu_exec("UPDATE pgq.jobs SET created_at = now() - interval '1 minute', state = 'done',"
            " attempts = 1, finished_at = now()", 0, NULL);
    enum { N = 8 };
    struct window_racer r[N];
    pthread_t t[N];
    tu_barrier *b = tu_barrier_new(N);
    for (int i = 0; i < N; i++) {
        r[i] = (struct window_racer){ .start = b };
        ck_assert_int_eq(pthread_create(&t[i], NULL, race_window, &r[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    tu_barrier_free(b);
    int fresh = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(r[i].rc == 0, "racer %d: %s", i, r[i].err);
        ck_assert(r[i].res.id != old.id);
        ck_assert(r[i].res.id == r[0].res.id);
        fresh += !r[i].res.duplicate;
    }
    ck_assert_int_eq(fresh, 1);
    ck_assert_int_eq(jobs(), 2);
    pgq_disconnect(c);
}
END_TEST

Suite *enqueue_suite(void)
{
    Suite *s = suite_create("enqueue");
    TCase *tc = tcase_create("enqueue");
    tcase_add_checked_fixture(tc, setup, tu_check_invariants);
    tcase_set_timeout(tc, TU_TIMEOUT);
    tcase_add_test(tc, add_returns_committed_id);
    tcase_add_test(tc, duplicate_key_returns_existing);
    tcase_add_test(tc, concurrent_adds_one_key_make_one_job);
    tcase_add_test(tc, batch_add_maps_results_in_order);
    tcase_add_test(tc, contract_violations_are_refused);
    tcase_add_test(tc, bad_item_refuses_whole_batch);
    tcase_add_test(tc, metacharacters_stored_verbatim);
    tcase_add_test(tc, keys_that_look_like_ordinals_are_keys);
    tcase_add_test(tc, odd_inputs_refused_naming_the_item);
    tcase_add_test(tc, invalid_utf8_refused_naming_field_item_and_byte);
    tcase_add_test(tc, queue_names_follow_the_one_rule);
    tcase_add_test(tc, big_batch_without_keys_maps_every_item);
    tcase_add_test(tc, big_batch_with_keys_maps_every_item_and_repeats_as_duplicates);
    tcase_add_test(tc, batch_mixes_new_stored_and_repeated_keys);
    tcase_add_test(tc, concurrent_batches_with_one_set_of_keys_make_one_job_each);
    tcase_add_test(tc, single_add_applies_options);
    tcase_add_test(tc, batch_refusal_names_the_first_item_by_kind);
    tcase_add_test(tc, due_jobs_notify_once_per_queue);
    tcase_add_test(tc, plain_sql_producers_are_held_to_the_contract);
    tcase_add_test(tc, adds_in_the_callers_transaction);
    tcase_add_test(tc, sql_enqueue_refuses_misshapen_arrays);
    tcase_add_test(tc, unique_for_windows_dedup);
    tcase_add_test(tc, replace_debounces_waiting_jobs);
    tcase_add_test(tc, concurrent_windowed_adds_make_one_job);
    suite_add_tcase(s, tc);
    return s;
}
