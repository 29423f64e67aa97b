/* The test targets' common server side (rdp_test_server.h). */
#include "rdp_test_server.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <freerdp/channels/wtsvc.h>
#include <freerdp/settings.h>
#include <winpr/ssl.h>
#include <winpr/synch.h>

FILE *rts_out;
static CRITICAL_SECTION rts_lock;

bool rts_open_out(const char *path)
{
    if ((rts_out = fopen(path, "a")) == NULL) {
        perror(path);
        return false;
    }
    InitializeCriticalSection(&rts_lock);
    return true;
}

void rts_say(const char *fmt, ...)
{
    va_list ap;

    EnterCriticalSection(&rts_lock);
    va_start(ap, fmt);
    vfprintf(rts_out, fmt, ap);
    va_end(ap);
    fputc('\n', rts_out);
    fflush(rts_out);
    LeaveCriticalSection(&rts_lock);
}

int rts_listen(const char *port)
{
    struct sockaddr_in a;
    int ls, one = 1;

    winpr_InitializeSSL(WINPR_SSL_INIT_DEFAULT);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)atoi(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((ls = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 8) != 0) {
        perror("listen");
        return -1;
    }
    return ls;
}

int rts_accept(int ls)
{
    int fd;

    while ((fd = accept(ls, NULL, NULL)) < 0) {
    }
    return fd;
}

/* FreeRDP 2 refuses the connection when a peer has no PostConnect. */
static BOOL rts_post_connect(freerdp_peer *peer)
{
    (void)peer;
    return TRUE;
}

freerdp_peer *rts_peer(int fd, const char *cert, const char *key)
{
    freerdp_peer *peer = freerdp_peer_new(fd);

    if (peer == NULL) {
        close(fd);
        return NULL;
    }
    if (!freerdp_peer_context_new(peer) ||
        !freerdp_settings_set_string(peer->settings, FreeRDP_CertificateFile,
                                     cert) ||
        !freerdp_settings_set_string(peer->settings, FreeRDP_PrivateKeyFile,
                                     key) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_NlaSecurity,
                                   FALSE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_TlsSecurity, TRUE) ||
        !freerdp_settings_set_bool(peer->settings, FreeRDP_RdpSecurity,
                                   FALSE)) {
        rts_peer_free(peer);
        return NULL;
    }
    peer->PostConnect = rts_post_connect;
    return peer;
}

void rts_run(freerdp_peer *peer, HANDLE vcm)
{
    HANDLE h[32];
    DWORD n;

    if (!peer->Initialize(peer)) {
        return;
    }
    for (;;) {
        n = peer->GetEventHandles(peer, h, 31);
        if (n == 0) {
            break;
        }
        if (vcm != NULL) {
            h[n++] = WTSVirtualChannelManagerGetEventHandle(vcm);
        }
        if (WaitForMultipleObjects(n, h, FALSE, INFINITE) == WAIT_FAILED ||
            !peer->CheckFileDescriptor(peer) ||
            (vcm != NULL &&
             !WTSVirtualChannelManagerCheckFileDescriptor(vcm))) {
            break;
        }
    }
    peer->Disconnect(peer);
}

void rts_peer_free(freerdp_peer *peer)
{
    if (peer->context != NULL) {
        freerdp_peer_context_free(peer);
    }
    freerdp_peer_free(peer);
}

int rts_serve_forever(const char *port, const char *cert, const char *key,
                      void (*serve)(freerdp_peer *peer))
{
    freerdp_peer *peer;
    int ls;

    if ((ls = rts_listen(port)) < 0) {
        return 1;
    }
    for (;;) {
        if ((peer = rts_peer(rts_accept(ls), cert, key)) != NULL) {
            serve(peer);
            rts_peer_free(peer);
        }
    }
}
