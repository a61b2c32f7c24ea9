/* [cron NAME] payloads: the JSON check (config/payload.c) and the jsonb
 * size computed for max_payload (config/jsonb_size.c) on any text. */
#include "fuzz.h"
#include "payload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    char err[256] = "";
    int64_t n = -1;
    if (cfg_jsonb_size(s, &n, err, sizeof err) == 0) {
        /* the smallest jsonb is {} or [] (8 bytes); a valid text always
         * has a size, and the check agrees it is valid */
        if (n < 8 || cfg_json_check(s, err, sizeof err) != 0)
            abort();
    } else {
        fuzz_check_msg(err, sizeof err);
    }
    free(s);
    return 0;
}
