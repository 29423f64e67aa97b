/*
 * The exec command of a legacy scp session (`scp -O`), read strictly.
 *
 * An exec request is an scp session only if it is exactly what OpenSSH's
 * scp sends to the remote side:
 *
 *   scp [-v] [-r] [-p] [-d] [-q] -t|-f [--] PATH
 *
 * (flags in any order, alone or clustered as in `-rp`), with one PATH
 * written as a shell word: plain characters, backslash escapes, '...' and
 * "..." quoting (no `$`, no backquote), a leading `~` before `/`, and, in
 * `-f` (download) mode only, the glob characters `* ? [ ]` that scp users
 * type to fetch several files. Anything a shell would interpret otherwise
 * (`; | & $ ` < > ( ) { } # !`, a newline or any control character, a
 * second path, any other option such as `-S` or `-o`) is not scp: the
 * caller treats the request as a plain exec, checked against the exec
 * switch of the access profile.
 *
 * What reaches the target is never the client's string but
 * scpcmd_format()'s canonical command rebuilt from the parsed tokens, so
 * the target's shell sees only what was parsed here.
 *
 * Pure: no I/O, no allocation, no libssh.
 */
#ifndef PORTCULLIS_SCPCMD_H
#define PORTCULLIS_SCPCMD_H

#include <stddef.h>
#include <stdint.h>

#define SCPCMD_PATH_MAX 4096 /* bytes of the path, after unquoting */
#define SCPCMD_CMD_MAX 65536 /* bytes of the command as received */
/* Longest canonical command: the flags, then a path whose every byte
 * needs quoting ('\'' for a single quote). */
#define SCPCMD_FORMAT_MAX (64 + 4 * SCPCMD_PATH_MAX + 3)

enum scpcmd_mode {
    SCPCMD_TO = 't',   /* scp -t: the client uploads into PATH */
    SCPCMD_FROM = 'f', /* scp -f: the client downloads PATH */
};

/* Flags OpenSSH's scp passes on to the remote side. */
#define SCPCMD_VERBOSE 0x01u   /* -v */
#define SCPCMD_RECURSIVE 0x02u /* -r */
#define SCPCMD_PRESERVE 0x04u  /* -p */
#define SCPCMD_DIR 0x08u       /* -d: the target must be a directory */
#define SCPCMD_QUIET 0x10u     /* -q */

struct scpcmd {
    int mode;       /* enum scpcmd_mode */
    unsigned flags; /* SCPCMD_* */
    size_t path_len;
    char path[SCPCMD_PATH_MAX + 1]; /* the path, unquoted, NUL-terminated */
    /* 1 where path[i] is live for the shell: a glob character typed
     * unquoted (FROM mode only) or the leading `~` of a home path. */
    uint8_t live[SCPCMD_PATH_MAX];
};

/*
 * Parses the len bytes of cmd. ERR_OK: *out holds the command. Otherwise
 * ERR_INVALID (not an scp command: treat it as exec) or ERR_TOO_LONG, and
 * *out is all zero.
 */
int scpcmd_parse(const char *cmd, size_t len, struct scpcmd *out);

/*
 * Writes the canonical command for c into out (NUL-terminated). Returns
 * its length, or 0 if out is too small (SCPCMD_FORMAT_MAX always fits).
 */
size_t scpcmd_format(const struct scpcmd *c, char *out, size_t outlen);

#endif
