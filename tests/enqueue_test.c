/* Promises 1 and 2: durable, idempotent enqueue (also under concurrent adds
 * from many connections) and the payload contract (refused adds name the
 * key and store nothing). Also batch adds and verbatim storage of SQL
 * metacharacters. */
#include <pthread.h>
#include <stdio.h>
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
        pgq_add_result res = { 0, false };
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

Suite *enqueue_suite(void)
{
    Suite *s = suite_create("enqueue");
    TCase *tc = tcase_create("enqueue");
    tcase_add_checked_fixture(tc, setup, NULL);
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
    suite_add_tcase(s, tc);
    return s;
}
