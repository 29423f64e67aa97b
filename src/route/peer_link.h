/*
 * The main node's side of a peer node's CONNECT proxy (SPEC section 7,
 * http/http_proxy.h on the peer): over a stream already connected to the
 * peer's proxy port, TLS (the peer's certificate pinned by its SHA-256,
 * as `init` prints tls_fingerprint) unless the peer is plain HTTP, then
 *
 *   CONNECT host:port HTTP/1.1 + Proxy-Authorization: Bearer <token>
 *
 * and on 200 a socketpair whose other end a tlspump (common/tlspump.h)
 * joins to the TLS stream: the caller gets a plain stream socket to the
 * destination, as from a direct connect. `OPTIONS *` instead of CONNECT
 * asks only whether the credential works and which version answers
 * (`peer check`).
 *
 * Everything runs on the loop: the handshake, the request and the answer
 * within one deadline. Failures are one line naming the peer and what
 * went wrong (TCP is the caller's; TLS, a wrong certificate, the proxy's
 * status and reason, a timeout).
 */
#ifndef PORTCULLIS_PEER_LINK_H
#define PORTCULLIS_PEER_LINK_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct peer_links;
struct peer_link;

struct peer_link_opts {
    const char *peer;        /* its name, for messages */
    const char *sni;         /* the proxy's host name (TLS SNI), or NULL */
    const char *token;       /* the API token (copied) */
    bool plain_http;         /* no TLS */
    const char *fingerprint; /* "SHA256:AA:BB:...": the pinned certificate */
    const char *dest_host;   /* NULL: OPTIONS * (a check) */
    const char *agent;       /* Portcullis-Agent (a node link), or NULL */
    bool udp; /* with agent: Portcullis-Kind: udp (hub/udp_relay.h) */
    int dest_port;
    int timeout_ms;
};

struct peer_link_result {
    int fd;             /* the stream to the destination, or -1 */
    int status;         /* the proxy's HTTP status, 0 if none came */
    const char *why;    /* NULL on success */
    const char *server; /* the proxy's Server header ("" if none) */
};

typedef void (*peer_link_fn)(void *arg, const struct peer_link_result *res);

/* Links of one loop: freeing them closes every link and relay. */
struct peer_links *peer_links_new(struct loop *l);
void peer_links_free(struct peer_links *ls);

/*
 * Starts the exchange over fd (connected to the proxy; owned by the link
 * from now on). fn is called exactly once, possibly before this returns
 * (then NULL is returned); after a success the link lives on as the relay
 * until either end closes. Returns a handle for peer_link_cancel until fn
 * is called.
 */
struct peer_link *peer_link_start(struct peer_links *ls, int fd,
                                  const struct peer_link_opts *o,
                                  peer_link_fn fn, void *arg);
/* Before fn is called: stops, calls nothing, closes fd. */
void peer_link_cancel(struct peer_link *pl);

/* The head of a proxy's answer (hl bytes, through the blank line): the
 * status (0 unless it is HTTP/1.x with a status of 100..599), the Server
 * header (control characters stripped) and Content-Length (at most 512:
 * only a refusal's first words are read). For fuzz/fuzz_peer_answer.c
 * too. */
void peer_link_parse_answer(const char *head, size_t hl, int *status,
                            char *server, size_t serverlen, size_t *body_want);

/* "SHA256:AA:BB:..." of a certificate's DER into out (>= 104 bytes). */
void peer_link_cert_fp(const unsigned char *der, int len, char *out,
                       size_t outlen);

#endif
