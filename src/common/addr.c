/*
 * The loopback test behind "plain HTTP only on loopback"; see http_addr.h.
 */
#include "common/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"

/* Longest IPv6 literal in brackets, with a terminator. */
#define HTTP_ADDR_MAX (INET6_ADDRSTRLEN + 2)

bool addr_is_loopback(const char *addr)
{
    char lit[HTTP_ADDR_MAX];
    struct in_addr a4;
    struct in6_addr a6;
    size_t n;

    if (addr == NULL || addr[0] == '\0') {
        return false;
    }
    if (strcasecmp(addr, "localhost") == 0) {
        return true;
    }
    /* inet_pton() takes only the canonical dotted quad: "127.1" or
     * "0x7f.0.0.1" are refused rather than guessed at. */
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    n = strlen(addr);
    if (addr[0] == '[') {
        if (n < 3 || n - 2 >= sizeof(lit) || addr[n - 1] != ']') {
            return false;
        }
        memcpy(lit, addr + 1, n - 2);
        lit[n - 2] = '\0';
    } else if (n < sizeof(lit)) {
        memcpy(lit, addr, n + 1);
    } else {
        return false;
    }
    if (inet_pton(AF_INET6, lit, &a6) != 1) {
        return false;
    }
    if (IN6_IS_ADDR_LOOPBACK(&a6)) {
        return true;
    }
    /* ::ffff:127.0.0.1 is the IPv4 loopback seen through an IPv6 socket */
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

int addr_check_plain_http(const struct config *cfg, char *why, size_t whylen)
{
    if (cfg->http_port == 0 ||
        (cfg->http_tls_cert != NULL && cfg->http_tls_cert[0] != '\0') ||
        cfg->http_allow_plain_http || addr_is_loopback(cfg->http_listen)) {
        return ERR_OK;
    }
    snprintf(why, whylen,
             "refusing plain HTTP on [http] listen = %s, which is not a "
             "loopback address: set [http] tls_cert and tls_key (init made "
             "tls.crt and tls.key) or allow_plain_http = true",
             cfg->http_listen != NULL ? cfg->http_listen : "");
    return ERR_CONFIG;
}
