/*
 * Recording retention: deleting the recordings of sessions that ended
 * long enough ago ([record] retention_days), called by the server from a
 * timer.
 *
 * Only files below the recordings directory are deleted, and the path is
 * walked one component at a time without following a symbolic link, so a
 * link planted in the directory (or a report row edited to point
 * elsewhere) cannot make the sweep delete anything outside it. Only
 * regular files are deleted.
 *
 * The report row keeps its recording path and SHA-256 (what existed, for
 * the record); its recording size becomes 0 and recording_deleted_at the
 * sweep's time, so `session show` says it is gone and the next sweep skips
 * it. Each deletion is an audit event: actor "system", source "retention",
 * action "recording.delete", target the session ID, detail the path, size
 * and SHA-256. A file found already gone is marked and audited the same
 * way (detail "already missing"); a row whose path is outside the
 * directory, or a link, or not a regular file, is left alone and logged.
 */
#ifndef PORTCULLIS_RETENTION_H
#define PORTCULLIS_RETENTION_H

#include <stdint.h>

#include "store/store.h"

/* Rows looked at per store query. */
#define RETENTION_BATCH 100

/* Deletes the recordings of sessions that ended before now -
 * max_age_seconds (now 0 = the current time; max_age_seconds <= 0 keeps
 * everything). *deleted (may be NULL) gets the number of rows marked
 * deleted. Files that cannot be deleted are logged and skipped; the
 * result is an error only when the store or the directory itself fails
 * (ERR_IO if recordings_dir cannot be opened). */
int record_retention_sweep(struct store *st, const char *recordings_dir,
                           int64_t max_age_seconds, int64_t now, int *deleted);

#endif
