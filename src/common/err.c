/* String forms of enum err; see err.h. */
#include "common/err.h"

#include <stddef.h>

static const char *const err_strings[ERR__COUNT] = {
    [ERR_OK] = "success",
    [ERR_NOMEM] = "out of memory",
    [ERR_INVALID] = "invalid input",
    [ERR_TOO_LONG] = "input too long",
    [ERR_NOT_FOUND] = "not found",
    [ERR_EXISTS] = "already exists",
    [ERR_IO] = "input/output error",
    [ERR_STORE] = "store error",
    [ERR_CRYPTO] = "cryptographic error",
    [ERR_DENIED] = "access denied",
    [ERR_AUTH] = "authentication failed",
    [ERR_LOCKED] = "locked out after repeated failures",
    [ERR_AMBIGUOUS] = "ambiguous name",
    [ERR_PROTO] = "protocol error",
    [ERR_TIMEOUT] = "timed out",
    [ERR_CONNECT] = "connection failed",
    [ERR_HOSTKEY] = "host key mismatch",
    [ERR_REPLAY] = "code already used",
    [ERR_CONFIG] = "configuration error",
    [ERR_INTERNAL] = "internal error",
};

const char *err_str(int err)
{
    if (err < 0 || err >= ERR__COUNT || err_strings[err] == NULL) {
        return "unknown error";
    }
    return err_strings[err];
}
