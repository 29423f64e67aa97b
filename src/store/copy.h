/*
 * Copying a whole store from one database to another: `portcullis store
 * migrate --from sqlite:PATH --to postgresql://...` (store_copy.c,
 * docs/operations.md "Moving a SQLite installation to PostgreSQL").
 *
 * The source is read in one read transaction (a running server may keep
 * writing: the copy is one consistent snapshot); the target is written in
 * one write transaction, committed only after every table's row count and
 * digest read back from the target equal the source's. A failure at any
 * point leaves the target as it was.
 *
 * Ownership: store_copy() gives a heap array of tables freed with free().
 */
#ifndef PORTCULLIS_STORE_COPY_H
#define PORTCULLIS_STORE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_COPY_NAME_MAX 63

struct store_copy_table {
    char name[STORE_COPY_NAME_MAX + 1];
    int64_t rows;
    /* SHA-256 over the rows in primary-key order, each column typed and
     * length-prefixed: equal on both sides, or nothing was committed */
    uint8_t digest[32];
};

/*
 * Copies every table of the store at from (opened, and migrated, as
 * store_open() does) into the store at to, which store_open() brings to
 * the same schema. A target holding anything but its fresh schema and
 * /root is refused (ERR_EXISTS, why naming the tables and their counts)
 * unless replace, which deletes the target's rows first, in the same
 * transaction. Sequences and identity columns of the target are set past
 * the copied values (*sequences: how many). On failure why says what
 * failed (never a bound value) and the target is unchanged.
 */
int store_copy(const char *from, const char *to, bool replace,
               struct store_copy_table **tables, size_t *n, int *sequences,
               char *why, size_t whylen);

#endif
