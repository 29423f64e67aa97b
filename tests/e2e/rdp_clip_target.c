/*
 * A test RDP server with a clipboard, for tests/e2e/test_rdp_clipboard.py.
 *
 * FreeRDP's shadow server (the other RDP tests' target) has no clipboard
 * channel, and xrdp is not installed here; this is a real RDP server
 * (libfreerdp-server2, TLS security, any login accepted) that speaks the
 * server side of [MS-RDPECLIP] on the static channel cliprdr and writes
 * what it sees, one line each, to OUTFILE:
 *
 *   joined            the client (the proxy) joined cliprdr
 *   no-cliprdr        a connection without cliprdr
 *   formats ID:NAME,...   a Format List (long names)
 *   text TEXT         clipboard text it asked for and got (ASCII; other
 *                     characters as '?')
 *   pdu TYPE          any other clipboard PDU
 *
 * With a TEXT argument it also offers that text on its own clipboard
 * (a Format List with CF_UNICODETEXT after the client's capabilities),
 * and answers the client's request for it.
 *
 * With CT_FLOOD=N in its environment it is a hostile target: after the
 * client's capabilities it sends N clipboard PDUs the proxy must not
 * forward, one malformed (a Monitor Ready with data) and one refused (an
 * unknown type) in turn, and writes "flooded N".
 *
 * Usage: rdp-clip-target PORT CERT KEY OUTFILE [TEXT]
 * Serves one connection after another on 127.0.0.1:PORT until killed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <freerdp/channels/wtsvc.h>
#include <freerdp/freerdp.h>
#include <freerdp/peer.h>
#include <freerdp/settings.h>
#include <winpr/ssl.h>
#include <winpr/synch.h>

#define CT_MSG_MAX (1024 * 1024)

static FILE *ct_out;
static const char *ct_text;
static long ct_flood;
static UINT16 ct_clip;
static uint8_t ct_msg[CT_MSG_MAX];
static size_t ct_len, ct_total;

static void ct_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void ct_put32(uint8_t *p, uint32_t v)
{
    ct_put16(p, (uint16_t)v);
    ct_put16(p + 2, (uint16_t)(v >> 16));
}

static uint32_t ct_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static BOOL ct_send(freerdp_peer *peer, uint16_t type, uint16_t flags,
                    const uint8_t *data, size_t n)
{
    uint8_t b[8 + 4096];

    if (n > 4096) {
        return FALSE;
    }
    ct_put16(b, type);
    ct_put16(b + 2, flags);
    ct_put32(b + 4, (uint32_t)n);
    if (n > 0) {
        memcpy(b + 8, data, n);
    }
    return peer->SendChannelData(peer, ct_clip, b, 8 + n);
}

/* A UTF-16LE string: as ASCII, other characters '?'. */
static void ct_print16(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint16_t u = (uint16_t)(p[i] | (p[i + 1] << 8));

        if (u == 0) {
            break;
        }
        fputc(u >= 0x20 && u < 0x7f ? (int)u : '?', ct_out);
    }
}

static void ct_pdu(freerdp_peer *peer, const uint8_t *m, size_t len)
{
    uint16_t type, flags;
    uint32_t dlen, id;
    uint8_t b[1024];
    size_t off, n;

    if (len < 8) {
        return;
    }
    type = (uint16_t)(m[0] | (m[1] << 8));
    flags = (uint16_t)(m[2] | (m[3] << 8));
    dlen = ct_get32(m + 4);
    if (dlen > len - 8) {
        return;
    }
    m += 8;
    switch (type) {
    case 7: /* the client's capabilities: our own list, if any */
        fprintf(ct_out, "pdu 7\n");
        n = 0;
        memset(b, 0, 4);
        while ((long)n < ct_flood && ct_send(peer, n % 2 ? 0x63 : 1, 0, b, 4)) {
            n++;
        }
        if (ct_flood > 0) {
            fprintf(ct_out, "flooded %zu\n", n);
        }
        if (ct_text != NULL) {
            ct_put32(b, 13);
            ct_put16(b + 4, 0);
            (void)ct_send(peer, 2, 0, b, 6);
        }
        break;
    case 2: /* Format List: said, answered, text asked for */
        fprintf(ct_out, "formats ");
        off = 0;
        id = 0;
        while (off + 4 <= dlen) {
            uint32_t f = ct_get32(m + off);
            size_t start;

            off += 4;
            start = off;
            while (off + 1 < dlen && (m[off] | m[off + 1]) != 0) {
                off += 2;
            }
            fprintf(ct_out, "%s%u:", id++ ? "," : "", f);
            ct_print16(m + start, off - start);
            off += 2;
            if (f == 13) {
                id |= 0x80000000u;
            }
        }
        fprintf(ct_out, "\n");
        (void)ct_send(peer, 3, 1, NULL, 0);
        if (id & 0x80000000u) {
            ct_put32(b, 13);
            (void)ct_send(peer, 4, 0, b, 4);
        }
        break;
    case 5: /* Format Data Response */
        if (flags & 1) {
            fprintf(ct_out, "text ");
            ct_print16(m, dlen);
            fprintf(ct_out, "\n");
        } else {
            fprintf(ct_out, "pdu 5 fail\n");
        }
        break;
    case 4: /* the client asks for our text */
        fprintf(ct_out, "pdu 4\n");
        n = 0;
        for (const char *t = ct_text ? ct_text : ""; *t && n + 4 < sizeof(b);
             t++) {
            ct_put16(b + n, (uint16_t)(unsigned char)*t);
            n += 2;
        }
        ct_put16(b + n, 0);
        (void)ct_send(peer, 5, ct_text ? 1 : 2, b, ct_text ? n + 2 : 0);
        break;
    default:
        fprintf(ct_out, "pdu %u\n", type);
    }
    fflush(ct_out);
}

