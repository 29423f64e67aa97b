/*
 * Address filters (cidr.h): parsing "addr[/bits]" with inet_pton and
 * comparing prefixes byte by byte.
 */
#include "common/cidr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parses "addr[/bits]" into a family, 16 address bytes and a prefix. */
static bool cidr_parse(const char *s, size_t len, int *family, uint8_t addr[16],
                       int *bits)
{
    char tmp[64], *slash, *end = NULL;
    long b;

    if (len == 0 || len >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    slash = strchr(tmp, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, tmp, addr) == 1) {
        *family = AF_INET;
        *bits = 32;
    } else if (inet_pton(AF_INET6, tmp, addr) == 1) {
        *family = AF_INET6;
        *bits = 128;
    } else {
        return false;
    }
    if (slash != NULL) {
        errno = 0;
        b = strtol(slash + 1, &end, 10);
        if (errno != 0 || end == slash + 1 || *end != '\0' || b < 0 ||
            b > *bits) {
            return false;
        }
        *bits = (int)b;
    }
    return true;
}

static bool cidr_contains(int fam, const uint8_t *net, int bits, int ipfam,
                          const uint8_t *ip)
{
    int full = bits / 8, rest = bits % 8;

    if (fam != ipfam) {
        return false;
    }
    if (memcmp(net, ip, (size_t)full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    return ((net[full] ^ ip[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool cidr_list_valid(const char *s)
{
    uint8_t a[16];
    int fam, bits;
    size_t len;

    if (s == NULL || *s == '\0') {
        return false;
    }
    for (;;) {
        len = strcspn(s, ",");
        if (!cidr_parse(s, len, &fam, a, &bits)) {
            return false;
        }
        if (s[len] == '\0') {
            return true;
        }
        s += len + 1;
    }
}

bool cidr_list_match(const char *list, const char *ip)
{
    uint8_t a[16], net[16];
    int fam, ipfam, bits, ipbits;
    size_t len;

    if (list == NULL || ip == NULL ||
        !cidr_parse(ip, strlen(ip), &ipfam, a, &ipbits)) {
        return false;
    }
    /* An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d. */
    if (ipfam == AF_INET6 &&
        memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
        memmove(a, a + 12, 4);
        memset(a + 4, 0, 12);
        ipfam = AF_INET;
    }
    while (*list != '\0') {
        len = strcspn(list, ",");
        if (cidr_parse(list, len, &fam, net, &bits) &&
            cidr_contains(fam, net, bits, ipfam, a)) {
            return true;
        }
        if (list[len] == '\0') {
            break;
        }
        list += len + 1;
    }
    return false;
}

bool cidr_list_within(const char *inner, const char *outer)
{
    uint8_t net[16], onet[16];
    int fam, ofam, bits, obits;
    const char *o;
    size_t len, olen;
    bool inside;

    if (outer == NULL || outer[0] == '\0') {
        return true;
    }
    if (inner == NULL || inner[0] == '\0') {
        return false;
    }
    for (;;) {
        len = strcspn(inner, ",");
        if (!cidr_parse(inner, len, &fam, net, &bits)) {
            return false;
        }
        /* inside one of outer's networks: same family, at least as long
         * a prefix, and its network address within the outer one */
        inside = false;
        for (o = outer; !inside;) {
            olen = strcspn(o, ",");
            inside = cidr_parse(o, olen, &ofam, onet, &obits) &&
                     bits >= obits &&
                     cidr_contains(ofam, onet, obits, fam, net);
            if (o[olen] == '\0') {
                break;
            }
            o += olen + 1;
        }
        if (!inside) {
            return false;
        }
        if (inner[len] == '\0') {
            return true;
        }
        inner += len + 1;
    }
}
