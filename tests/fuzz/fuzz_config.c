/* pool.ini: the whole loader (inih, the key table, every value parser, the
 * contracts, the handler lines), from a file as the programs read it. */
#include <stdio.h>
#include <unistd.h>

#include "fuzz.h"
#include "pgq_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    if (!*path)
        snprintf(path, sizeof path, "/tmp/pgq-fuzz-config.%d.ini", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    fwrite(data, 1, size, f);
    fclose(f);
    pgq_cfg *cfg = NULL;
    char err[1024] = "";
    if (pgq_cfg_load(path, &cfg, err, sizeof err) == 0)
        pgq_cfg_free(cfg);
    else
        fuzz_check_msg(err, sizeof err);
    return 0;
}
