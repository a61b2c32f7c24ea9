/* The one strict UTF-8 check (what PostgreSQL accepts): every text field. */
#include "fuzz.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t bad = 0, chars = 0;
    bool ok = utf8_valid((const char *)data, size, &bad, &chars);
    if (ok && chars > size)
        abort();
    if (!ok && bad >= size)
        abort();   /* the bad offset lies inside the input */
    return 0;
}
