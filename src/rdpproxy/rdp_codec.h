/*
 * The bitmap codec IDs of surface commands, from the target's leg to the
 * client's ([MS-RDPBCGR] 2.2.7.2.10, 2.2.9.2.1.1, 2.2.9.2.1.2.1).
 *
 * A codec's ID in a surface command (TS_BITMAP_DATA_EX.codecID) is not
 * fixed by the protocol: each client numbers the codecs it announces in
 * its Bitmap Codecs capability set (one byte each, 0 meaning "not
 * encoded"), and the server uses that client's numbers. The proxy has
 * two: the back leg, a FreeRDP 2 client, announces FreeRDP's constant
 * IDs to the target (RDP_CODEC_ID_NSCODEC 1, RDP_CODEC_ID_REMOTEFX 3);
 * the real client announced its own (FreeRDP-based clients the same,
 * mstsc and others need not). So each surface command the target sends
 * is translated from the back leg's ID to the client's ID for the same
 * codec, and one whose codec the client did not announce (or the back
 * leg did not, or that no codec has: a hostile target's) is not sent to
 * the client at all.
 *
 * The client's numbering is untrusted too: an ID of 0 or one shared by
 * two codecs cannot be told apart from "not encoded" or from the other
 * codec, so such a codec counts as not announced (rdp_codec_usable),
 * and the back leg does not offer it to the target.
 *
 * Plain data, no FreeRDP; unit-tested (test_rdp_codec).
 */
#ifndef PORTCULLIS_RDP_CODEC_H
#define PORTCULLIS_RDP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The codecs a surface command may carry through the proxy (the back
 * leg offers no others: JPEG and RemoteFX's image mode are off). */
enum rdp_codec {
    RDP_CODEC_NSC, /* NSCodec [MS-RDPNSC] */
    RDP_CODEC_RFX, /* RemoteFX [MS-RDPRFX] */
    RDP_CODEC_N
};

/* "not encoded" in every client's numbering */
#define RDP_CODEC_ID_PLAIN 0

/* One side's announced codecs: on[c], then under ID id[c]. */
struct rdp_codec_set {
    bool on[RDP_CODEC_N];
    uint32_t id[RDP_CODEC_N]; /* FreeRDP keeps them as UINT32 */
};

/* What crosses: back leg ID -> client ID, or refused. */
struct rdp_codec_map {
    bool surface;          /* the client takes surface commands at all */
    int16_t to_front[256]; /* the client's ID, -1: refused */
};

/*
 * The codecs of the client's set *in that it can be sent: on, with an ID
 * of 1-255 no other codec of its shares. *out is in with the others
 * off.
 */
void rdp_codec_usable(const struct rdp_codec_set *in,
                      struct rdp_codec_set *out);

/*
 * The map for a session: surface says the client announced surface
 * commands; back is what the back leg announced to the target, front
 * what the client announced (filtered by rdp_codec_usable here too). A
 * codec crosses when both announced it; "not encoded" (0) crosses as 0
 * whenever surface commands do.
 */
void rdp_codec_map_make(struct rdp_codec_map *m, bool surface,
                        const struct rdp_codec_set *back,
                        const struct rdp_codec_set *front);

/* A surface command's codec ID from the target: true and the client's ID
 * in *out when it may go to the client, false when it may not. */
bool rdp_codec_map_id(const struct rdp_codec_map *m, uint8_t back_id,
                      uint8_t *out);

/*
 * Whether a surface command's bitmap may be decoded (back_id in the back
 * leg's numbering, the rectangle [left, right) x [top, bottom), the
 * bitmap's bpp, width and height as the target sent them), by the
 * recorder's decoder (FreeRDP's gdi) and a FreeRDP client's alike:
 *
 * RDP_BITMAP_TOO_LARGE  an NSCodec bitmap (RDP_CODEC_BACK_NSC) wider than
 *     right - left or taller than bottom - top. FreeRDP 2.11's NSCodec
 *     decoder (nsc_process_message, from gdi_surface_bits) copies the
 *     whole decoded bitmap to the rectangle's top left corner into a
 *     buffer of the screen's size, so a larger one is written past the
 *     screen. (FreeRDP's parser has already checked the rectangle
 *     against the desktop and refused an empty bitmap; RemoteFX places
 *     and clips its tiles itself, "not encoded" is copied at the
 *     rectangle's size.)
 * RDP_BITMAP_DEPTH  a "not encoded" bitmap (RDP_CODEC_ID_PLAIN) of a
 *     depth other than 8, 15, 16, 24 or 32 bits per pixel: FreeRDP's
 *     decoder takes no other, counts such a bitmap as 0 bytes long and
 *     logs an error for each of its pixels (up to a screenful of lines
 *     for a command of a few bytes).
 *
 * Plain data: a pure function of the command's fields.
 */
