/*
 * UTF-16LE to UTF-8 and the split of a vaulted login (rdp_text.h).
 */
#include "rdpproxy/rdp_text.h"

#include <string.h>

#include "common/err.h"

static int rdp_text_put(char *out, size_t cap, size_t *n, const char *p,
                        size_t len)
{
    if (*n + len + 1 > cap) {
        return ERR_TOO_LONG;
    }
    memcpy(out + *n, p, len);
    *n += len;
    return ERR_OK;
}

int rdp_utf16_to_utf8(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t i, o = 0, len;
    uint32_t u, lo;
    char enc[4];
    int r = ERR_OK;

    if (cap == 0) {
        return ERR_TOO_LONG;
    }
    for (i = 0; i < n && r == ERR_OK; i++) {
        u = (uint32_t)in[2 * i] | (uint32_t)in[2 * i + 1] << 8;
        if (u == 0 || (u >= 0xdc00 && u <= 0xdfff)) {
            r = ERR_INVALID;
            break;
        }
        if (u >= 0xd800 && u <= 0xdbff) {
            if (i + 1 >= n) {
                r = ERR_INVALID;
                break;
            }
            i++;
            lo = (uint32_t)in[2 * i] | (uint32_t)in[2 * i + 1] << 8;
            if (lo < 0xdc00 || lo > 0xdfff) {
                r = ERR_INVALID;
                break;
            }
            u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
        }
        if (u < 0x80) {
            enc[0] = (char)u;
            len = 1;
        } else if (u < 0x800) {
            enc[0] = (char)(0xc0 | (u >> 6));
            enc[1] = (char)(0x80 | (u & 0x3f));
            len = 2;
        } else if (u < 0x10000) {
            enc[0] = (char)(0xe0 | (u >> 12));
            enc[1] = (char)(0x80 | ((u >> 6) & 0x3f));
            enc[2] = (char)(0x80 | (u & 0x3f));
            len = 3;
        } else {
            enc[0] = (char)(0xf0 | (u >> 18));
            enc[1] = (char)(0x80 | ((u >> 12) & 0x3f));
            enc[2] = (char)(0x80 | ((u >> 6) & 0x3f));
            enc[3] = (char)(0x80 | (u & 0x3f));
            len = 4;
        }
        r = rdp_text_put(out, cap, &o, enc, len);
    }
    /* a failure leaves "", never a part of the name */
    out[r == ERR_OK ? o : 0] = '\0';
    return r;
}

int rdp_split_login(const char *login, char *user, size_t ucap, char *domain,
                    size_t dcap)
{
    const char *bs = strchr(login, '\\');
    size_t dl = bs != NULL ? (size_t)(bs - login) : 0;
    const char *u = bs != NULL ? bs + 1 : login;

    if (ucap == 0 || dcap == 0) {
        return ERR_TOO_LONG;
    }
    user[0] = '\0';
    domain[0] = '\0';
    if (strlen(u) + 1 > ucap || dl + 1 > dcap) {
        return ERR_TOO_LONG;
    }
    memcpy(domain, login, dl);
    domain[dl] = '\0';
    memcpy(user, u, strlen(u) + 1);
    return ERR_OK;
}
