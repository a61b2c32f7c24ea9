/* Database URLs: the check before libpq, the redaction every message uses,
 * and the in-place hiding of --db. The password of a URI must never
 * survive redaction. */
#include "fuzz.h"
#include "db.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    char out[512], err[768] = "";
    pgq_url_redact(s, out, sizeof out);
    if (strnlen(out, sizeof out) >= sizeof out)
        abort();
    (void)db_url_check(s, err, sizeof err);
    fuzz_check_msg(err, sizeof err);
    (void)pgq_url_has_password(s);
    char *arg = fuzz_str(data, size);
    size_t len = strlen(arg);
    pgq_url_hide_arg(arg);
    if (strlen(arg) > len)
        abort();
    free(arg);
    free(s);
    return 0;
}