enum rdp_bitmap_verdict {
    RDP_BITMAP_OK,
    RDP_BITMAP_TOO_LARGE,
    RDP_BITMAP_DEPTH,
    RDP_BITMAP_PLANAR_TOO_LARGE, /* rdp_codec_update_check */
};
enum rdp_bitmap_verdict rdp_codec_bitmap_check(uint8_t back_id, uint32_t bpp,
                                               uint32_t left, uint32_t top,
                                               uint32_t right, uint32_t bottom,
                                               uint32_t width, uint32_t height);

/*
 * Whether a rectangle of a Bitmap Update PDU ([MS-RDPBCGR] 2.2.9.1.1.3.1.2,
 * TS_BITMAP_DATA: the "classic" path, not a surface command) may be
 * decoded, by the recorder's gdi and a FreeRDP client's alike: bpp,
 * compressed, width and height as the target sent them; max_w x max_h
 * the desktop size the session's decoders were made for (the back leg's
 * and the client's codecs are sized once, at connect, to the size the
 * client asked for; a later desktop resize does not resize them).
 *
 * RDP_BITMAP_PLANAR_TOO_LARGE  a compressed bitmap of 32 bpp (planar,
 *     [MS-RDPEGDI] 2.2.2.5.1) wider than max_w or taller than max_h,
 *     each rounded up to a multiple of 4. FreeRDP 2.11's planar decoder
 *     (planar_decompress) decodes run-length planes into a scratch
 *     buffer of the desktop's size without checking the bitmap against
 *     it (upstream added that check in 2026, commits 1bab198 and
 *     a0be5cb): a 64x2048 bitmap of a few KB on a 1024x768 desktop
 *     writes 3.5 MB past the heap buffer.
 *
 * Interleaved RLE (compressed, under 32 bpp) and uncompressed bitmaps
 * are not refused here: FreeRDP 2.11 decodes them into a buffer of the
 * bitmap's own size with every write checked (ENSURE_CAPACITY,
 * buffer_within_range; the uncompressed length against the size), and
 * gdi clips the painting to the screen.
 *
 * Plain data: a pure function of its arguments.
 */
enum rdp_bitmap_verdict rdp_codec_update_check(uint32_t bpp, bool compressed,
                                               uint32_t width, uint32_t height,
                                               uint32_t max_w, uint32_t max_h);

/*
 * Drawing orders ([MS-RDPEGDI] 2.2.2.2.1): the back leg announces none
 * (no primary order, no bitmap, glyph, brush or offscreen cache:
 * rdp_codec_confirm_fix makes sure of it on the wire), so every order a
 * target sends is refused: secondary and alternate secondary ones by the
 * proxy before FreeRDP parses them (rdp_child.c: FreeRDP 2.11's client
 * takes a Cache Brush, Stream Bitmap and Desktop Composition order
 * whatever it announced), primary ones by FreeRDP itself, each kind
 * being off in the back leg's OrderSupport (rdp_codec_primary_refusal
 * finds which). The order's name for the log and the session's result:
 * "primary order MemBlt", "secondary order Cache Brush", "alternate
 * secondary order Create Offscreen Bitmap", "secondary order 0x2a" for
 * a type no order has. Written into out (n bytes, NUL-terminated, cut to
 * fit).
 *
 * Plain data: a pure function of its arguments.
 */
enum rdp_order_class {
    RDP_ORDER_PRIMARY,
    RDP_ORDER_SECONDARY,
    RDP_ORDER_ALTSEC,
};
void rdp_codec_order_name(enum rdp_order_class cls, uint8_t type, char *out,
                          size_t n);

/*
 * FreeRDP 2.11 refuses a primary order whose kind the back leg did not
 * announce before reading its fields (check_primary_order_supported) and
 * calls no hook of ours first: it only logs, on its logger
 * "com.freerdp.core.update" at WLOG_ERROR,
 *
 *     [0x0d] MemBlt - SERVER BUG: The support for this feature was not
 *     announced! Use /relax-order-checks to ignore
 *
 * and fails the update. rdp_child.c reads that line to name the order in
 * the session's result. True and the order's type in *type when text is
 * such a line for a primary order (its name FreeRDP's for that type);
 * false for any other line (a secondary or alternate secondary order's
 * never gets there: the proxy refused it earlier).
 *
 * Plain data: a pure function of the text.
 */
