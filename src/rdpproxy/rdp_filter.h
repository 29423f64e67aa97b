/*
 * What the RDP proxy's channel filters (rdp_cliprdr.h on the clipboard,
 * rdp_rdpdr.h on device redirection) say about one channel message,
 * besides the bytes to forward: one type for both, so the channel relay
 * (rdp_child.c) handles and logs every filter's verdict in one place.
 */
#ifndef PORTCULLIS_RDP_FILTER_H
#define PORTCULLIS_RDP_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rdp_filter_result {
    /* non-NULL: the PDU was refused by the policy, why (static text) */
    const char *refused;
    /* items taken out of the PDU by the policy: file formats out of a
     * clipboard Format List, devices out of a Device List Announce */
    unsigned stripped;
    /* the clipboard only: a Format Data Response carrying text, its
     * bytes inside the input (UTF-16LE for CF_UNICODETEXT, 8-bit
     * otherwise); NULL for every other PDU */
    const uint8_t *text;
    size_t text_len;
    bool text_utf16;
};

#endif
