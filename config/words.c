/* Shell-like word splitting for exec handlers (words.h): the command is
 * split once, when pool.ini is read, so a quoting mistake is an error
 * naming the file and line rather than a failed job. */
#include "words.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cfg_strv_free(char **v, size_t n)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int cfg_split_words(const char *s, char ***argv, size_t *argc, char *err, size_t errlen)
{
    char **v = NULL, *w = NULL;
    size_t n = 0, cap = 0, wl;
    const char *p = s;

    if ((w = malloc(strlen(s) + 1)) == NULL)
        goto oom;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (n + 1 >= cap) {
            char **nv;
            cap = cap ? cap * 2 : 4;
            if ((nv = realloc(v, cap * sizeof *v)) == NULL)
                goto oom;
            v = nv;
        }
        v[n] = NULL;
        if (*p == '\0')
            break;
        wl = 0;
        while (*p && !isspace((unsigned char)*p)) {
            if (*p == '\'') {
                for (p++; *p && *p != '\''; p++)
                    w[wl++] = *p;
                if (*p == '\0') {
                    snprintf(err, errlen, "unterminated ' quote");
                    goto fail;
                }
                p++;
            } else if (*p == '"') {
                for (p++; *p && *p != '"'; p++) {
                    if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
                        p++;
                    w[wl++] = *p;
                }
                if (*p == '\0') {
                    snprintf(err, errlen, "unterminated \" quote");
                    goto fail;
                }
                p++;
            } else if (*p == '\\') {
                if (p[1] == '\0') {
                    snprintf(err, errlen, "trailing backslash");
                    goto fail;
                }
                w[wl++] = p[1];
                p += 2;
            } else {
                w[wl++] = *p++;
            }
        }
        if ((v[n] = strndup(w, wl)) == NULL)
            goto oom;
        n++;
    }
    free(w);
    *argv = v;
    *argc = n;
    return 0;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    free(w);
    cfg_strv_free(v, n);
    return -1;
}