bool rdp_codec_primary_refusal(const char *text, uint8_t *type);

/*
 * FreeRDP 2.11's client refuses a Demand Active that carries a capability
 * set only a client sends (Bitmap Cache, Control, Window Activation,
 * Sound, Brush, Glyph Cache, Offscreen Bitmap Cache, Bitmap Cache Rev.
 * 2, DrawNineGrid Cache: rdp_read_capability_sets), and says so only on
 * its logger "com.freerdp.core.capabilities" at WLOG_ERROR:
 *
 *     capability Glyph Cache(16) not expected from server
 *
 * True and the set's type in *type when text is such a line; false for
 * any other. Its name for the session's result: rdp_codec_capset_name
 * ("Glyph Cache", "capability set 42" for one not named here; n bytes,
 * NUL-terminated, cut to fit).
 *
 * Plain data: pure functions of their arguments.
 */
bool rdp_codec_capset_refusal(const char *text, uint16_t *type);
void rdp_codec_capset_name(uint16_t type, char *out, size_t n);

/*
 * The back leg's Confirm Active PDU ([MS-RDPBCGR] 2.2.1.13.2), made
 * announce what the proxy takes and nothing the target's Demand Active
 * put into the back leg's settings. FreeRDP 2.11's client reads the
 * target's capability sets into the same settings it then writes its
 * Confirm Active from (rdp_recv_demand_active, then at once
 * rdp_send_confirm_active, no hook between), and some it always writes
 * from its own defaults, so a target's Bitmap Cache Host Support set
 * turned on persistent bitmap keys, its Surface Commands set surface
 * commands and frame markers whatever the client announced, and every
 * Confirm Active announced a five-cell bitmap cache. rdp_child.c calls
 * this on the PDU as FreeRDP hands it to its transport, before TLS.
 *
 * pdu: one whole slow-path PDU of len bytes as sent with TLS security
 * (TPKT, X.224 Data, MCS Send Data Request, Share Control Header: no
 * RDP security header), changed in place. Every field changed keeps its
 * size, so no length changes:
 *
 *   Order                orderSupport all 0 (no primary order),
 *                        orderSupportExFlags 0 (no bitmap cache v3, no
 *                        alternate secondary frame marker)
 *   Bitmap Cache (rev 1 and 2), its v3 codec ID
 *                        no cell, no persistent keys, no waiting list
 *   Brush                BRUSH_DEFAULT (no brush cache)
 *   Glyph Cache          no glyph or fragment cache, GLYPH_SUPPORT_NONE
 *   Offscreen Bitmap Cache, DrawNineGrid Cache, GDI+, Remote Programs,
 *   Window List, Desktop Composition, Frame Acknowledge
 *                        every field 0 (not supported)
 *   Surface Commands     Set and Stream Surface Bits when surface (the
 *                        client took surface commands), Frame Marker
 *                        when marker too; else no command
 *
 * Other sets (general, bitmap, pointer, input, codecs, ...) are left as
 * FreeRDP wrote them from the client's choices. *off (may be NULL) gets
 * the RDP_CAPS_* of the sets in which something was turned off.
 *
 * RDP_CONFIRM_NOT    not a Confirm Active PDU (nothing changed)
 * RDP_CONFIRM_FIXED  a Confirm Active, now announcing only the above
 * RDP_CONFIRM_BAD    a Confirm Active this cannot walk whole (a set
 *                    past its end, one too short for its fields):
 *                    possibly changed in part, not to be trusted
 *
 * Plain data: a pure function of its arguments.
 */
#define RDP_CAPS_ORDERS 0x0001
#define RDP_CAPS_BITMAP_CACHE 0x0002
#define RDP_CAPS_BRUSH 0x0004
#define RDP_CAPS_GLYPH 0x0008
#define RDP_CAPS_OFFSCREEN 0x0010
#define RDP_CAPS_NINEGRID 0x0020
#define RDP_CAPS_GDIPLUS 0x0040
#define RDP_CAPS_WINDOW 0x0080
#define RDP_CAPS_COMPDESK 0x0100
#define RDP_CAPS_SURFACE 0x0200
#define RDP_CAPS_FRAME_ACK 0x0400
enum rdp_confirm_verdict {
    RDP_CONFIRM_NOT,
    RDP_CONFIRM_FIXED,
    RDP_CONFIRM_BAD,
};
enum rdp_confirm_verdict rdp_codec_confirm_fix(uint8_t *pdu, size_t len,
                                               bool surface, bool marker,
                                               unsigned *off);

