/*
 * The three libssh calls a session child redirects (libssh_priv.h says why
 * and how): meson.build links with
 *
 *   -Wl,--wrap=pki_sign_data
 *   -Wl,--wrap=ssh_dh_import_next_pubkey_blob
 *   -Wl,--wrap=ssh_pki_signature_verify
 *
 * so libssh's own calls to these functions (between its object files)
 * land here. Outside a hooked session child (the main process's agent
 * hub, the CLI, the child's own client session to the target) every
 * wrapper calls the real function unchanged.
 *
 * In a hooked child:
 *  - the server's key exchange (ssh_get_key_params) announces the host key
 *    through ssh_dh_import_next_pubkey_blob: the child holds only a
 *    stand-in of the right type, so its blob is swapped for the real
 *    public key of that type, which then also enters the exchange hash;
 *  - signing the exchange hash with a stand-in (pki_sign_data) is sent to
 *    the monitor, whose signature with the real key is returned;
 *  - checking a user's signature (ssh_pki_signature_verify) on the client
 *    session keeps a copy of the signed data and the signature, which the
 *    child forwards to the monitor; libssh's own verdict is kept, but only
 *    the monitor's decides.
 *
 * One process, one client session, one thread: plain static state.
 */
#include "sshproxy/hostkeys.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "sshproxy/libssh_priv.h"

static struct {
    ssh_session down;
    const struct hostkey_standins *keys;
    hostkeys_sign_fn sign;
    void *arg;
    struct buf *out;
    uint8_t *data, *sig; /* the last user signature, heap */
    size_t dlen, slen;
} hooks;

void hostkeys_hook(ssh_session down, const struct hostkey_standins *s,
                   hostkeys_sign_fn sign, void *arg)
{
    hostkeys_unhook();
    hooks.down = down;
    hooks.keys = s;
    hooks.sign = sign;
    hooks.arg = arg;
    hooks.out = buf_new(HOSTKEYS_BLOB_MAX + 8);
}

void hostkeys_forget_userauth(void)
{
    free(hooks.data);
    free(hooks.sig);
    hooks.data = hooks.sig = NULL;
    hooks.dlen = hooks.slen = 0;
}

void hostkeys_unhook(void)
{
    hostkeys_forget_userauth();
    buf_free(hooks.out);
    memset(&hooks, 0, sizeof(hooks));
}

int hostkeys_last_userauth(const uint8_t **data, size_t *dlen,
                           const uint8_t **sig, size_t *slen)
{
    if (hooks.data == NULL || hooks.sig == NULL) {
        return ERR_NOT_FOUND;
    }
    *data = hooks.data;
    *dlen = hooks.dlen;
    *sig = hooks.sig;
    *slen = hooks.slen;
    return ERR_OK;
}

/* The index of the stand-in whose public half equals key, or -1. */
static int hooks_stand_in(const ssh_key key)
{
    size_t i;

    if (hooks.keys == NULL || key == NULL) {
        return -1;
    }
    for (i = 0; i < hooks.keys->n; i++) {
        if (ssh_key_cmp(key, hooks.keys->stand_in[i], SSH_KEY_CMP_PUBLIC) ==
            0) {
            return (int)i;
        }
    }
    return -1;
}

int __wrap_ssh_dh_import_next_pubkey_blob(ssh_session session, ssh_string blob)
{
    ssh_key announced = NULL;
    int i;

    if (hooks.down == NULL || session != hooks.down) {
        return __real_ssh_dh_import_next_pubkey_blob(session, blob);
    }
    /* The server side only ever announces one of its stand-ins. */
    if (ssh_pki_import_pubkey_blob(blob, &announced) != SSH_OK) {
        return SSH_ERROR;
    }
    i = hooks_stand_in(announced);
    ssh_key_free(announced);
    if (i < 0) {
        log_error("key exchange announced an unknown host key");
        return SSH_ERROR;
    }
    return __real_ssh_dh_import_next_pubkey_blob(session, hooks.keys->blob[i]);
}

lsp_signature __wrap_pki_sign_data(const ssh_key privkey,
                                   enum lsp_digest hash_type,
                                   const unsigned char *input, size_t input_len)
{
    lsp_signature sig = NULL;
    const uint8_t *p = NULL;
    ssh_string blob = NULL;
    size_t len = 0;
    int i = hooks_stand_in(privkey);

    if (i < 0 || hooks.sign == NULL || hooks.out == NULL) {
        return __real_pki_sign_data(privkey, hash_type, input, input_len);
    }
    buf_reset(hooks.out);
    if (hooks.sign(hooks.arg, ssh_key_type_to_char(ssh_key_type(privkey)),
                   (uint8_t)hash_type, input, input_len, hooks.out) != ERR_OK ||
        buf_get_string_ptr(hooks.out, HOSTKEYS_BLOB_MAX, &p, &len) != ERR_OK ||
        (blob = ssh_string_new(len)) == NULL ||
        ssh_string_fill(blob, p, len) != 0 ||
        ssh_pki_import_signature_blob(blob, hooks.keys->pub[i], &sig) !=
            SSH_OK) {
        log_error("the monitor did not sign the key exchange");
        sig = NULL;
    }
    ssh_string_free(blob);
    return sig;
}

int __wrap_ssh_pki_signature_verify(ssh_session session, lsp_signature sig,
                                    const ssh_key key,
                                    const unsigned char *input,
                                    size_t input_len)
{
    ssh_string blob = NULL;

    if (hooks.down == NULL || session != hooks.down) {
        return __real_ssh_pki_signature_verify(session, sig, key, input,
                                               input_len);
    }
    hostkeys_forget_userauth();
    if (input_len > 0 && input_len <= 16384 &&
        ssh_pki_export_signature_blob(sig, &blob) == SSH_OK &&
        ssh_string_len(blob) <= HOSTKEYS_BLOB_MAX &&
        (hooks.data = malloc(input_len)) != NULL &&
        (hooks.sig = malloc(ssh_string_len(blob) + 1)) != NULL) {
        memcpy(hooks.data, input, input_len);
        hooks.dlen = input_len;
        memcpy(hooks.sig, ssh_string_data(blob), ssh_string_len(blob));
        hooks.slen = ssh_string_len(blob);
    } else {
        hostkeys_forget_userauth();
    }
    ssh_string_free(blob);
    return __real_ssh_pki_signature_verify(session, sig, key, input, input_len);
}
