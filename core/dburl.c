/* The database URL, checked before libpq sees it, and shown without its
 * password.
 *
 * libpq takes a URI (postgresql://...), a key=value string, or else the
 * whole string as a database name on the local socket: "--db 'not a url'"
 * then fails as "connection to server on socket ... failed", with no hint
 * that the URL was not understood. And libpq's own parse errors quote the
 * piece they stumbled on, which may be the password ("invalid
 * percent-encoded token: "se%zzcret""), into the CLI's output and the
 * pool's log. So: a string that is neither is refused here, a parse error
 * is reported with the URL's password masked and without libpq's quotes of
 * pieces of the URL. */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_uri(const char *url)
{
    return strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0;
}

void pgq_url_redact(const char *url, char *out, size_t outlen)
{
    size_t n = 0;
    if (!outlen)
        return;
    /* ch is evaluated even when out is full: callers advance with PUT(*p++),
     * and a full buffer must not stop the scan (it looped forever). */
#define PUT(ch) do { char c_ = (ch); if (n + 1 < outlen) out[n++] = c_; } while (0)
    if (is_uri(url)) {
        /* scheme://user:PASSWORD@host...: the authority ends at the first
         * '/', '?' or '#'; its last '@' ends the user info. */
        const char *a = strstr(url, "://") + 3;
        const char *end = a + strcspn(a, "/?#");
        const char *at = NULL;
        for (const char *p = a; p < end; p++)
            if (*p == '@')
                at = p;
        const char *colon = at ? memchr(a, ':', (size_t)(at - a)) : NULL;
        for (const char *p = url; *p; p++) {
            /* an empty password (user:@host) has nothing to mask, and
             * stepping back to the colon would loop forever */
            if (colon && p == colon + 1 && p < at) {
                PUT('*'); PUT('*'); PUT('*');
                p = at - 1;
                continue;
            }
            PUT(*p);
        }
    } else {
        /* key=value ...: the value of password=, quoted or not. */
        const char *p = url;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == '\n')
                PUT(*p++);
            const char *k = p;
            while (*p && *p != '=' && *p != ' ')
                PUT(*p++);
            bool secret = (size_t)(p - k) == 8 && strncmp(k, "password", 8) == 0;
            while (*p == ' ')
                PUT(*p++);
            if (*p != '=')
                continue;
            PUT(*p++);
            while (*p == ' ')
                PUT(*p++);
            if (secret) {
                PUT('*'); PUT('*'); PUT('*');
            }
            if (*p == '\'') {
                if (!secret)
                    PUT(*p);
                for (p++; *p && *p != '\''; p++) {
                    if (*p == '\\' && p[1])
                        p++;
                    if (!secret)
                        PUT(*p);
                }
                if (*p) {
                    if (!secret)
                        PUT(*p);
                    p++;
                }
            } else {
                for (; *p && *p != ' '; p++) {
                    if (*p == '\\' && p[1])
                        p++;
                    if (!secret)
                        PUT(*p);
                }
            }
        }
    }
#undef PUT
    out[n] = '\0';
}

/* libpq's message with every quoted piece of the URL that the masked URL
 * (shown) does not contain left out: those hold the password. */
static void unquote_url_pieces(const char *msg, const char *url, const char *shown, char *out,
                               size_t outlen)
{
    size_t n = 0;
    const char *p = msg;
    while (*p && n + 1 < outlen) {
        const char *q = *p == '"' ? strchr(p + 1, '"') : NULL;
        if (q) {
            size_t len = (size_t)(q - p - 1);
            char *piece = strndup(p + 1, len);
            bool from_url = piece && len > 0 && strstr(url, piece) && !strstr(shown, piece);
            free(piece);
            if (from_url) {
                while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == ':'))
                    n--;
                p = q + 1;
                continue;
            }
        }
        out[n++] = *p++;
    }
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ' || out[n - 1] == '.'))
        out[--n] = '\0';
}

int db_url_check(const char *url, char *err, size_t errlen)
{
    char shown[512];
    pgq_url_redact(url, shown, sizeof shown);
    if (!*url)
        return 0;   /* libpq's environment (PGHOST, PGDATABASE, ...) */
    if (!is_uri(url) && !strchr(url, '='))
        return seterr(err, errlen, "database URL \"%s\" is not understood: give "
                      "postgresql://USER@HOST:PORT/DBNAME (postgresql:///DBNAME for the local "
                      "socket) or key=value pairs", shown);
    char *why = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &why);
    if (opts) {
        PQconninfoFree(opts);
        return 0;
    }
    char msg[512];
    unquote_url_pieces(why ? why : "out of memory", url, shown, msg, sizeof msg);
    PQfreemem(why);
    return seterr(err, errlen, "database URL \"%s\" is not valid: %s", shown, msg);
}

bool pgq_url_has_password(const char *url)
{
    size_t len = strlen(url) + 4;   /* "***" may be longer than a short password */
    char *shown = malloc(len);
    if (!shown)
        return true;
    pgq_url_redact(url, shown, len);
    bool has = strcmp(shown, url) != 0;
    free(shown);
    return has;
}

void pgq_url_hide_arg(char *arg)
{
    size_t len = strlen(arg);
    char *shown = malloc(len + 4);
    if (!shown) {
        memset(arg, '*', len);   /* cannot redact: hide it all */
        return;
    }
    pgq_url_redact(arg, shown, len + 4);
    size_t n = strlen(shown);
    if (n > len)
        n = len;
    memcpy(arg, shown, n);
    memset(arg + n, '\0', len - n);
    free(shown);
}

char *pgq_url_from_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        seterr(err, errlen, "--db-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char *url = NULL, *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                         line[n - 1] == '\t'))
            line[--n] = '\0';
        if (!n)
            continue;
        if (url) {
            /* never quote the line: it may be a password */
            seterr(err, errlen, "--db-file %s:%d: a second non-empty line (the file holds one "
                   "database URL)", path, lineno);
            free(url);
            url = NULL;
            goto out;
        }
        if (!(url = strdup(line))) {
            seterr(err, errlen, "--db-file %s: out of memory", path);
            goto out;
        }
    }
    if (ferror(f)) {
        seterr(err, errlen, "--db-file %s: %s", path, strerror(errno));
        free(url);
        url = NULL;
    } else if (!url) {
        seterr(err, errlen, "--db-file %s: the file is empty (give one database URL)", path);
    }
out:
    /* the buffer held the secret: clear it before it goes back to malloc */
    if (line)
        memset(line, 0, cap);
    free(line);
    fclose(f);
    return url;
}
