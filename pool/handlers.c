/* Resolving job types to handlers, once per config generation: an exec
 * command must be found (on PATH when it has no '/'), a plugin's shared
 * object must load and export its symbol, and a callback name must have
 * been registered with pgq_pool_on. Resolving up front turns a typo into an
 * error at start (or at `pgq-pool --check`) naming the file and line,
 * rather than a failed job at three in the morning.
 *
 * A relative handler path with a '/' in it (exec ../handlers/send.sh,
 * plugin lib/x.so) is taken relative to the config file's directory, not
 * to the current one: under systemd that is /, and a config that worked
 * from a shell would find nothing there. A bare command name is looked up
 * on PATH, as exec does. */
#include "pool_int.h"
#include "exec.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* argv0 made absolute against the directory of the config at cfg_path,
 * when it is relative and has a '/'. 0, or -1 with err set. */
static int anchor(const char *cfg_path, char **argv0, char *err, size_t errlen)
{
    if (!cfg_path || (*argv0)[0] == '/' || !strchr(*argv0, '/'))
        return 0;
    char *cfg_abs = realpath(cfg_path, NULL);
    if (!cfg_abs) {
        snprintf(err, errlen, "%s: %s", cfg_path, strerror(errno));
        return -1;
    }
    char *slash = strrchr(cfg_abs, '/');
    *slash = '\0';
    size_t len = strlen(cfg_abs) + strlen(*argv0) + 2;
    char *joined = malloc(len);
    if (!joined) {
        free(cfg_abs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(joined, len, "%s/%s", cfg_abs, *argv0);
    free(cfg_abs);
    free(*argv0);
    *argv0 = joined;
    return 0;
}

static int resolve(pgq_pool *p, const pgq_cfg *cfg, const pgq_cfg_type *t, struct handler *h,
                   char *err, size_t errlen)
{
    const char *file = cfg->path ? cfg->path : "config";
    h->type = t;
    h->kind = t->handler_kind;
    switch (t->handler_kind) {
    case PGQ_HANDLER_EXEC: {
        char *found;
        int why;
        if (exec_resolve(t->argv[0], &found, &why) < 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (!found) {
            snprintf(err, errlen, "%s:%d: [job %s] handler: \"%s\" is not an executable file%s",
                     file, t->handler_line, t->name, t->argv[0],
                     strchr(t->argv[0], '/') ? "" : " on PATH");
            return -1;
        }
        free(found);
        return 0;
    }
    case PGQ_HANDLER_PLUGIN:
        h->dl = dlopen(t->argv[0], RTLD_NOW | RTLD_LOCAL);
        if (!h->dl) {
            snprintf(err, errlen, "%s:%d: [job %s] handler: cannot load plugin: %s", file,
                     t->handler_line, t->name, dlerror());
            return -1;
        }
        *(void **)&h->fn = dlsym(h->dl, t->argv[1]);
        if (!h->fn) {
            snprintf(err, errlen, "%s:%d: [job %s] handler: plugin %s has no symbol \"%s\"",
                     file, t->handler_line, t->name, t->argv[0], t->argv[1]);
            return -1;
        }
        return 0;
    case PGQ_HANDLER_CALLBACK:
        for (size_t i = 0; i < p->ncbs; i++) {
            if (strcmp(p->cbs[i].name, t->argv[0]) == 0) {
                h->fn = p->cbs[i].fn;
                h->arg = p->cbs[i].arg;
                return 0;
            }
        }
        snprintf(err, errlen, "%s:%d: [job %s] handler: no callback \"%s\" is registered "
                 "(callbacks exist only in programs embedding libpgq)", file, t->handler_line,
                 t->name, t->argv[0]);
        return -1;
    case PGQ_HANDLER_NONE:
        break;
    }
    snprintf(err, errlen, "%s:%d: [job %s]: no handler", file, t->line, t->name);
    return -1;
}

int handlers_build(pgq_pool *p, pgq_cfg *cfg, struct handlers **out, char *err, size_t errlen)
{
    struct handlers *g = calloc(1, sizeof *g);
    if (!g || !(g->h = calloc(cfg->ntypes + 1, sizeof *g->h))) {
        free(g);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g->cfg = cfg;
    for (size_t i = 0; i < cfg->ntypes; i++) {
        g->n = i + 1;
        pgq_cfg_type *t = &cfg->types[i];
        bool has_path = (t->handler_kind == PGQ_HANDLER_EXEC ||
                         t->handler_kind == PGQ_HANDLER_PLUGIN) && t->argc > 0;
        if ((has_path && anchor(cfg->path, &t->argv[0], err, errlen) < 0) ||
            resolve(p, cfg, t, &g->h[i], err, errlen) < 0) {
            g->cfg = NULL;   /* the caller still owns cfg */
            handlers_free(g);
            return -1;
        }
    }
    *out = g;
    return 0;
}

void handlers_free(struct handlers *h)
{
    while (h) {
        struct handlers *older = h->older;
        for (size_t i = 0; i < h->n; i++)
            if (h->h[i].dl)
                dlclose(h->h[i].dl);
        free(h->h);
        pgq_cfg_free(h->cfg);
        free(h);
        h = older;
    }
}

const struct handler *pool_handler(pgq_pool *p, const char *type)
{
    const struct handler *h = NULL;
    pthread_mutex_lock(&p->mu);
    struct handlers *g = p->handlers;
    for (size_t i = 0; g && i < g->n; i++)
        if (strcmp(g->h[i].type->name, type) == 0)
            h = &g->h[i];
    pthread_mutex_unlock(&p->mu);
    return h;
}
