/* Cron schedules ([cron NAME] schedule = ...) and their ticks, in UTC and in
 * a zone with DST: a parsed schedule's next tick is after the instant asked
 * about, and its previous tick is not. */
#include "fuzz.h"
#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pgq_tz *berlin;
    static bool loaded;
    if (!loaded) {
        char e[256];
        loaded = true;
        if (tz_load("Europe/Berlin", &berlin, e, sizeof e) < 0)
            berlin = NULL;
    }
    char *s = fuzz_str(data, size);
    for (int z = 0; z < 2; z++) {
        pgq_cron *c = NULL;
        char err[256] = "";
        if (pgq_cron_parse(s, z ? berlin : NULL, &c, err, sizeof err) == 0) {
            const int64_t at = 1743296400000;   /* 2025-03-30 01:00 UTC: Berlin springs forward */
            int64_t next = pgq_cron_next(c, at), prev = pgq_cron_prev(c, at);
            if ((next >= 0 && next <= at) || (prev >= 0 && prev > at))
                abort();
            pgq_cron_free(c);
        } else {
            fuzz_check_msg(err, sizeof err);
        }
    }
    free(s);
    return 0;
}
