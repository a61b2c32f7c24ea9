/* [pool] metrics_listen's HOST:PORT (listen.h). Numeric hosts only (and
 * localhost), so that a config check needs no resolver and a typo is not
 * silently resolved into some other machine's address. */
#include "listen.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cfg_listen_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len, char *err,
                     size_t errlen)
{
    static const char usage[] = "HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464 (port 0: any "
                                "free port)";
    char host[64];
    const char *colon = strrchr(text, ':');
    memset(ss, 0, sizeof *ss);
    if (!colon || colon == text) {
        snprintf(err, errlen, "\"%s\": expected %s", text, usage);
        return -1;
    }
    const char *port = colon + 1;
    if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 ||
        atoi(port) > 65535) {
        snprintf(err, errlen, "\"%s\": port \"%s\" is not a number in 0..65535", text, port);
        return -1;
    }
    size_t hl = (size_t)(colon - text);
    bool bracket = text[0] == '[';
    if (bracket && (hl < 3 || text[hl - 1] != ']')) {
        snprintf(err, errlen, "\"%s\": an IPv6 address goes in brackets: [::1]:9464", text);
        return -1;
    }
    if (bracket) {
        text++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, errlen, "\"%.80s...\": the host is too long for an address", text);
        return -1;
    }
    memcpy(host, text, hl);
    host[hl] = '\0';
    if (!bracket && strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    uint16_t p = htons((uint16_t)atoi(port));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (!bracket && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = p;
        *len = sizeof *v4;
        return 0;
    }
    if (bracket && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = p;
        *len = sizeof *v6;
        return 0;
    }
    snprintf(err, errlen, "\"%s\" is not a numeric address (nothing is looked up; use "
             "localhost, an IPv4 address or [IPv6]): expected %s", host, usage);
    return -1;
}
