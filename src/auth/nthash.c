/*
 * NT hashes (nthash.h): MD4 (RFC 1320), UTF-8 to UTF-16LE, NTOWFv1 and
 * NTOWFv2 (MS-NLMP §3.3.2). Secrets on the stack are wiped before return.
 */
#include "auth/nthash.h"

#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

#include <openssl/hmac.h>
#include <sodium.h>

#include "common/err.h"

#define MD4_ROTL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static uint32_t md4_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static void md4_block(uint32_t h[4], const uint8_t blk[64])
{
    static const int r2[16] = {0, 4, 8,  12, 1, 5, 9,  13,
                               2, 6, 10, 14, 3, 7, 11, 15};
    static const int r3[16] = {0, 8, 4, 12, 2, 10, 6, 14,
                               1, 9, 5, 13, 3, 11, 7, 15};
    static const int s1[4] = {3, 7, 11, 19}, s2[4] = {3, 5, 9, 13},
                     s3[4] = {3, 9, 11, 15};
    uint32_t x[16], a = h[0], b = h[1], c = h[2], d = h[3], t;
    int i;

    for (i = 0; i < 16; i++) {
        x[i] = md4_get32(blk + 4 * i);
    }
    for (i = 0; i < 16; i++) {
        t = a + ((b & c) | (~b & d)) + x[i];
        a = d;
        d = c;
        c = b;
        b = MD4_ROTL(t, s1[i % 4]);
    }
    for (i = 0; i < 16; i++) {
        t = a + ((b & c) | (b & d) | (c & d)) + x[r2[i]] + 0x5a827999u;
        a = d;
        d = c;
        c = b;
        b = MD4_ROTL(t, s2[i % 4]);
    }
    for (i = 0; i < 16; i++) {
        t = a + (b ^ c ^ d) + x[r3[i]] + 0x6ed9eba1u;
        a = d;
        d = c;
        c = b;
        b = MD4_ROTL(t, s3[i % 4]);
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    sodium_memzero(x, sizeof(x));
}

void nthash_md4(const uint8_t *in, size_t len, uint8_t out[NTHASH_LEN])
{
    uint32_t h[4] = {0x67452301u, 0xefcdab89u, 0x98badcfeu, 0x10325476u};
    uint8_t tail[128];
    uint64_t bits = (uint64_t)len * 8;
    size_t full = len / 64 * 64, rest = len - full, tlen;

    for (size_t off = 0; off < full; off += 64) {
        md4_block(h, in + off);
    }
    memset(tail, 0, sizeof(tail));
    if (rest > 0) {
        memcpy(tail, in + full, rest);
    }
    tail[rest] = 0x80;
    tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++) {
        tail[tlen - 8 + i] = (uint8_t)(bits >> (8 * i));
    }
    md4_block(h, tail);
    if (tlen == 128) {
        md4_block(h, tail + 64);
    }
    for (int i = 0; i < 4; i++) {
        out[4 * i] = (uint8_t)h[i];
        out[4 * i + 1] = (uint8_t)(h[i] >> 8);
        out[4 * i + 2] = (uint8_t)(h[i] >> 16);
        out[4 * i + 3] = (uint8_t)(h[i] >> 24);
    }
    sodium_memzero(tail, sizeof(tail));
    sodium_memzero(h, sizeof(h));
}

static int nthash_put16(uint8_t *out, size_t cap, size_t *n, uint32_t u)
{
    if (*n + 2 > cap) {
        return ERR_TOO_LONG;
    }
    out[(*n)++] = (uint8_t)u;
    out[(*n)++] = (uint8_t)(u >> 8);
    return ERR_OK;
}

/* glibc's Unicode case table (the C.UTF-8 locale, built into glibc since
 * 2.35), made once; (locale_t)0 if there is none: ASCII only then. */
static locale_t nthash_uloc;
static pthread_once_t nthash_uloc_once = PTHREAD_ONCE_INIT;

