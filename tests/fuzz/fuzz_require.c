/* Payload contracts: require = to:string, subject:string, ... */
#include "fuzz.h"
#include "pgq_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    pgq_cfg_require *r = NULL;
    size_t n = 0;
    char err[256] = "";
    if (pgq_require_parse(s, &r, &n, err, sizeof err) == 0)
        pgq_require_free(r, n);
    else
        fuzz_check_msg(err, sizeof err);
    free(s);
    return 0;
}
