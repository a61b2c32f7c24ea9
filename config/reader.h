/* Internal to config/: the line reader inih reads pool.ini through
 * (reader.c), with hooks into the loader (config.c). Debian's inih passes
 * no line numbers to the handler and silently cuts long lines and long
 * section names, so the lines are read and counted here. */
#ifndef PGQ_CFG_READER_H
#define PGQ_CFG_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct cfg_reader {
    FILE *f;
    char *line;                 /* getline buffer: the owner frees it */
    size_t cap;
    int lineno;                 /* of the line last read */
    void *user;                 /* handed to the hooks */
    /* A section header (s starts with '['): 0 to go on, -1 when it
     * recorded an error. */
    int (*on_section)(void *user, const char *s);
    /* The end of the file, read without error. */
    void (*on_eof)(void *user);
    /* Record an error at line (0: the file as a whole). */
    void (*on_error)(void *user, int line, const char *msg);
    /* Whether an error was recorded: the first one wins, and the reader
     * then reports end of file, so inih stops. */
    bool (*failed)(void *user);
};

/* inih's fgets-style reader (ini_parse_stream's reader, stream a struct
 * cfg_reader): the next line into str (num bytes), or NULL at the end or
 * on an error. */
char *cfg_read_line(char *str, int num, void *stream);

/* The first of chars, the start of an inline comment (';' after whitespace)
 * or the end of s: the same scan inih does, so we agree on what a line is. */
const char *cfg_find_or_comment(const char *s, const char *chars);

#endif
