/*
 * The few internal functions of libssh 0.10 that Portcullis uses.
 *
 * Why: libssh's public API exposes neither a server's exchange hash (the
 * session identifier) nor a client's user-authentication signature, and
 * it signs the key exchange with a private host key held in the same
 * process. OpenSSH's privilege separation needs both: the monitor signs
 * the exchange hash (so only it holds the host keys, and it learns the
 * session identifier), and the monitor verifies the user's signature over
 * that identifier itself. We get there without patching libssh: the
 * project links Debian's own static archive (libssh.a from libssh-dev, the
 * same 0.10.6 build with the same security fixes as the shared library)
 * and the linker's --wrap redirects three internal calls that cross object
 * files inside the archive (sshproxy/libssh_hooks.c). docs/security.md says
 * why this was chosen over a patched libssh or an OpenSSL provider.
 *
 * These declarations describe libssh 0.10.6's ABI (src/pki.c,
 * src/pki_crypto.c, src/dh.c); meson.build refuses any other libssh
 * version, and tests/unit/test_kexsign.c exercises every one of them.
 */
#ifndef PORTCULLIS_LIBSSH_PRIV_H
#define PORTCULLIS_LIBSSH_PRIV_H

#include <stddef.h>

#include <libssh/libssh.h>

/* libssh's enum ssh_digest_e (include/libssh/priv.h). */
enum lsp_digest {
    LSP_DIGEST_AUTO = 0,
    LSP_DIGEST_SHA1 = 1,
    LSP_DIGEST_SHA256,
    LSP_DIGEST_SHA384,
    LSP_DIGEST_SHA512,
};

/* An opaque libssh signature (struct ssh_signature_struct). */
typedef struct ssh_signature_struct *lsp_signature;

/* Signs input with privkey (pki_crypto.c); NULL on error. */
lsp_signature pki_sign_data(const ssh_key privkey, enum lsp_digest hash_type,
                            const unsigned char *input, size_t input_len);
/* Checks that key and hash type go together, then signs (pki.c). */
lsp_signature pki_do_sign(const ssh_key privkey, const unsigned char *input,
                          size_t input_len, enum lsp_digest hash_type);
int ssh_pki_export_signature_blob(const lsp_signature sig,
                                  ssh_string *sig_blob);
int ssh_pki_import_signature_blob(const ssh_string sig_blob,
                                  const ssh_key pubkey, lsp_signature *psig);
/* Verifies sig by key over input; session is used for the RSA minimum
 * size and for error messages (pki.c). */
int ssh_pki_signature_verify(ssh_session session, lsp_signature sig,
                             const ssh_key key, const unsigned char *input,
                             size_t input_len);
void ssh_signature_free(lsp_signature sig);
/* Sets the host key the server side of a key exchange announces (dh.c). */
int ssh_dh_import_next_pubkey_blob(ssh_session session, ssh_string blob);

/* Public-key blobs (RFC 4253 6.6) and a key's size in bits (pki.c). */
int ssh_pki_import_pubkey_blob(const ssh_string key_blob, ssh_key *pkey);
int ssh_pki_export_pubkey_blob(const ssh_key key, ssh_string *pblob);
int ssh_key_size(ssh_key key);

/* The real functions behind the --wrap'ed names. */
lsp_signature __real_pki_sign_data(const ssh_key privkey,
                                   enum lsp_digest hash_type,
                                   const unsigned char *input,
                                   size_t input_len);
int __real_ssh_pki_signature_verify(ssh_session session, lsp_signature sig,
                                    const ssh_key key,
                                    const unsigned char *input,
                                    size_t input_len);
int __real_ssh_dh_import_next_pubkey_blob(ssh_session session, ssh_string blob);
lsp_signature __wrap_pki_sign_data(const ssh_key privkey,
                                   enum lsp_digest hash_type,
                                   const unsigned char *input,
                                   size_t input_len);
int __wrap_ssh_pki_signature_verify(ssh_session session, lsp_signature sig,
                                    const ssh_key key,
                                    const unsigned char *input,
                                    size_t input_len);
int __wrap_ssh_dh_import_next_pubkey_blob(ssh_session session, ssh_string blob);

#endif
