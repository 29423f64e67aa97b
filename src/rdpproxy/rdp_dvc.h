/*
 * The dynamic virtual channel filter of the RDP proxy ([MS-RDPEDYC] on
 * the static virtual channel "drdynvc"), for display resize
 * ([MS-RDPEDISP]) and the graphics pipeline ([MS-RDPEGFX]). The proxy
 * relays drdynvc like the other static channels, and this filter lets
 * at most two dynamic channels through,
 * "Microsoft::Windows::RDS::DisplayControl" always and
 * "Microsoft::Windows::RDS::Graphics" when the session agreed on it
 * (rdp_dvc.gfx_allowed, set by the child: the client asked for GFX, the
 * back leg offered it to the target, the session is not recorded):
 *
 *  - the target's Create Request for either is passed (once at a time
 *    each, never under an ID another relayed channel holds); for any
 *    other name it is answered by the proxy with a failed Create
 *    Response (reply), and the client never hears of it;
 *  - the capabilities are clamped to version 2 both ways: no compressed
 *    data (version 3), no soft-sync; compressed and soft-sync PDUs, data
 *    on a channel not open, a Create Response or Close for a channel the
 *    client was not offered are dropped (but the client's Close that
 *    answers the target's Close of a relayed channel passes, and leaves
 *    a channel reopened under the same ID alone);
 *  - on DisplayControl, the target may send only its capabilities (the
 *    monitor count clamped to RDP_DVC_MONITORS_MAX), the client only a
 *    Monitor Layout, whole in one Data PDU, checked against the limits
 *    of [MS-RDPEDISP] 2.2.2.2.1 (1 to the target's monitor count, each
 *    200 to 8192 pixels wide, even, and high, one primary at 0,0, the
 *    desktop they make at most 8192 a side and 8192x4608 in all, what a
 *    recording takes; no overlap checks) with the informative fields the target
 *    is to ignore when out of range (physical size, orientation, scale
 *    factors) set to neutral values;
 *  - layouts are coalesced: at most one per RDP_DVC_LAYOUT_MS reaches
 *    the target (each costs it a mode switch and a reactivation); one
 *    that comes sooner is held, a later one replaces it, and the held one
 *    goes when its time comes (rdp_dvc_due);
 *  - on Graphics, PDUs pass as they come (nothing is held or joined):
 *    the filter keeps, per direction, how many bytes of a message in
 *    fragments (Data First, then Data) are still to come, and drops what
 *    does not fit that framing (a fragment past the announced length, a
 *    Data First before the last message ended, a message announced over
 *    RDP_DVC_GFX_MAX). The start of each message is checked: from the
 *    client, RDPGFX PDUs ([MS-RDPEGFX] 2.2.1.5) of the four kinds a
 *    client sends (caps advertise, frame acknowledge, QoE frame
 *    acknowledge, cache import offer), back to back and filling a whole
 *    message exactly (one PDU filling a message in fragments); from the
 *    target, the segmented-data wrapper (2.2.5: one segment, or several
 *    adding up exactly, each of the RDP8 bulk type) with an uncompressed
 *    size of at most RDP_DVC_GFX_MAX. The drawing itself is not
 *    decoded: the client decodes it, as from a direct connection.
 *
 * Pure like rdp_cliprdr.h: unit-tested (test_rdp_dvc), fuzzed
 * (fuzz_rdp_dvc).
 */
#ifndef PORTCULLIS_RDP_DVC_H
#define PORTCULLIS_RDP_DVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RDP_DVC_UP 0   /* from the client */
#define RDP_DVC_DOWN 1 /* from the target */

#define RDP_DVC_DISP_NAME "Microsoft::Windows::RDS::DisplayControl"
#define RDP_DVC_GFX_NAME "Microsoft::Windows::RDS::Graphics"
/* the largest graphics message (a Data First's length) and uncompressed
 * segmented data: a whole 8192x2048 screen of 32-bit pixels */
#define RDP_DVC_GFX_MAX (64u * 1024 * 1024)
#define RDP_DVC_MONITORS_MAX 16
#define RDP_DVC_LAYOUT_MS 1000
/* the largest layout PDU: header, id, 16 monitors */
#define RDP_DVC_HELD_MAX (1 + 4 + 16 + RDP_DVC_MONITORS_MAX * 40)