static BOOL ct_channel(freerdp_peer *peer, UINT16 id, const BYTE *data,
                       size_t size, UINT32 flags, size_t total)
{
    if (id != ct_clip || ct_clip == 0) {
        return TRUE;
    }
    if (flags & CHANNEL_FLAG_FIRST) {
        ct_len = 0;
        ct_total = total <= CT_MSG_MAX ? total : 0;
    }
    if (ct_total == 0 || size > ct_total - ct_len) {
        ct_total = 0;
        return TRUE;
    }
    memcpy(ct_msg + ct_len, data, size);
    ct_len += size;
    if ((flags & CHANNEL_FLAG_LAST) && ct_len == ct_total) {
        ct_pdu(peer, ct_msg, ct_len);
        ct_total = 0;
    }
    return TRUE;
}

static BOOL ct_post_connect(freerdp_peer *peer)
{
    return TRUE;
}

/* Active: capabilities (long names, file streams) and Monitor Ready. */
static BOOL ct_activate(freerdp_peer *peer)
{
    uint8_t caps[16];

    ct_clip = WTSChannelGetId(peer, "cliprdr");
    if (ct_clip == 0) {
        fprintf(ct_out, "no-cliprdr\n");
        fflush(ct_out);
        return TRUE;
    }
    fprintf(ct_out, "joined\n");
    fflush(ct_out);
    ct_put16(caps, 1);      /* one set */
    ct_put16(caps + 2, 0);  /* pad */
    ct_put16(caps + 4, 1);  /* general */
    ct_put16(caps + 6, 12); /* its length */
    ct_put32(caps + 8, 2);  /* version */
    ct_put32(caps + 12, 0x02 | 0x04);
    return ct_send(peer, 7, 0, caps, sizeof(caps)) &&
           ct_send(peer, 1, 0, NULL, 0);
}

static void ct_serve(int fd, const char *cert, const char *key)
{
    freerdp_peer *peer = freerdp_peer_new(fd);
    HANDLE h[32];
    DWORD n;

    if (peer == NULL || !freerdp_peer_context_new(peer)) {
        close(fd);
        return;
    }
    ct_clip = 0;
    ct_total = 0;
    if (!freerdp_settings_set_string(peer->settings, FreeRDP_CertificateFile,
                                     cert) ||
        !freerdp_settings_set_string(peer->settings, FreeRDP_PrivateKeyFile,
                                     key) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_NlaSecurity,
                                   FALSE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_TlsSecurity, TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_RdpSecurity,
                                   FALSE)) {
        goto out;
    }
    peer->PostConnect = ct_post_connect;
    peer->Activate = ct_activate;
    peer->ReceiveChannelData = ct_channel;
    if (!peer->Initialize(peer)) {
        goto out;
    }
    for (;;) {
        n = peer->GetEventHandles(peer, h, 32);
        if (n == 0 ||
            WaitForMultipleObjects(n, h, FALSE, INFINITE) == WAIT_FAILED) {
            break;
        }
        if (!peer->CheckFileDescriptor(peer)) {
            break;
        }
    }
    peer->Disconnect(peer);
out:
    freerdp_peer_context_free(peer);
    freerdp_peer_free(peer);
}

int main(int argc, char **argv)
{
    struct sockaddr_in a;
    int ls, fd, one = 1;

    if (argc < 5) {
        fprintf(stderr,
                "usage: rdp-clip-target PORT CERT KEY OUTFILE [TEXT]\n");
        return 2;
    }
    if ((ct_out = fopen(argv[4], "a")) == NULL) {
        perror(argv[4]);
        return 1;
    }
    ct_text = argc > 5 ? argv[5] : NULL;
    ct_flood = getenv("CT_FLOOD") != NULL ? atol(getenv("CT_FLOOD")) : 0;
    winpr_InitializeSSL(WINPR_SSL_INIT_DEFAULT);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(argv[1]));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0) {
        perror("listen");
        return 1;
    }
    for (;;) {
        if ((fd = accept(ls, NULL, NULL)) < 0) {
            continue;
        }
        ct_serve(fd, argv[2], argv[3]);
    }
}