static void nthash_uloc_make(void)
{
    nthash_uloc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

/* Windows' upper case of a code point beyond ASCII (ASCII letters are
 * upper-cased where they are read, for both kinds of upper case): BMP
 * only, as Windows' table; a mapping out of the BMP or into the
 * surrogates is not taken. */
static uint32_t nthash_upper_bmp(uint32_t cp)
{
    wint_t u;

    if (cp >= 0x10000) {
        return cp;
    }
    (void)pthread_once(&nthash_uloc_once, nthash_uloc_make);
    if (nthash_uloc == (locale_t)0) {
        return cp;
    }
    u = towupper_l((wint_t)cp, nthash_uloc);
    if (u >= 0x10000 || (u >= 0xd800 && u <= 0xdfff)) {
        return cp;
    }
    return (uint32_t)u;
}

int nthash_utf16le(const char *in, size_t len, int upper, uint8_t *out,
                   size_t cap, size_t *outlen)
{
    const uint8_t *p = (const uint8_t *)in;
    size_t i = 0, n = 0;
    uint32_t cp, min;
    int more, r;

    *outlen = 0;
    while (i < len) {
        uint8_t c = p[i++];

        if (c < 0x80) {
            cp = c;
            more = 0;
            min = 0;
            if (upper && c >= 'a' && c <= 'z') {
                cp = c - 'a' + 'A';
            }
        } else if ((c & 0xe0) == 0xc0) {
            cp = c & 0x1f;
            more = 1;
            min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            more = 2;
            min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            cp = c & 0x07;
            more = 3;
            min = 0x10000;
        } else {
            return ERR_INVALID;
        }
        if ((size_t)more > len - i) {
            return ERR_INVALID;
        }
        for (int k = 0; k < more; k++) {
            if ((p[i] & 0xc0) != 0x80) {
                return ERR_INVALID;
            }
            cp = cp << 6 | (p[i++] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return ERR_INVALID;
        }
        if (upper == NTHASH_UPPER_UNICODE && cp >= 0x80) {
            cp = nthash_upper_bmp(cp);
        }
        if (cp >= 0x10000) {
            cp -= 0x10000;
            if ((r = nthash_put16(out, cap, &n, 0xd800 | (cp >> 10))) !=
                    ERR_OK ||
                (r = nthash_put16(out, cap, &n, 0xdc00 | (cp & 0x3ff))) !=
                    ERR_OK) {
                return r;
            }
        } else if ((r = nthash_put16(out, cap, &n, cp)) != ERR_OK) {
            return r;
        }
    }
    *outlen = n;
    return ERR_OK;
}

int nthash_v1(const char *password, uint8_t out[NTHASH_LEN])
{
    uint8_t w[2 * NTHASH_TEXT_MAX];
    size_t wlen = 0;
    size_t len = strlen(password);
    int r;

    if (len > NTHASH_TEXT_MAX) {
        return ERR_TOO_LONG;
    }
    r = nthash_utf16le(password, len, 0, w, sizeof(w), &wlen);
    if (r == ERR_OK) {
        nthash_md4(w, wlen, out);
    }
    sodium_memzero(w, sizeof(w));
    return r;
}

int nthash_v2(const uint8_t nt[NTHASH_LEN], const char *user,
              const char *domain, uint8_t out[NTHASH_LEN])
{
    return nthash_v2_upper(nt, user, domain, NTHASH_UPPER_ASCII, out);
}

int nthash_v2_upper(const uint8_t nt[NTHASH_LEN], const char *user,
                    const char *domain, int upper, uint8_t out[NTHASH_LEN])
{
    uint8_t w[4 * NTHASH_TEXT_MAX];
    size_t ulen = strlen(user), dlen = strlen(domain), wu = 0, wd = 0;
    unsigned int maclen = 0;
    int r;

    if (ulen > NTHASH_TEXT_MAX || dlen > NTHASH_TEXT_MAX) {
        return ERR_TOO_LONG;
    }
    if ((r = nthash_utf16le(user, ulen, upper, w, sizeof(w) / 2, &wu)) !=
            ERR_OK ||
        (r = nthash_utf16le(domain, dlen, 0, w + wu, sizeof(w) - wu, &wd)) !=
            ERR_OK) {
        return r;
    }
    if (HMAC(EVP_md5(), nt, NTHASH_LEN, w, wu + wd, out, &maclen) == NULL ||
        maclen != NTHASH_LEN) {
        return ERR_CRYPTO;
    }
    return ERR_OK;
}

bool nthash_v2_proof_ok(const uint8_t v2[NTHASH_LEN],
                        const uint8_t challenge[NTHASH_CHALLENGE_LEN],
                        const uint8_t *resp, size_t len)
{
    uint8_t in[NTHASH_CHALLENGE_LEN + NTHASH_RESPONSE_MAX],
        mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    bool ok;

    if (len < NTHASH_LEN + NTHASH_BLOB_MIN || len > NTHASH_RESPONSE_MAX) {
        return false;
    }
    memcpy(in, challenge, NTHASH_CHALLENGE_LEN);
    memcpy(in + NTHASH_CHALLENGE_LEN, resp + NTHASH_LEN, len - NTHASH_LEN);
    ok = HMAC(EVP_md5(), v2, NTHASH_LEN, in,
              NTHASH_CHALLENGE_LEN + len - NTHASH_LEN, mac, &maclen) != NULL &&
         maclen == NTHASH_LEN && sodium_memcmp(mac, resp, NTHASH_LEN) == 0;
    sodium_memzero(mac, sizeof(mac));
    return ok;
}

bool nthash_ntlm_response(const uint8_t *msgs, size_t n, const uint8_t **resp,
                          size_t *len)
{
    static const uint8_t sig[12] = {'N', 'T', 'L', 'M', 'S', 'S',
                                    'P', 0,   3,   0,   0,   0};
    const uint8_t *auth = NULL;
    size_t left, off, rlen;

    for (size_t i = 0; msgs != NULL && i + sizeof(sig) <= n; i++) {
        if (memcmp(msgs + i, sig, sizeof(sig)) == 0) {
            auth = msgs + i;
        }
    }
    /* the fixed part up to NtChallengeResponseFields' end: 28 bytes */
    if (auth == NULL || (left = (size_t)(msgs + n - auth)) < 28) {
        return false;
    }
    rlen = (size_t)auth[20] | (size_t)auth[21] << 8;
    off = (size_t)auth[24] | (size_t)auth[25] << 8 | (size_t)auth[26] << 16 |
          (size_t)auth[27] << 24;
    if (off > left || rlen > left - off) {
        return false;
    }
    *resp = auth + off;
    *len = rlen;
    return true;
}
