/*
 * GET /api/v1/settings: what a signed-in user needs to reach the server
 * with a native client, and to check they reach the right one: the SSH
 * proxy's listen address, port and host-key fingerprint (as `ssh` shows
 * it on first connect), the HTTP listener's address, port and URL, and
 * with TLS its certificate's SHA-256 fingerprint (as browsers show it).
 * The web UI builds its ssh/scp/sftp command lines from it, and for rdp
 * assets the RDP proxy's ([rdp], docs/rdp.md) settings and .rdp file.
 *
 * Nothing here is secret: the fingerprints are of public keys, and the
 * host key is read from its .pub file when there is one, so the main
 * process does not parse the private key for it.
 */
#include "http/http_internal.h"
#include "http/http_web.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/err.h"
#include "common/hostkey.h"
#include "common/log.h"

#define SETTINGS_TLS_FP_MAX (7 + 32 * 3)

/* "SHA256:AB:CD:..." of the certificate's DER, or "" when unreadable. */
static void settings_tls_fingerprint(const char *path, char *fp, size_t fplen)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0, i;
    X509 *x = NULL;
    FILE *f = NULL;
    size_t o;

    fp[0] = '\0';
    if (fplen < SETTINGS_TLS_FP_MAX + 1 || (f = fopen(path, "re")) == NULL) {
        return;
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL || X509_digest(x, EVP_sha256(), md, &mdlen) != 1 ||
        mdlen != 32) {
        X509_free(x);
        return;
    }
    X509_free(x);
    memcpy(fp, "SHA256:", 7);
    for (i = 0, o = 7; i < mdlen; i++) {
        if (i > 0) {
            fp[o++] = ':';
        }
        fp[o++] = hex[md[i] >> 4];
        fp[o++] = hex[md[i] & 0x0f];
    }
    fp[o] = '\0';
}

int http_h_settings(struct http_req *req)
{
    const struct config *cfg = req->h->cfg;
    char hostfp[HOSTKEY_FP_MAX] = "", tlsfp[SETTINGS_TLS_FP_MAX + 1] = "";
    char rdpfp[SETTINGS_TLS_FP_MAX + 1] = "";
    char pub[4096], url[512];
    bool v6 = strchr(cfg->http_listen, ':') != NULL;
    int r = ERR_IO;

    if ((size_t)snprintf(pub, sizeof(pub), "%s.pub", cfg->ssh_host_key) <
            sizeof(pub) &&
        access(pub, R_OK) == 0) {
        r = hostkey_fingerprint(pub, hostfp, sizeof(hostfp));
    }
    if (r != ERR_OK && hostkey_fingerprint(cfg->ssh_host_key, hostfp,
                                           sizeof(hostfp)) != ERR_OK) {
        log_warn("http: cannot read the SSH host key %s for its fingerprint",
                 cfg->ssh_host_key);
        hostfp[0] = '\0';
    }
    if (req->h->tls) {
        settings_tls_fingerprint(cfg->http_tls_cert, tlsfp, sizeof(tlsfp));
    }
    if (cfg->rdp_enabled) {
        settings_tls_fingerprint(cfg->rdp_tls_cert, rdpfp, sizeof(rdpfp));
    }
    snprintf(url, sizeof(url), "%s://%s%s%s:%d", req->h->tls ? "https" : "http",
             v6 ? "[" : "", cfg->http_listen, v6 ? "]" : "", cfg->http_port);
    return http_ok(
        req, 200,
        json_pack("{s:{s:s, s:i, s:s?}, s:{s:s, s:i, s:b, s:s, s:s?}, "
                  "s:{s:b, s:s, s:i, s:s?}}",
                  "ssh", "listen", cfg->ssh_listen, "port", cfg->ssh_port,
                  "host_key_fingerprint", http_nz(hostfp), "http", "listen",
                  cfg->http_listen, "port", cfg->http_port, "tls",
                  (int)req->h->tls, "url", url, "tls_fingerprint",
                  http_nz(tlsfp), "rdp", "enabled", (int)cfg->rdp_enabled,
                  "listen", cfg->rdp_listen, "port", cfg->rdp_port,
                  "tls_fingerprint", http_nz(rdpfp)),
        NULL);
}