/* What *off of rdp_codec_confirm_fix names, for the log: "bitmap cache,
 * surface commands" (n bytes, NUL-terminated, cut to fit; "" for 0). */
void rdp_codec_caps_said(unsigned off, char *out, size_t n);

/*
 * Whether a pointer update from the target may go to the client, by what
 * the client announced ([MS-RDPBCGR] 2.2.7.1.5 Pointer Capability Set,
 * 2.2.7.2.7 Large Pointer Capability Set): the proxy forwards pointer
 * updates as they came (FreeRDP 2.11's parser has checked each mask's
 * length against the pointer's size and depth), but FreeRDP's client
 * side checks neither a cache index against the cache it announced nor
 * a Large Pointer Update against its announcing large pointers, and the
 * back leg's announcement need not be the client's.
 *
 * kind: RDP_POINTER_COLOR (Color Pointer and New Pointer Updates: the
 * index they are stored at, width and height), RDP_POINTER_LARGE, or
 * RDP_POINTER_CACHED (the index alone; width and height 0).
 * client_cache: the client's pointerCacheSize, 0 when it sent none or
 * announced no cache (FreeRDP's server keeps no other).
 * client_large: its largePointerSupportFlags (RDP_LARGE_POINTER_*), 0
 * when it sent no Large Pointer Capability Set.
 *
 * RDP_POINTER_INDEX      a cache index >= client_cache: with no cache
 *     (client_cache 0) every Color, New, Large and Cached Pointer Update,
 *     each of which names a cache entry ([MS-RDPBCGR] 2.2.9.1.1.4.4-7);
 *     System and Position updates name none and always pass
 * RDP_POINTER_TOO_LARGE  a Color or New Pointer wider or taller than 32
 *     (96 with RDP_LARGE_POINTER_96), a Large Pointer Update to a client
 *     without RDP_LARGE_POINTER_384 or over 384
 *
 * Plain data: a pure function of its arguments.
 */
#define RDP_LARGE_POINTER_96 0x0001
#define RDP_LARGE_POINTER_384 0x0002
enum rdp_pointer_kind {
    RDP_POINTER_COLOR,
    RDP_POINTER_LARGE,
    RDP_POINTER_CACHED,
};
enum rdp_pointer_verdict {
    RDP_POINTER_OK,
    RDP_POINTER_INDEX,
    RDP_POINTER_TOO_LARGE,
};
enum rdp_pointer_verdict rdp_codec_pointer_check(enum rdp_pointer_kind kind,
                                                 uint32_t index, uint32_t width,
                                                 uint32_t height,
                                                 uint32_t client_cache,
                                                 uint32_t client_large);

/*
 * rdesktop's MCS Erect Domain Request ([T.125] ErectDomainRequest, the
 * client's first PDU after the MCS Connect Response): rdesktop 1.9
 * (mcs.c, mcs_send_edrq) writes subHeight and subInterval as fixed
 * 16-bit numbers, 00 01 00 01, where PER wants each INTEGER as a length
 * and its bytes (01 01 01 01, as mstsc and FreeRDP write them). FreeRDP
 * 2.11's server reads 00 as an INTEGER of length 0, then 01 00, and
 * refuses the PDU for its one byte left over ("Received invalid TPKT
 * header length 12, 1 bytes too long!"): the connection ends. Given a
 * PDU as FreeRDP read it (whole, TPKT header first), this rewrites such
 * a request in place into the PER form of the same two numbers (which
 * FreeRDP's server reads and ignores). true: it was one and was
 * rewritten; false: any other PDU, untouched (a request already in PER
 * form included).
 *
 * Plain data: a pure function of its arguments.
 */
bool rdp_codec_edrq_fix(uint8_t *pdu, size_t len);

/* The back leg's own set: FreeRDP 2's client writes these constant IDs
 * (libfreerdp/core/capabilities.c, rdp_write_bitmap_codecs_capability_set:
 * its RDP_CODEC_ID_NSCODEC and RDP_CODEC_ID_REMOTEFX, which rdp_child.c
 * checks these against) for the codecs turned on. */
#define RDP_CODEC_BACK_NSC 0x01
#define RDP_CODEC_BACK_RFX 0x03
void rdp_codec_back_set(struct rdp_codec_set *s, bool nsc, bool rfx);

#endif
