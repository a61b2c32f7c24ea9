/* Durations (500ms, 30s, 5m, 1h, 1d): every config duration and --delay. */
#include "fuzz.h"
#include "duration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    int64_t ms = -1;
    char err[256] = "";
    if (pgq_duration_parse(s, &ms, err, sizeof err) == 0) {
        if (ms < 0)
            abort();   /* a parsed duration is never negative */
        char buf[64];
        int64_t again = -1;
        /* what is printed parses back to the same value */
        if (pgq_duration_format(ms, buf, sizeof buf) &&
            (pgq_duration_parse(buf, &again, err, sizeof err) != 0 || again != ms))
            abort();
    } else {
        fuzz_check_msg(err, sizeof err);
    }
    free(s);
    return 0;
}
