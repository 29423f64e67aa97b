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
 * (no primary order, no bitmap, glyph, brush or offscreen cache), so
 * every secondary and alternate secondary order a target sends is
 * refused before FreeRDP parses it (rdp_child.c: FreeRDP 2.11's client
 * takes a Cache Brush, Stream Bitmap and Desktop Composition order
 * whatever it announced, and a target's Demand Active can switch on
 * glyph, offscreen, nine-grid, GDI+ and window orders in the back
 * leg's settings). The order's name for the log and the session's
 * result: "secondary order Cache Brush", "alternate secondary order
 * Create Offscreen Bitmap", "secondary order 0x2a" for a type no order
 * has. Written into out (n bytes, NUL-terminated, cut to fit).
 *
 * Plain data: a pure function of its arguments.
 */
void rdp_codec_order_name(bool altsec, uint8_t type, char *out, size_t n);

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
 * client_cache: the client's pointerCacheSize, 0 when it sent none
 * (FreeRDP's server keeps no other; then no index is checked).
 * client_large: its largePointerSupportFlags (RDP_LARGE_POINTER_*), 0
 * when it sent no Large Pointer Capability Set.
 *
 * RDP_POINTER_INDEX      a cache index >= client_cache
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

/* The back leg's own set: FreeRDP 2's client writes these constant IDs
 * (libfreerdp/core/capabilities.c, rdp_write_bitmap_codecs_capability_set:
 * its RDP_CODEC_ID_NSCODEC and RDP_CODEC_ID_REMOTEFX, which rdp_child.c
 * checks these against) for the codecs turned on. */
#define RDP_CODEC_BACK_NSC 0x01
#define RDP_CODEC_BACK_RFX 0x03
void rdp_codec_back_set(struct rdp_codec_set *s, bool nsc, bool rfx);

#endif
