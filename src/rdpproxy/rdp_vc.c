/* Channel message reassembly under a session budget; see rdp_vc.h. */
#include "rdpproxy/rdp_vc.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int rdp_vc_reserve(struct rdp_vc_buf *a, struct rdp_vc_budget *b, size_t n)
{
    uint8_t *p;

    if (a == NULL || b == NULL) {
        return ERR_INVALID;
    }
    if (a->cap >= n) {
        return ERR_OK;
    }
    /* held includes a->cap already: only the growth is new */
    if (n - a->cap > b->max || b->held > b->max - (n - a->cap)) {
        return ERR_TOO_LONG;
    }
    if ((p = realloc(a->msg, n)) == NULL) {
        return ERR_NOMEM;
    }
    b->held += n - a->cap;
    a->msg = p;
    a->cap = n;
    return ERR_OK;
}

void rdp_vc_free(struct rdp_vc_buf *a, struct rdp_vc_budget *b)
{
    if (a == NULL) {
        return;
    }
    if (b != NULL) {
        b->held -= a->cap <= b->held ? a->cap : b->held;
    }
    free(a->msg);
    memset(a, 0, sizeof(*a));
}

void rdp_vc_done(struct rdp_vc_buf *a, struct rdp_vc_budget *b)
{
    if (a == NULL) {
        return;
    }
    a->len = 0;
    a->total = 0;
    if (a->cap > RDP_VC_KEEP) {
        rdp_vc_free(a, b);
    }
}

int rdp_vc_chunk(struct rdp_vc_buf *a, struct rdp_vc_budget *b,
                 const uint8_t *data, size_t size, uint32_t flags, size_t total,
                 enum rdp_vc_verdict *v)
{
    int e;

    if (v != NULL) {
        *v = RDP_VC_MORE;
    }
    if (a == NULL || b == NULL || v == NULL || (data == NULL && size > 0)) {
        return ERR_INVALID;
    }
    if (flags & RDP_VC_FIRST) {
        rdp_vc_done(a, b); /* one under way is abandoned */
        if (total == 0 || total > RDP_VC_MSG_MAX) {
            *v = RDP_VC_TOO_BIG;
            return ERR_OK;
        }
        if ((e = rdp_vc_reserve(a, b, total)) != ERR_OK) {
            if (e == ERR_TOO_LONG) {
                *v = RDP_VC_OVER_BUDGET;
                return ERR_OK;
            }
            return e;
        }
        a->total = total;
    }
    if (a->total == 0) {
        return ERR_OK; /* the rest of a dropped message */
    }
    if (size > a->total - a->len) {
        rdp_vc_done(a, b);
        *v = RDP_VC_MISFIT;
        return ERR_OK;
    }
    if (size > 0) {
        memcpy(a->msg + a->len, data, size);
    }
    a->len += size;
    if (!(flags & RDP_VC_LAST)) {
        return ERR_OK;
    }
    if (a->len != a->total) {
        rdp_vc_done(a, b);
        *v = RDP_VC_MISFIT;
        return ERR_OK;
    }
    *v = RDP_VC_WHOLE;
    return ERR_OK;
}
