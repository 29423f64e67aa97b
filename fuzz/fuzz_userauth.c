/*
 * Fuzz target: the monitor's check of a user's public-key signature
 * (sshproxy/userauth_sig.h), which parses bytes a compromised session
 * child chooses: the signed request and the signature blob, through our
 * parser and libssh's key and signature blob importers.
 *
 * Input: u16 length of the signed bytes, the signed bytes, then the
 * signature blob.
 */
#include <stddef.h>
#include <stdint.h>

#include <libssh/libssh.h>

#include "common/err.h"
#include "sshproxy/userauth_sig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static ssh_session ctx;
    static const uint8_t sid[32] = {1, 2, 3};
    struct userauth_fields f;
    ssh_key key = NULL;
    size_t dlen;

    if (ctx == NULL) {
        ctx = ssh_new();
    }
    if (size < 2) {
        return 0;
    }
    dlen = (size_t)data[0] << 8 | data[1];
    if (dlen > size - 2) {
        dlen = size - 2;
    }
    (void)userauth_parse(data + 2, dlen, &f);
    if (userauth_sig_check(ctx, sid, sizeof(sid), "alice#db", data + 2, dlen,
                           data + 2 + dlen, size - 2 - dlen, &key) == ERR_OK) {
        ssh_key_free(key);
    }
    return 0;
}
