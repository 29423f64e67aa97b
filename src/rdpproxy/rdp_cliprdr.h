/*
 * The clipboard filter of the RDP proxy ([MS-RDPECLIP] on the static
 * virtual channel "cliprdr"). The child hands it every whole channel
 * message (reassembled from its chunks) going either way; it answers
 * what to forward, so that the access profile's switches hold whatever
 * the two ends say:
 *
 *  - files off: file formats (CF_HDROP, FileGroupDescriptorW and the
 *    like, by registered name) are taken out of every Format List; the
 *    capability flags that announce file streams and clipboard locks
 *    are cleared; File Contents, Lock/Unlock and Temporary Directory
 *    PDUs are refused;
 *  - files on: a File Contents Request must name a file of a list the
 *    other side sent (the index below the count of the last
 *    FileGroupDescriptorW it answered with since its last Format List,
 *    or of the list a Lock PDU kept under the request's clipDataId,
 *    locked before or after its files were sent), and
 *    a File Contents Response must answer such a request (its stream ID
 *    pending) with no more bytes than were asked for;
 *  - always: a Format Data Request must name a format the other side
 *    announced in its last Format List, as forwarded (so a stripped
 *    file format cannot be asked for by number), and a Format Data
 *    Response must answer a pending request; unknown PDU types and
 *    malformed PDUs are refused.
 *
 * Pure: no I/O, no allocation; unit-tested (test_rdp_cliprdr) and
 * fuzzed (fuzz_rdp_cliprdr). The bytes are untrusted from both ends
 * (a client, and a target the user may control).
 */
#ifndef PORTCULLIS_RDP_CLIPRDR_H
#define PORTCULLIS_RDP_CLIPRDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdpproxy/rdp_filter.h"

/* Formats remembered per side; a longer Format List is refused. */
#define RDP_CLIP_FORMATS_MAX 256
/* Clipboard locks held, and File Contents Requests awaiting an answer,
 * per side; one more is refused. */
#define RDP_CLIP_LOCKS_MAX 16
#define RDP_CLIP_PENDING_MAX 64
/* A FILEDESCRIPTORW, one file in a FileGroupDescriptorW */
#define RDP_CLIP_FILEDESCRIPTORW 592

/* Directions: from the client to the target, and back. */
#define RDP_CLIP_UP 0
#define RDP_CLIP_DOWN 1

/* PDU types (msgType) */
#define RDP_CB_MONITOR_READY 0x0001
#define RDP_CB_FORMAT_LIST 0x0002
#define RDP_CB_FORMAT_LIST_RESPONSE 0x0003
#define RDP_CB_FORMAT_DATA_REQUEST 0x0004
#define RDP_CB_FORMAT_DATA_RESPONSE 0x0005
#define RDP_CB_TEMP_DIRECTORY 0x0006
#define RDP_CB_CLIP_CAPS 0x0007
#define RDP_CB_FILECONTENTS_REQUEST 0x0008
#define RDP_CB_FILECONTENTS_RESPONSE 0x0009
#define RDP_CB_LOCK_CLIPDATA 0x000A
#define RDP_CB_UNLOCK_CLIPDATA 0x000B

/* msgFlags */
#define RDP_CB_RESPONSE_OK 0x0001
#define RDP_CB_RESPONSE_FAIL 0x0002
#define RDP_CB_ASCII_NAMES 0x0004

/* dwFlags of a File Contents Request */
#define RDP_CB_FILECONTENTS_SIZE 0x1
#define RDP_CB_FILECONTENTS_RANGE 0x2

/* generalFlags of the General Capability Set */
#define RDP_CB_USE_LONG_FORMAT_NAMES 0x02
#define RDP_CB_STREAM_FILECLIP_ENABLED 0x04
#define RDP_CB_FILECLIP_NO_FILE_PATHS 0x08
#define RDP_CB_CAN_LOCK_CLIPDATA 0x10
#define RDP_CB_HUGE_FILE_SUPPORT_ENABLED 0x20

/* Standard formats */
#define RDP_CF_TEXT 1
#define RDP_CF_OEMTEXT 7
#define RDP_CF_UNICODETEXT 13
#define RDP_CF_HDROP 15

/* One session's filter state (plain data, no ownership). */
struct rdp_cliprdr {
    bool files;        /* files may cross */
    bool caps_seen[2]; /* a Capabilities PDU came from this side */
    uint32_t caps_flags[2];
    /* the formats each side announced last, as forwarded */
    uint32_t fmt[2][RDP_CLIP_FORMATS_MAX];
    size_t nfmt[2];
    /* the format each side asked the other for, awaiting the answer */
    bool asking[2];
    uint32_t asked[2];
    /* files on: the ID of FileGroupDescriptorW in each side's last list
     * (0: none), the files in the last one it sent since that list, and
     * which list that is (a count of the side's Format Lists) */
    uint32_t fgd[2];
    uint32_t nfiles[2];
    uint32_t gen[2];
    /* a side's file lists kept by the other side's Lock PDUs: the lock's
     * clipDataId, the list it keeps, its files (as they come: a lock
     * may come before the file list is asked for) */
    struct {
        uint32_t id, gen, nfiles;
    } lock[2][RDP_CLIP_LOCKS_MAX];
    size_t nlock[2];
    /* the File Contents Requests each side sent, awaiting the answer:
     * the stream ID and the bytes asked for */
    struct {
        uint32_t stream, want;
    } pend[2][RDP_CLIP_PENDING_MAX];
    size_t npend[2];
};

void rdp_cliprdr_init(struct rdp_cliprdr *c, bool files);

/*
 * One channel message of len bytes from direction dir (RDP_CLIP_UP or
 * RDP_CLIP_DOWN). out (at least len bytes) receives what to forward,
 * *outlen its length: 0 when nothing is to be forwarded (r->refused
 * says why). ERR_OK; ERR_PROTO for a malformed PDU (*outlen 0, nothing
 * forwarded, the state unchanged); ERR_INVALID for bad arguments.
 */
int rdp_cliprdr_filter(struct rdp_cliprdr *c, int dir, const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen,
                       struct rdp_filter_result *r);

/*
 * Clipboard text for a recording: at most cap - 1 bytes of UTF-8 in out
 * (NUL-terminated, cut on a character boundary), from n bytes of UTF-16LE
 * (utf16) or 8-bit text; stops at a NUL; invalid units and bytes above
 * 0x7f in 8-bit text become '?'. Returns the length written.
 */
size_t rdp_cliprdr_text(const uint8_t *in, size_t n, bool utf16, char *out,
                        size_t cap);

#endif
