/* `pgq top --once`: one snapshot of the dashboard's first screen as plain
 * text, for scripts, logs and machines without a terminal.
 *
 * The design is simple: take one snapshot synchronously (the model's own
 * model_refresh_once, every part, so whatever the screen draws is there),
 * draw it with the dashboard's own view_draw into an ncurses screen whose
 * output goes to /dev/null, read the characters back cell by cell and print
 * them. So --once shows exactly what the live dashboard shows on its first
 * screen, whatever the views learn later: this file knows nothing of what a
 * screen contains. The size is COLUMNS x LINES from the environment (80 x
 * 24 without them), not a terminal's. */
#include "once.h"

#include <curses.h>
#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "ui.h"

/* COLUMNS / LINES when set to a sane number, else def. */
static int env_size(const char *name, int def, int min, int max)
{
    const char *v = getenv(name);
    char *end;
    long n = v && *v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || n < min || n > max)
        return def;
    return (int)n;
}

/* Print screen row y without its trailing blanks. */
static void print_row(FILE *out, int y, int cols, wchar_t *line)
{
    int n = 0;
    for (int x = 0; x < cols; x++) {
        cchar_t cc;
        wchar_t wc[CCHARW_MAX + 1];
        attr_t a;
        short pair;
        if (mvin_wch(y, x, &cc) == ERR || getcchar(&cc, wc, &a, &pair, NULL) == ERR)
            wc[0] = L' ';
        /* the right half of a double-width character reads back empty */
        if (wc[0] != L'\0')
            line[n++] = wc[0];
    }
    while (n > 0 && line[n - 1] == L' ')
        n--;
    line[n] = L'\0';
    fprintf(out, "%ls\n", line);
}

int pgq_top_once(pgq_conn *c, const struct top_opts *o, FILE *out, char *err, size_t errlen)
{
    static const struct top_opts defaults = TOP_OPTS_INIT;
    struct top_opts opts = o ? *o : defaults;
    struct model_query q;
    struct ui u;
    FILE *nul_out = NULL, *nul_in = NULL;
    SCREEN *scr = NULL;
    wchar_t *line = NULL;
    int rc = -1;

    if (opts.stale_s <= 0)
        opts.stale_s = 60;
    memset(&q, 0, sizeof q);
    q.parts = MODEL_ALL;
    q.stale_s = opts.stale_s;
    memset(&u, 0, sizeof u);
    u.opts = &opts;
    u.screen = SCR_OVERVIEW;
    if (model_refresh_once(c, &q, &u.snap, err, errlen) < 0)
        return -1;
    u.st.have_snapshot = u.st.connected = true;
    u.st.last_ok = u.snap->taken;

    int cols = env_size("COLUMNS", 80, 20, 1000);
    int rows = env_size("LINES", 24, 5, 1000);
    /* A terminal type every Debian has (ncurses-base); nothing is written
     * to a terminal, it only has to exist for newterm. */
    nul_out = fopen("/dev/null", "w");
    nul_in = fopen("/dev/null", "r");
    setlocale(LC_CTYPE, "");
    u.utf8 = strcmp(nl_langinfo(CODESET), "UTF-8") == 0;
    if (!nul_out || !nul_in || !(scr = newterm("vt100", nul_out, nul_in))) {
        snprintf(err, errlen, "cannot set up the screen (terminfo entry vt100)");
        goto out;
    }
    if (resize_term(rows, cols) == ERR || !(line = calloc((size_t)cols + 1, sizeof *line))) {
        snprintf(err, errlen, "cannot make a %dx%d screen", cols, rows);
        goto out;
    }
    view_draw(&u);
    for (int y = 0; y < LINES; y++)
        print_row(out, y, COLS, line);
    rc = fflush(out) == 0 ? 0 : -1;
    if (rc < 0)
        snprintf(err, errlen, "writing the screen: %s", strerror(errno));
out:
    if (scr) {
        endwin();
        delscreen(scr);
    }
    if (nul_out)
        fclose(nul_out);
    if (nul_in)
        fclose(nul_in);
    free(line);
    snapshot_release(u.snap);
    return rc;
}
