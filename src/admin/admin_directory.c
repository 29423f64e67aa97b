/*
 * Just-in-time users for directory logins; see directory_provision() in
 * directory.h. Runs after a successful check, with the admin layer's
 * functions, so a user made here is made by the same rules as one made
 * with `portcullis user add` (a domain user has no local password: only
 * the directory's counts). It touches only the store it is given and
 * the result: the monitor calls it on its loop; POST /login on a
 * database server on one of the API's worker threads, with that
 * worker's connection (http_res_auth.c, http_off_hand).
 *
 * Layering: this file sits under src/auth but calls src/admin, which
 * itself includes auth; it is the one place a login door needs to change
 * configuration nouns, and both doors (monitor, HTTP) share it.
 */
#include "auth/directory.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "admin/admin.h"
#include "common/err.h"
#include "common/log.h"
#include "store/store.h"

/* Appends what, then a and b, to out (always terminated). */
static void djit_append(char *out, size_t outlen, const char *what,
                        const char *a, const char *b)
{
    size_t used = strlen(out);

    if (used < outlen) {
        snprintf(out + used, outlen - used, "%s%s%s", what, a, b);
    }
}

int directory_provision(struct store *st, const char *principal,
                        const struct directory_result *res,
                        struct store_user *u, char *why, size_t whylen,
                        char *detail, size_t detlen)
{
    struct store_group *cur = NULL, *want = NULL, g;
    struct admin_err e;
    char lc[STORE_NAME_MAX + 1];
    size_t ncur = 0, nwant = 0, i, j;
    bool keep;
    int r;

    /* the directory's changes are admin changes, audited by admin as the
     * directory's */
    const struct admin_ctx c = {
        .st = st, .actor = "directory", .source = principal};

    memset(&e, 0, sizeof(e));
    /* Directories compare names without case: one local user per
     * directory user, however the login spells it. */
    if (strlen(principal) >= sizeof(lc)) {
        snprintf(why, whylen, "user name too long");
        return ERR_TOO_LONG;
    }
    for (i = 0; principal[i] != '\0'; i++) {
        lc[i] = (char)tolower((unsigned char)principal[i]);
    }
    lc[i] = '\0';
    principal = lc;
    detail[0] = '\0';
    snprintf(detail, detlen, "directory entry %s", res->dn);
    if (res->display_name[0] != '\0' || res->mail[0] != '\0') {
        djit_append(detail, detlen, " '", res->display_name, "'");
        djit_append(detail, detlen, " <", res->mail, ">");
    }
    r = store_user_get(st, principal, u);
    if (r == ERR_NOT_FOUND) {
        r = admin_user_add(&c, principal, NULL, false, u, &e);
        if (r != ERR_OK) {
            snprintf(why, whylen, "cannot create user %s: %s", principal,
                     e.msg);
            return r;
        }
        log_info("directory: user %s created (%s)", principal, res->dn);
        djit_append(detail, detlen, "; user created", "", "");
    } else if (r != ERR_OK) {
        snprintf(why, whylen, "cannot read user %s: %s", principal, err_str(r));
        return r;
    }
    if (u->disabled) {
        snprintf(why, whylen, "user disabled");
        return ERR_DENIED;
    }
    /* the directory's display name and mail, refreshed at each login */
    if (strcmp(u->display_name, res->display_name) != 0 ||
        strcmp(u->mail, res->mail) != 0) {
        r = store_user_set_info(st, u->id, res->display_name, res->mail);
        if (r != ERR_OK) {
            snprintf(why, whylen,
                     "cannot store what the directory says of "
                     "%s: %s",
                     principal, err_str(r));
            return r;
        }
        snprintf(u->display_name, sizeof(u->display_name), "%s",
                 res->display_name);
        snprintf(u->mail, sizeof(u->mail), "%s", res->mail);
    }
    /* The groups the directory gives that exist here. */
    if (res->nmapped > 0 &&
        (want = calloc(res->nmapped, sizeof(*want))) == NULL) {
        snprintf(why, whylen, "out of memory");
        return ERR_NOMEM;
    }
    for (i = 0; i < res->nmapped; i++) {
        if (store_group_get(st, res->mapped[i], &g) == ERR_OK) {
            want[nwant++] = g;
        } else {
            log_warn("directory: %s maps to group '%s', which does not "
                     "exist",
                     principal, res->mapped[i]);
        }
    }
    if ((r = store_user_groups(st, u->id, &cur, &ncur)) != ERR_OK) {
        snprintf(why, whylen, "cannot read the groups of %s: %s", principal,
                 err_str(r));
        goto out;
    }
    for (i = 0; i < ncur; i++) {
        keep = false;
        for (j = 0; j < nwant && !keep; j++) {
            keep = strcmp(cur[i].id, want[j].id) == 0;
        }
        if (!keep) {
            r = admin_group_member(&c, &cur[i], u, false, &e);
            if (r != ERR_OK && r != ERR_NOT_FOUND) {
                snprintf(why, whylen, "%s", e.msg);
                goto out;
            }
            djit_append(detail, detlen, "; left group ", cur[i].name, "");
        }
    }
    for (j = 0; j < nwant; j++) {
        keep = false;
        for (i = 0; i < ncur && !keep; i++) {
            keep = strcmp(cur[i].id, want[j].id) == 0;
        }
        if (!keep) {
            r = admin_group_member(&c, &want[j], u, true, &e);
            if (r != ERR_OK && r != ERR_EXISTS) {
                snprintf(why, whylen, "%s", e.msg);
                goto out;
            }
            djit_append(detail, detlen, "; joined group ", want[j].name, "");
        }
    }
    r = ERR_OK;
out:
    store_list_free(cur);
    free(want);
    return r;
}
