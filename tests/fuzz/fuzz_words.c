/* Handler command lines: handler = exec CMD ARGS (shell-like words). */
#include "fuzz.h"
#include "words.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_str(data, size);
    char **argv = NULL;
    size_t argc = 0;
    char err[256] = "";
    if (cfg_split_words(s, &argv, &argc, err, sizeof err) == 0) {
        if (argv[argc] != NULL)
            abort();   /* promised NULL-terminated */
        size_t total = 0;
        for (size_t i = 0; i < argc; i++)
            total += strlen(argv[i]);
        if (total > size)
            abort();   /* words only ever lose characters (quotes, escapes) */
        cfg_strv_free(argv, argc);
    } else {
        fuzz_check_msg(err, sizeof err);
    }
    free(s);
    return 0;
}
