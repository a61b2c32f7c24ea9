/*
 * exec_env.c -- which file a command is, and the environment it gets.
 *
 * Both are decided in the pool, by the worker that runs the job, at the
 * time it runs: PATH and environ are the pool's as they are then (a
 * spawner forked earlier holds an old copy of both, so it is told the
 * resolved path and the whole environment with every job). The job's own
 * variables (PGQ_JOB_ID, PGQ_LEASE_TOKEN, DATABASE_URL, ...) replace any of
 * the same name rather than being added twice, so that no libc's getenv
 * has to choose between two values.
 */
#include "exec_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* One candidate file: 0 if we may execute it, else why not. */
static int runnable(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return errno;
    if (!S_ISREG(st.st_mode) || access(path, X_OK) < 0)
        return EACCES;
    return 0;
}

/* The PATH search of exec.h's contract, done in the pool before the job
 * goes to the spawner: the same function answers `pgq-pool --check`, so it
 * cannot approve what exec cannot find. */
int exec_resolve(const char *name, char **path, int *err)
{
    const char *dirs = getenv("PATH"), *p, *colon;
    size_t nlen = strlen(name);
    char *fallback = NULL;
    bool eacces = false;

    *path = NULL;
    *err = 0;
    if (strchr(name, '/')) {
        if ((*err = runnable(name)) == 0 && !(*path = strdup(name)))
            return -1;
        return 0;
    }
    if (nlen == 0) {
        *err = ENOENT;
        return 0;
    }
    if (!dirs || !*dirs) {
        size_t n = confstr(_CS_PATH, NULL, 0);
        if (n == 0 || !(fallback = malloc(n)))
            return -1;
        confstr(_CS_PATH, fallback, n);
        dirs = fallback;
    }
    for (p = dirs;; p = colon + 1) {
        size_t dlen;
        char *cand;
        int e;

        colon = strchr(p, ':');
        dlen = colon ? (size_t)(colon - p) : strlen(p);
        cand = malloc(dlen + nlen + 3);
        if (!cand) {
            free(fallback);
            return -1;
        }
        /* An empty entry means the current directory, as for execvp. */
        snprintf(cand, dlen + nlen + 3, "%.*s/%s", (int)(dlen ? dlen : 1), dlen ? p : ".", name);
        if ((e = runnable(cand)) == 0) {
            *path = cand;
            free(fallback);
            return 0;
        }
        eacces |= e == EACCES;
        free(cand);
        if (!colon)
            break;
    }
    free(fallback);
    *err = eacces ? EACCES : ENOENT;
    return 0;
}

static bool same_name(const char *a, const char *b)
{
    size_t n = strcspn(a, "=");

    return strncmp(a, b, n) == 0 && b[n] == '=';
}

char **exec_env_build(const char *const *extra)
{
    size_t n = 0, k = 0, m = 0, i, j;
    const char **envp;

    while (environ && environ[n])
        n++;
    while (extra && extra[k])
        k++;
    envp = malloc((n + k + 1) * sizeof *envp);
    if (!envp)
        return NULL;
    for (i = 0; i < n; i++) {
        for (j = 0; j < k && !same_name(extra[j], environ[i]); j++)
            ;
        if (j == k)
            envp[m++] = environ[i];
    }
    for (j = 0; j < k; j++)
        envp[m++] = extra[j];
    envp[m] = NULL;
    return (char **)envp;
}
