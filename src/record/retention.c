/*
 * The retention sweep (retention.h): pages through the report rows whose
 * sessions ended before the cut-off and still have a recording, deletes
 * each file below the recordings directory, marks the row and writes an
 * audit event.
 *
 * Deleting safely: the row's path (absolute below the directory, as the
 * server writes it, or relative to it) is turned into a path relative to
 * the directory, refused if it has ".." or "." components, and walked
 * from a descriptor of the directory with openat(O_NOFOLLOW |
 * O_DIRECTORY) for each folder; the last component must be a regular
 * file (fstatat AT_SYMLINK_NOFOLLOW) and is removed with unlinkat. No
 * symbolic link is followed after the directory itself, so nothing
 * outside it can be reached, even if a link is swapped in midway.
 */
#include "record/retention.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "store/audit.h"

/* The part of path below dir (which has no trailing '/'), or NULL. */
static const char *retention_below(const char *path, const char *dir)
{
    size_t n = strlen(dir);

    if (n > 0 && strncmp(path, dir, n) == 0 && path[n] == '/') {
        return path + n + 1;
    }
    return NULL;
}

/*
 * Removes rel (relative to the directory dirfd) without following links.
 * ERR_OK with *missing set when it was already gone; ERR_DENIED for a
 * path that leaves the directory, goes through a link or names something
 * other than a regular file; ERR_IO otherwise.
 */
static int retention_unlink(int dirfd, const char *rel, bool *missing)
{
    char copy[STORE_PATH_MAX + 1], *save = NULL, *comp, *next;
    struct stat sb;
    int cur = dirfd, fd, r, saved;

    *missing = false;
    if (util_strlcpy(copy, rel, sizeof(copy)) >= sizeof(copy)) {
        return ERR_TOO_LONG;
    }
    comp = strtok_r(copy, "/", &save);
    if (comp == NULL) {
        return ERR_DENIED;
    }
    for (;;) {
        next = strtok_r(NULL, "/", &save);
        if (strcmp(comp, "..") == 0 || strcmp(comp, ".") == 0) {
            r = ERR_DENIED;
            goto out;
        }
        if (next == NULL) {
            break;
        }
        fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            r = errno == ENOENT                      ? ERR_OK
                : errno == ENOTDIR || errno == ELOOP ? ERR_DENIED
                                                     : ERR_IO;
            *missing = errno == ENOENT;
            goto out;
        }
        if (cur != dirfd) {
            close(cur);
        }
        cur = fd;
        comp = next;
    }
    if (fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) != 0) {
        *missing = errno == ENOENT;
        r = *missing ? ERR_OK : ERR_IO;
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        r = ERR_DENIED;
        goto out;
    }
    if (unlinkat(cur, comp, 0) != 0) {
        *missing = errno == ENOENT;
        r = *missing ? ERR_OK : ERR_IO;
        goto out;
    }
    r = ERR_OK;
out:
    saved = errno;
    if (cur != dirfd) {
        close(cur);
    }
    errno = saved; /* for the caller's message */
    return r;
}

/* Deletes one row's recording, marks the row and audits it. Returns a
 * store error (which ends the sweep); file problems are logged and the
 * row is left for the administrator. */
static int retention_one(struct store *st, int dirfd, const char *dir,
                         const char *realdir, const struct store_session *s,
                         int64_t now, int *deleted)
{
    char detail[AUDIT_DETAIL_MAX + 1];
    const char *rel;
    bool missing = false;
    int r;

    if (s->recording_path[0] != '/') {
        rel = s->recording_path;
    } else if ((rel = retention_below(s->recording_path, dir)) == NULL &&
               (realdir == NULL ||
                (rel = retention_below(s->recording_path, realdir)) == NULL)) {
        log_warn("retention: session %s: recording %s is outside %s; "
                 "not deleted",
                 s->id, s->recording_path, dir);
        return ERR_OK;
    }
    r = retention_unlink(dirfd, rel, &missing);
    if (r == ERR_DENIED) {
        log_warn("retention: session %s: recording %s is not a regular file "
                 "below %s (a link, or '..'); not deleted",
                 s->id, s->recording_path, dir);
        return ERR_OK;
    }
    if (r != ERR_OK) {
        log_error("retention: session %s: cannot delete %s: %s", s->id,
                  s->recording_path, strerror(errno));
        return ERR_OK;
    }
    if ((r = store_session_recording_deleted(st, s->id, now)) != ERR_OK) {
        return r;
    }
    snprintf(detail, sizeof(detail), "path=%s size=%" PRIu64 " sha256=%s%s",
             s->recording_path, s->recording_size,
             s->recording_sha256[0] != '\0' ? s->recording_sha256 : "-",
             missing ? " (already missing)" : "");
    if ((r = audit_write(st, "system", "retention", "recording.delete", s->id,
                         detail)) != ERR_OK) {
        return r;
    }
    log_info("retention: session %s: recording %s %s", s->id, s->recording_path,
             missing ? "was already gone" : "deleted");
    (*deleted)++;
    return ERR_OK;
}

int record_retention_sweep(struct store *st, const char *recordings_dir,
                           int64_t max_age_seconds, int64_t now, int *deleted)
{
    char dir[PATH_MAX], after[STORE_ID_MAX + 1] = "", *realdir = NULL;
    struct store_session *list = NULL;
    size_t n = 0, len, i;
    int dirfd = -1, count = 0, r = ERR_OK;

    if (deleted != NULL) {
        *deleted = 0;
    }
    if (st == NULL || recordings_dir == NULL || recordings_dir[0] == '\0') {
        return ERR_INVALID;
    }
    if (max_age_seconds <= 0) {
        return ERR_OK; /* keep forever */
    }
    if (now == 0) {
        now = util_now();
    }
    if (util_strlcpy(dir, recordings_dir, sizeof(dir)) >= sizeof(dir)) {
        return ERR_TOO_LONG;
    }
    for (len = strlen(dir); len > 1 && dir[len - 1] == '/'; len--) {
        dir[len - 1] = '\0';
    }
    dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) {
        log_error("retention: cannot open %s: %s", dir, strerror(errno));
        r = ERR_IO;
        goto out;
    }
    /* Rows may name the directory by its resolved path too. */
    realdir = realpath(dir, NULL);
    for (;;) {
        r = store_session_list_expired(st, now - max_age_seconds, after,
                                       RETENTION_BATCH, &list, &n);
        if (r != ERR_OK) {
            goto out;
        }
        for (i = 0; i < n; i++) {
            util_strlcpy(after, list[i].id, sizeof(after));
            r = retention_one(st, dirfd, dir, realdir, &list[i], now, &count);
            if (r != ERR_OK) {
                goto out;
            }
        }
        store_list_free(list);
        list = NULL;
        if (n < RETENTION_BATCH) {
            break;
        }
    }
out:
    store_list_free(list);
    free(realdir);
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (deleted != NULL) {
        *deleted = count;
    }
    return r;
}
