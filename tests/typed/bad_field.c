/* Compiled (not linked) by tests/typed_test.c against the embedding
 * example's typed job map (build/examples/embed_jobs.h, from
 * examples/embed.ini: send-email with to and subject). PRODUCER_KEY and
 * HANDLER_KEY name the member the producer sets and the handler reads:
 * "subject" compiles; a key the contract lacks must not. */
#include <string.h>

#include "embed_jobs.h"

#ifndef PRODUCER_KEY
#define PRODUCER_KEY subject
#endif
#ifndef HANDLER_KEY
#define HANDLER_KEY subject
#endif

int produce(pgq_conn *c, char *err, size_t errlen);
int handle(const pgq_job *job, char *err, size_t errlen);

int produce(pgq_conn *c, char *err, size_t errlen)
{
    pgq_add_result r;
    return pgq_add_send_email(c, &(struct send_email){ .to = "a@example.com",
                                                        .PRODUCER_KEY = "Hi" },
                              NULL, &r, err, errlen);
}

int handle(const pgq_job *job, char *err, size_t errlen)
{
    struct send_email p;
    if (send_email_from_job(job, &p, err, errlen) < 0)
        return -1;
    int n = (int)strlen(p.HANDLER_KEY);
    send_email_clear(&p);
    return n;
}
