/* The pool's log lines: timestamped on a plain stderr; under systemd, when
 * stderr is the journal (JOURNAL_STREAM gives its device:inode), a syslog
 * priority prefix instead and no timestamp. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "log.h"

/* What pool_log writes with stderr pointed at a fresh file; journal: set
 * JOURNAL_STREAM to that file's device and inode (or to another's). */
static char *logged(enum pgq_log_level level, int journal)
{
    char path[] = "/tmp/pgq-log-test.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    char js[64];
    snprintf(js, sizeof js, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (journal == 2));
    if (journal)
        setenv("JOURNAL_STREAM", js, 1);
    else
        unsetenv("JOURNAL_STREAM");
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    pool_log(level, "w3", "job %d done\nsecond line", 42);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    unsetenv("JOURNAL_STREAM");
    char *s = tu_slurp(path);
    unlink(path);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(journal_lines_carry_a_priority_and_no_timestamp)
{
    char *s = logged(PGQ_LOG_WARN, 1);
    ck_assert_str_eq(s, "<4>WARN  w3: job 42 done second line\n");
    free(s);
    s = logged(PGQ_LOG_ERROR, 1);
    ck_assert_str_eq(s, "<3>ERROR w3: job 42 done second line\n");
    free(s);
    s = logged(PGQ_LOG_INFO, 1);
    ck_assert_str_eq(s, "<6>INFO  w3: job 42 done second line\n");
    free(s);
    /* a plain stderr, and a JOURNAL_STREAM that is not stderr: timestamped */
    for (int j = 0; j <= 2; j += 2) {
        s = logged(PGQ_LOG_INFO, j);
        ck_assert_msg(strlen(s) == 25 + strlen("INFO  w3: job 42 done second line\n") &&
                      s[4] == '-' && s[10] == 'T' && s[23] == 'Z' &&
                      strcmp(s + 25, "INFO  w3: job 42 done second line\n") == 0, "[%s]", s);
        free(s);
    }
}
END_TEST

Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, journal_lines_carry_a_priority_and_no_timestamp);
    suite_add_tcase(s, tc);
    return s;
}
