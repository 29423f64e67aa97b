/* Shared helpers; see util.h. */
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/err.h"
#include "common/log.h"

void util_uuid4(char *out)
{
    uint8_t b[16];

    randombytes_buf(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, UTIL_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

bool util_is_uuid(const char *s)
{
    size_t i;

    for (i = 0; i < UTIL_UUID_LEN; i++) {
        char c = s[i];

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return s[UTIL_UUID_LEN] == '\0';
}

bool util_path_clean(const char *p, size_t len, size_t max)
{
    const char *end = p + len;

    if (len < 2 || len > max || p[0] != '/' || p[len - 1] == '/') {
        return false;
    }
    for (const char *c = p; c < end; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f) {
            return false;
        }
    }
    /* c is at a '/', e at the next one (or the end) */
    for (const char *c = p; c < end;) {
        const char *e = memchr(c + 1, '/', (size_t)(end - c - 1));
        size_t n;

        if (e == NULL) {
            e = end;
        }
        n = (size_t)(e - c - 1);
        if (n == 0 || (n == 1 && c[1] == '.') ||
            (n == 2 && c[1] == '.' && c[2] == '.')) {
            return false;
        }
        c = e;
    }
    return true;
}

size_t util_strlcpy(char *dst, const char *src, size_t size)
{
    size_t n = strlen(src);

    if (size > 0) {
        size_t k = n < size - 1 ? n : size - 1;
        memcpy(dst, src, k);
        dst[k] = '\0';
    }
    return n;
}

int64_t util_now(void)
{
    return (int64_t)time(NULL);
}

int64_t util_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool util_wait_flag(const int *flag, int ms)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    int64_t until = util_mono_ms() + ms;

    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
        if (util_mono_ms() >= until) {
            return false;
        }
        nanosleep(&tick, NULL);
    }
    return true;
}

int util_read_file(const char *path, size_t max, uint8_t **data, size_t *len)
{
    struct stat st;
    uint8_t *d = NULL;
    size_t got = 0;
    ssize_t n;
    int fd, r = ERR_OK;

    *data = NULL;
    *len = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        return errno == ENOENT ? ERR_NOT_FOUND : ERR_IO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        r = ERR_IO;
        goto out;
    }
    if ((size_t)st.st_size > max) {
        r = ERR_TOO_LONG;
        goto out;
    }
    if ((d = malloc((size_t)st.st_size + 1)) == NULL) {
        r = ERR_NOMEM;
        goto out;
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, d + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    d[got] = '\0';
    *data = d;
    *len = got;
    d = NULL;
out:
    free(d);
    close(fd);
    return r;
}

int util_write_file_excl(const char *path, const void *data, size_t len,
                         unsigned mode)
{
    const uint8_t *p = data;
    ssize_t n;
    int fd, r = ERR_OK;

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        return errno == EEXIST ? ERR_EXISTS : ERR_IO;
    }
    while (len > 0) {
        n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            r = ERR_IO;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    if (r == ERR_OK && fsync(fd) != 0) {
        r = ERR_IO;
    }
    if (close(fd) != 0 && r == ERR_OK) {
        r = ERR_IO;
    }
    if (r != ERR_OK) {
        unlink(path);
    }
    return r;
}

int util_read_stdin_line(size_t max, char **out)
{
    char *s;
    size_t n = 0;
    ssize_t k;
    char c;

    *out = NULL;
    if ((s = malloc(max + 1)) == NULL) {
        return ERR_NOMEM;
    }
    for (;;) {
        k = read(STDIN_FILENO, &c, 1);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0 || c == '\n') {
            break;
        }
        if (n == max) {
            sodium_memzero(s, max + 1);
            free(s);
            return ERR_TOO_LONG;
        }
        s[n++] = c;
    }
    if (n > 0 && s[n - 1] == '\r') {
        n--;
    }
    s[n] = '\0';
    *out = s;
    return ERR_OK;
}

void util_fmt_time(int64_t t, char *out, size_t outlen)
{
    struct tm tm;
    time_t tt = (time_t)t;

    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int util_set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? ERR_OK
                                                               : ERR_IO;
}

int util_read_key_file(const char *path, const char *what, bool follow,
                       void *key, size_t len)
{
    struct stat sb;
    unsigned char extra;
    size_t got = 0;
    ssize_t n;
    int fd, r = ERR_CRYPTO;

    fd = open(path, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0) {
        if (errno == ENOENT) {
            return ERR_NOT_FOUND;
        }
        log_error("%s %s: %s", what, path, strerror(errno));
        return ERR_IO;
    }
    /* on the open descriptor: the file cannot be swapped between the
     * check and the read */
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        log_error("%s %s: not a regular file", what, path);
        goto out;
    }
    if ((sb.st_mode & 077) != 0) {
        log_error("%s %s: unsafe mode %04o, group or others may access it; "
                  "it must be 0600 (chmod 600)",
                  what, path, (unsigned)(sb.st_mode & 07777));
        goto out;
    }
    if ((size_t)sb.st_size != len) {
        log_error("%s %s: must be exactly %zu bytes", what, path, len);
        goto out;
    }
    while (got < len) {
        n = read(fd, (unsigned char *)key + got, len - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got != len || read(fd, &extra, 1) != 0) {
        log_error("%s %s: could not read exactly %zu bytes", what, path, len);
        goto out;
    }
    r = ERR_OK;
out:
    close(fd);
    if (r != ERR_OK) {
        sodium_memzero(key, len);
    }
    return r;
}

void util_strip_ctl(char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            *s = '?';
        }
    }
}