/* [MS-RDPEDYC] 2.2 commands */
#define RDP_DVC_CREATE 0x01
#define RDP_DVC_DATA_FIRST 0x02
#define RDP_DVC_DATA 0x03
#define RDP_DVC_CLOSE 0x04
#define RDP_DVC_CAPS 0x05
/* [MS-RDPEDISP] 2.2.1.1 */
#define RDP_DISP_MONITOR_LAYOUT 0x02
#define RDP_DISP_CAPS 0x05
/* [MS-RDPEGFX] 2.2.1.5: the PDUs a client sends, and the caps confirm */
#define RDP_GFX_FRAME_ACK 0x000d
#define RDP_GFX_CACHE_IMPORT_OFFER 0x0010
#define RDP_GFX_CAPS_ADVERTISE 0x0012
#define RDP_GFX_CAPS_CONFIRM 0x0013
#define RDP_GFX_QOE_FRAME_ACK 0x0016

/* the relayed dynamic channels (struct rdp_dvc.ch) */
#define RDP_DVC_DISP 0
#define RDP_DVC_GFX 1
#define RDP_DVC_CHANS 2

enum rdp_dvc_state { RDP_DVC_NONE, RDP_DVC_PENDING, RDP_DVC_OPEN };

struct rdp_dvc_chan {
    enum rdp_dvc_state state;
    uint32_t id; /* while not RDP_DVC_NONE: no other channel's */
    /* the target closed it (closing_id): the client's close that answers
     * it is the old channel's, whatever opened since under that ID
     * ([MS-RDPEDYC] 3.3.5.2) */
    bool closing;
    uint32_t closing_id;
    /* bytes of a message in fragments still to come, per direction
     * (RDP_DVC_UP, RDP_DVC_DOWN); 0: none under way (Graphics only) */
    uint32_t left[2];
};

struct rdp_dvc {
    struct rdp_dvc_chan ch[RDP_DVC_CHANS];
    /* the Graphics channel may open (the session agreed on GFX) */
    bool gfx_allowed;
    uint32_t max_monitors; /* the target's, clamped; 0: no caps yet */
    int64_t last_ms;       /* a layout last forwarded; -1: never */
    uint8_t held[RDP_DVC_HELD_MAX];
    size_t held_len; /* a layout waiting for its turn; 0: none */
};

struct rdp_dvc_result {
    const char *refused; /* non-NULL: dropped, why (for the log) */
    int chan;            /* the relayed channel concerned, -1: none */
    bool opened;         /* a Create Response opened chan */
    /* Graphics: the first RDPGFX PDU of a message when readable (always
     * from the client; from the target only uncompressed), 0: none; a
     * caps confirm's version */
    uint16_t gfx_cmd;
    uint32_t gfx_version, gfx_flags;
    uint32_t gfx_acks; /* frame acknowledgements in a client message */
    char name[64];     /* a refused channel's name, printable */
    uint8_t reply[16]; /* to send back to the sender (a refusal) */
    size_t reply_len;
    uint32_t width, height, monitors; /* a layout forwarded or held */
    bool held;                        /* a layout held for later */
};

void rdp_dvc_init(struct rdp_dvc *d);

/*
 * One whole drdynvc message from dir, at now_ms (monotonic): out (at
 * least len bytes) receives what to forward, *outlen its length (0:
 * nothing). r->reply_len > 0: bytes to send back the way the message
 * came. ERR_OK; ERR_PROTO for a malformed PDU (nothing forwarded, no
 * reply, the state unchanged); ERR_INVALID for bad arguments.
 */
int rdp_dvc_filter(struct rdp_dvc *d, int dir, const uint8_t *in, size_t len,
                   int64_t now_ms, uint8_t *out, size_t *outlen,
                   struct rdp_dvc_result *r);

/* A held layout whose time has come: copied to out (RDP_DVC_HELD_MAX
 * bytes), its length returned; 0: none. */
size_t rdp_dvc_due(struct rdp_dvc *d, int64_t now_ms, uint8_t *out);

/* Milliseconds until a held layout is due (0: now); -1: none held. */
int rdp_dvc_wait_ms(const struct rdp_dvc *d, int64_t now_ms);

#endif
