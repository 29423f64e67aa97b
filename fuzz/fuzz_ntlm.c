/*
 * libFuzzer target for the NTLM messages an RDP client sends before it is
 * authenticated, as the RDP child reads them (src/auth/nthash.c): the
 * client's NT response is looked for in the NEGOTIATE, CHALLENGE and
 * AUTHENTICATE messages WinPR hands its hash callback, and the monitor
 * checks whether it proves a key. Besides "no crash, no read past the
 * input" it checks the promises: a response found lies inside the input,
 * and a response the input made up proves nothing for a key it did not
 * know (HMAC-MD5 is not forged by a fuzzer; a hit would mean the check
 * compares the wrong bytes).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/nthash.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_ntlm: invariant failed: %s (line %d)\n",     \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[NTHASH_LEN] = {0x0c, 0x86, 0x8a, 0x40, 0x3b, 0xfd,
                                            0x7a, 0x93, 0xa3, 0x00, 0x1e, 0xf2,
                                            0x2e, 0xf0, 0x2e, 0x3f};
    const uint8_t *resp = NULL;
    size_t len = 0;
    uint8_t *copy;

    /* an exact-size heap copy: ASan sees a read past the input */
    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        return 0;
    }
    memcpy(copy, data, size);
    if (nthash_ntlm_response(copy, size, &resp, &len)) {
        FUZZ_CHECK(resp >= copy && resp <= copy + size);
        FUZZ_CHECK(len <= (size_t)(copy + size - resp));
        if (size >= NTHASH_CHALLENGE_LEN) {
            FUZZ_CHECK(!nthash_v2_proof_ok(key, copy, resp, len));
        }
    }
    free(copy);
    return 0;
}
