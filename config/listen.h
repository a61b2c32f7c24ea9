/* Internal: the HOST:PORT of `[pool] metrics_listen`, parsed by one rule
 * for the config loader (which reports file:line) and for the pool's
 * metrics listener (pool/metrics.c), which binds it. */
#ifndef PGQ_CFG_LISTEN_H
#define PGQ_CFG_LISTEN_H

#include <stddef.h>
#include <sys/socket.h>

/* "127.0.0.1:9464", "[::1]:9464", "localhost:9464", "0.0.0.0:9464"
 * (every interface); port 0 means any free port (the pool logs which).
 * Numeric addresses only, apart from localhost: nothing is looked up.
 * 0 with the address in *ss (*len its size), or -1 and err saying what is
 * wrong with text. */
int cfg_listen_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
                     size_t errlen) __attribute__((warn_unused_result));

#endif
