/*
 * One RDP session (rdp_child.h): two FreeRDP legs in one sandboxed
 * process, joined the way a relay joins two sockets, one thread, one
 * wait on both legs' event handles.
 *
 *   front  freerdp_peer on the client's socket: TLS with the node's
 *          certificate, then NLA (CredSSP/NTLM). NTLM needs a key made
 *          from the password, which only the monitor can make (the NT
 *          hash is sealed in the vault): ComputeNtlmHash asks it
 *          (MP_RDP_NTLM). After NLA, Logon sees the cleartext password,
 *          which the monitor checks against the argon2id hash like an
 *          SSH password (MP_AUTH_PASSWORD): that is the authentication.
 *   back   a FreeRDP client on the stream the monitor connected
 *          (MP_CONNECT, through the route module: direct, agent: or
 *          peer:), handed over as "|fd" (FreeRDP takes a host name of
 *          that form as an open socket). Its TLS certificate is pinned
 *          by the monitor (MP_HOSTKEY, trust on first use); only then do
 *          the vaulted login and password come (MP_CREDENTIALS).
 *
 * The back leg starts as soon as the front's Logon accepted the user,
 * on a thread of its own, so that its set-up (authorize, connect, TLS,
 * NLA, licensing) runs beside the front's (MCS, licensing,
 * capabilities) rather than after it: it takes the client's size,
 * colour depth and channels once the front has them (its Client Core
 * Data and channel joins), and waits before its own capability exchange
 * for the client's codecs (the front's activation), where the main
 * thread joins it. The back leg asks the target for what the client
 * agreed to, so graphics pass through without being decoded (bitmap
 * updates, surface bits, pointer, and the graphics pipeline's channel
 * when the client asked for it and the session is not recorded).
 * Orders, bitmap caches, glyph caches and the virtual channels the
 * profile refuses are switched off on the back leg, so the target sends
 * nothing the front has not agreed to. Input goes the other way
 * unchanged.
 *
 * A refused login ends the connection at once: the client is closed
 * first, and only then is the failure reported (it counts in the lockout
 * like a wrong SSH password, with the monitor's failure delay, which the
 * client no longer waits for).
 */
#include "rdpproxy/rdp_child.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <freerdp/channels/channels.h>
#include <freerdp/channels/wtsvc.h>
#include <freerdp/codec/color.h>
#include <freerdp/codecs.h>
#include <freerdp/error.h>
#include <freerdp/event.h>
#include <freerdp/freerdp.h>
#include <freerdp/gdi/gdi.h>
#include <freerdp/input.h>
#include <freerdp/peer.h>
#include <freerdp/pointer.h>
#include <freerdp/settings.h>
#include <freerdp/update.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <winpr/ssl.h>
#include <winpr/synch.h>
#include <winpr/wlog.h>

#include "auth/nthash.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "login/login.h"
#include "policy/policy.h"
#include "rdpproxy/rdp_cliprdr.h"
#include "rdpproxy/rdp_codec.h"
#include "rdpproxy/rdp_dvc.h"
#include "rdpproxy/rdp_rdpdr.h"
#include "rdpproxy/rdp_text.h"
#include "rdpproxy/rdp_vc.h"
#include "record/rdprec.h"
#include "record/record.h"
#include "sshproxy/mproto.h"
#include "sshproxy/sandbox.h"
#include "store/store.h"

#define RDPC_HANDLES 64
#define RDPC_PASSWORD_MAX 1024
#define RDPC_FP_MAX 64
/* Recording: changed areas are written at most this often, a whole
 * screen (a keyframe, where the player can start) this often while
 * anything changes, and the file is written out at least every second. */
#define RDPC_REC_RECT_MS 100
#define RDPC_REC_KEY_MS 10000
#define RDPC_REC_FLUSH_MS 1000
/* kept below the size limit for the END record */
#define RDPC_REC_RESERVE 2048
/* Static virtual channels relayed (cliprdr, rdpsnd, rdpdr, drdynvc); their
 * messages are reassembled under rdp_vc.h's limits. */
#define RDPC_VC_MAX 4
#define RDPC_VC_DRDYNVC 3 /* its index in rdpc_vc_table */
_Static_assert(RDP_CODEC_BACK_NSC == RDP_CODEC_ID_NSCODEC &&
                   RDP_CODEC_BACK_RFX == RDP_CODEC_ID_REMOTEFX,
               "rdp_codec.h's back leg IDs are FreeRDP's client's");
_Static_assert(RDP_VC_FIRST == CHANNEL_FLAG_FIRST &&
                   RDP_VC_LAST == CHANNEL_FLAG_LAST,
               "rdp_vc.h's chunk flags are FreeRDP's");
/* refusals on drdynvc logged per session: a client or target that sends
 * nothing else cannot fill the log */
#define RDPC_DVC_TOLD 20
/* clipboard text kept in a recording, bytes of UTF-8 */
#define RDPC_REC_CLIP_MAX 4096

/*
 * The channel relay's log lines that the client (or a target the user
 * controls) can cause at will, one per PDU: each kind is said at once,
 * then at most once per RDPC_VLOG_MS with how many came meanwhile
 * (log.h, struct log_limit), and what is held back is said at the end.
 * Per filter (rdpc_filters): a malformed PDU, a refused one, items
 * stripped; then the reassembly's drops.
 */
#define RDPC_VLOG_MS 10000
enum rdpc_vlog_kind {
    RDPC_VLOG_MALFORMED,
    RDPC_VLOG_REFUSED,
    RDPC_VLOG_STRIPPED,
    RDPC_VLOG_PER_FILTER
};
#define RDPC_FILTERS 2
enum {
    RDPC_VLOG_TOO_BIG = RDPC_FILTERS * RDPC_VLOG_PER_FILTER,
    RDPC_VLOG_MISFIT,
    RDPC_VLOG_OVER_BUDGET,
    RDPC_VLOG_SURFACE, /* surface commands the client cannot take */
    RDPC_VLOG_N
};

/* A relayed static virtual channel: one the access profile allows, the
 * client joined and the target was offered. */
struct rdpc_vc {
    const char *name; /* "cliprdr", "rdpsnd", "rdpdr", "drdynvc" */
    const char *what; /* for the log: "clipboard", ... */
    UINT16 front_id;  /* on the client's leg */
    UINT16 back_id;   /* on the target's; 0: the target did not join */
    UINT32 options;   /* as the client asked for it */
    /* a message being reassembled, per direction (RDP_CLIP_UP: from the
     * client), charged to struct rdpc.vc_budget */
    struct rdp_vc_buf buf[2];
};

/* How far the front leg is, as the back leg's start-up thread waits for
 * it (struct rdpc.gate). */
enum rdpc_gate {
    RDPC_GATE_NONE,
    RDPC_GATE_MCS,    /* the client's MCS Connect Initial: size, depth
                         (Client Core Data), the channels it asks for */
    RDPC_GATE_ACTIVE, /* the client is active: its codecs are known */
};

struct rdpc {
    const struct rdp_child_args *a;
    int mon;         /* monitor socket */
    struct buf *msg; /* requests and replies */
    freerdp_peer *peer;
    freerdp *back;
    int back_fd; /* the target's stream, -1 until connected */
    char login[RDP_TEXT_MAX + 1];
    char user[STORE_NAME_MAX + 1];  /* Portcullis user, after authorize */
    char asset[STORE_NAME_MAX + 1]; /* asset name, after authorize */
    char row[STORE_ID_MAX + 1];     /* report row, after authorize */
    bool ntlm_given;                /* the monitor handed an NTLM key */
    bool ntlm_refused; /* ...or refused, and WinPR got a key that fails */
    /* the client chose TLS without NLA ([rdp] tls_logins): its user name
     * and password come in the Client Info PDU, checked at PostConnect */
    bool tls_login;
    bool stack_wiped; /* rdpc_stack_wipe ran, after the login */
    bool logon_seen;  /* NLA completed: Logon was called */
    bool authed;      /* the monitor accepted the login */
    bool back_up;     /* the back leg is connected */
    bool hostkey_ok, creds_set;
    bool told; /* a Set Error Info PDU went to the client */
    /* NLA succeeded but the monitor refused the login (TOTP missing or
     * wrong, ...): the connection goes on to activation only to tell the
     * client so, and never further */
    bool tell_login;
    char why[600]; /* why the session ends, for the report */
    /* the recording (docs/recordings.md), when the profile says record:
     * the back leg also decodes into FreeRDP's gdi framebuffer, and the
     * changed areas of that are written as they come */
    uint8_t rec_flags;          /* authorize reply: bit 0 record, 1 input */
    struct record *rec;         /* the file the monitor created */
    struct rdprec_writer *recw; /* NULL until started */
    uint64_t rec_max;           /* the file's size limit */
    bool rec_stop;              /* the recording failed: end the session */
    pBitmapUpdate gdi_bitmap;   /* gdi's own handlers, called after ours */
    pPalette gdi_palette;
    pSurfaceBits gdi_surface_bits;
    pSurfaceFrameMarker gdi_frame_marker;
    bool dirty;                  /* [dx0, dx1) x [dy0, dy1) changed */
    UINT32 dx0, dy0, dx1, dy1;   /* since the last RECT */
    bool changed;                /* anything since the last FRAME */
    int64_t last_rect, last_key; /* monotonic ms */
    int64_t last_flush;
    UINT16 mouse_x, mouse_y;
    /* virtual channels: what the profile allows (authorize reply,
     * POLICY_RDP_*), the channels relayed, the clipboard's filter */
    uint8_t chans;
    struct rdpc_vc vc[RDPC_VC_MAX];
    size_t nvc;
    struct rdp_cliprdr clip;
    struct rdp_rdpdr dr;
    struct rdp_dvc dvc; /* drdynvc: display resize, GFX (rdp_dvc.h) */
    unsigned dvc_told;  /* its refusals logged (RDPC_DVC_TOLD at most) */
    /* the graphics pipeline ([MS-RDPEGFX]): offered to the target (set,
     * with dvc.gfx_allowed, by the back leg's thread before its MCS
     * connect), and what crossed on its channel, for the log */
    bool gfx;
    bool gfx_open;
    uint32_t gfx_version; /* the target's caps confirm, when readable */
    uint64_t gfx_acks;    /* frame acknowledgements from the client */
    uint64_t gfx_bytes[2];
    /* the client is being reactivated at a new size (a desktop resize):
     * until it is active again, updates are not sent to it (it would
     * read them as a broken capability exchange); then the whole screen
     * is asked of the target again */
    bool resizing;
    struct rdp_vc_buf fout; /* the filters' output */
    /* what the channels' buffers hold, at most RDP_VC_BUDGET (rdp_vc.h) */
    struct rdp_vc_budget vc_budget;
    unsigned dropped_told; /* refused channels whose data was logged */
    /* what the relay drops, refuses and strips, logged at most once per
     * RDPC_VLOG_MS per kind (rdpc_vlog) */
    struct log_limit vlog[RDPC_VLOG_N];
    /*
     * The back leg's start-up runs on a thread of its own from the
     * front's Logon to the front's activation (rdpc_back_main), so that
     * the two connection set-ups overlap. The main thread only hands it
     * what the front learnt (f_*, under mu) and waits for it (joins) in
     * rdpc_activate, or stops it when the front ends first; the thread
     * alone touches s->back, s->msg, s->row, s->why and the recording
     * until it is joined.
     */
    pthread_t bthr;
    bool bthr_on;   /* started and not joined */
    pthread_t wthr; /* rdpc_warm_main, joined by the back leg's thread */
    bool wthr_on;
    /* rdpc_kick_main: wakes the back leg's thread out of FreeRDP's 100 ms
     * waits while it connects; started and joined by that thread */
    pthread_t kthr;
    bool kthr_on;
    pthread_t kick_to;  /* the back leg's thread */
    int kick_fd;        /* eventfd: the watcher looks again, or ends */
    bool kick_end;      /* set before kick_fd is written: it ends */
    bool kick_hold;     /* the thread waits for the front: no signal */
    unsigned kick_sent; /* the watcher's signals, read once it is joined */
    int kick_err;       /* pthread_kill's error that stopped it, or 0 */
    int64_t t0;         /* util_mono_ms() when the child began */
    bool edrq_watch;    /* rdpc_wlog_transport_need: the front's window */
    bool caps_watch;    /* and the back leg's */
    UINT32 check_ms;    /* the back leg's MaxTimeInCheckLoop after connecting */
    bool bok;           /* the thread's result: the back leg is connected */
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cv;
    enum rdpc_gate gate;
    bool abort;     /* the front ended: the thread gives up */
    int bfd;        /* the target's socket while connecting, -1 */
    freerdp *binst; /* s->back once made, for abort */
    UINT32 f_width, f_height, f_depth; /* at RDPC_GATE_MCS */
    BOOL f_gfx; /* the client can do the graphics pipeline (its early
                   capability flags) */
    bool f_chan[RDPC_VC_MAX]; /* asked for (rdpc_vc_table's order) */
    /* at RDPC_GATE_ACTIVE: the codecs the client announced usably
     * (rdp_codec_usable), offered to the target as the back leg's */
    BOOL f_rfx, f_nsc, f_surface;
    bool codecs_set; /* the back leg's codecs were set from f_* */
    /* surface commands from the target to the client: codec IDs from the
     * back leg's numbering to the client's (rdp_codec.h); made at the
     * front's activation (before the back leg's capability exchange)
     * and again at each reactivation, where the client may renumber */
    struct rdp_codec_map cmap;
    bool f_marker; /* the client takes surface frame markers */
    /* the client's pointer cache size (0: it sent none) and large pointer
     * flags (0: none announced), from its latest Confirm Active: pointer
     * updates beyond them are not sent (rdp_codec_pointer_check), and the
     * back leg announces the same to the target */
    uint32_t f_ptr_cache, f_ptr_large;
    /* the back leg's capability exchange: set (with __atomic, by the
     * thread that runs it) when it begins, cleared by rdpc_wlog_packet
     * once its Confirm Active announces only what the proxy takes; one
     * still set when the exchange ends ends the session */
    bool caps_pending;
};

/* One session per process: FreeRDP's callbacks find it here. */
static struct rdpc *rdpc_s;

static bool rdpc_back_size(struct rdpc *s, rdpSettings *bs);
static bool rdpc_vc_plan(struct rdpc *s, rdpSettings *bs);
static void rdpc_back_start(struct rdpc *s);
static void *rdpc_warm_main(void *arg);
static BOOL rdpc_dvc_deliver(struct rdpc *s, struct rdpc_vc *v, int dir,
                             const uint8_t *m, size_t len);
struct rdpc_filter;
static void rdpc_vlog(struct rdpc *s, const struct rdpc_filter *f, int kind,
                      const char *from, const char *detail, unsigned count);

/* --- the front hands the back leg's thread what it learnt --- */

/* The codecs the client announced in its Confirm Active (FreeRDP's
 * server keeps a codec on only when the client announced it, under the
 * ID the client gave it), those it can be sent (rdp_codec_usable). */
static void rdpc_front_codecs(const rdpSettings *fs, struct rdp_codec_set *u)
{
    struct rdp_codec_set in;

    memset(&in, 0, sizeof(in));
    in.on[RDP_CODEC_NSC] = fs->NSCodec ? true : false;
    in.id[RDP_CODEC_NSC] = fs->NSCodecId;
    in.on[RDP_CODEC_RFX] = fs->RemoteFxCodec ? true : false;
    in.id[RDP_CODEC_RFX] = fs->RemoteFxCodecId;
    rdp_codec_usable(&in, u);
}

/* For the log: how the client announced a codec. */
static void rdpc_codec_said(char *out, size_t n, BOOL announced, bool usable,
                            UINT32 id)
{
    if (!announced) {
        snprintf(out, n, "not announced");
    } else if (usable) {
        snprintf(out, n, "as ID %u", (unsigned)id);
    } else {
        snprintf(out, n, "under ID %u, unusable (0 or shared)", (unsigned)id);
    }
}

/* [MS-RDPBCGR] 2.2.1.13.1.1.1: CAPSTYPE_LARGE_POINTER (FreeRDP 2 does not
 * install its name) */
#define RDPC_CAPSET_POINTER 0x08
#define RDPC_CAPSET_LARGE_POINTER 0x1B

/*
 * The map of surface commands' codec IDs (rdp_codec.h) from what the
 * back leg announced to the target (f_nsc, f_rfx: set for its
 * capability exchange at the first activation, kept over reactivations)
 * and what the client announced in its latest Confirm Active.
 */
static void rdpc_codec_map(struct rdpc *s, const rdpSettings *fs)
{
    struct rdp_codec_set back, front;

    rdp_codec_back_set(&back, s->f_nsc, s->f_rfx);
    rdpc_front_codecs(fs, &front);
    rdp_codec_map_make(&s->cmap, fs->SurfaceCommandsEnabled ? true : false,
                       &back, &front);
    s->f_marker = fs->SurfaceCommandsEnabled && fs->SurfaceFrameMarkerEnabled;
    /* FreeRDP's server keeps the client's pointerCacheSize (its
     * colorPointerCacheSize not: 0 when the client sent none) and ANDs its
     * own large pointer flags with the client's, if the client sent
     * them; a client that sent no Pointer set has no cache either */
    s->f_ptr_cache = fs->ReceivedCapabilities != NULL &&
                             fs->ReceivedCapabilities[RDPC_CAPSET_POINTER]
                         ? fs->PointerCacheSize
                         : 0;
    s->f_ptr_large = fs->ReceivedCapabilities != NULL &&
                             fs->ReceivedCapabilities[RDPC_CAPSET_LARGE_POINTER]
                         ? fs->LargePointerFlag &
                               (RDP_LARGE_POINTER_96 | RDP_LARGE_POINTER_384)
                         : 0;
    if (fs->SurfaceCommandsEnabled) {
        char nsc[48], rfx[48];

        rdpc_codec_said(nsc, sizeof(nsc), fs->NSCodec, front.on[RDP_CODEC_NSC],
                        fs->NSCodecId);
        rdpc_codec_said(rfx, sizeof(rfx), fs->RemoteFxCodec,
                        front.on[RDP_CODEC_RFX], fs->RemoteFxCodecId);
        log_info("rdp %s: the client's surface codecs: NSCodec %s, "
                 "RemoteFX %s",
                 s->a->client_addr, nsc, rfx);
    }
}

/* The back leg's thread: waits until the front is at least at g. false:
 * the front ended (the thread gives up). */
static bool rdpc_gate_wait(struct rdpc *s, enum rdpc_gate g)
{
    bool ok;

    pthread_mutex_lock(&s->mu);
    while (s->gate < g && !s->abort) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    ok = !s->abort;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/*
 * The main thread, after each step of the front: once the client's MCS
 * Connect Initial is in (its Client Core Data and Client Network Data),
 * its size, colour depth and channels are copied for the back leg's MCS
 * connect; at activation (active true), its codecs for the back leg's
 * Confirm Active.
 */
static void rdpc_front_progress(struct rdpc *s, bool active)
{
    const rdpSettings *fs = s->peer->settings;
    enum rdpc_gate g = s->gate;

    if (!s->bthr_on) {
        return;
    }
    if (g < RDPC_GATE_MCS &&
        freerdp_get_state(s->peer->context) >= CONNECTION_STATE_MCS_CONNECT) {
        g = RDPC_GATE_MCS;
    }
    if (active) {
        g = RDPC_GATE_ACTIVE;
    }
    if (g == s->gate) {
        return;
    }
    log_debug("rdp %s: the front's %s, %lld ms after the connect",
              s->a->client_addr, active ? "activation" : "MCS connect",
              (long long)(util_mono_ms() - s->t0));
    pthread_mutex_lock(&s->mu);
    if (s->gate < RDPC_GATE_MCS) {
        /* the channels its Client Network Data asked for (the joins come
         * later, a round trip each: rdpc_activate relays only those the
         * client then joined) */
        static const char *const names[RDPC_VC_MAX] = {"cliprdr", "rdpsnd",
                                                       "rdpdr", "drdynvc"};
        size_t n = 0;
        char **asked = WTSGetAcceptedChannelNames(s->peer, &n);

        s->f_width = fs->DesktopWidth;
        s->f_height = fs->DesktopHeight;
        s->f_depth = fs->ColorDepth;
        s->f_gfx = fs->SupportGraphicsPipeline;
        for (size_t i = 0; i < RDPC_VC_MAX; i++) {
            s->f_chan[i] = false;
            for (size_t j = 0; asked != NULL && j < n; j++) {
                if (asked[j] != NULL &&
                    strncasecmp(asked[j], names[i], CHANNEL_NAME_LEN) == 0) {
                    s->f_chan[i] = true;
                }
            }
        }
        free(asked); /* the names are FreeRDP's */
    }
    if (g == RDPC_GATE_ACTIVE) {
        struct rdp_codec_set usable;

        rdpc_front_codecs(fs, &usable);
        s->f_rfx = usable.on[RDP_CODEC_RFX];
        s->f_nsc = usable.on[RDP_CODEC_NSC];
        s->f_surface = fs->SurfaceCommandsEnabled;
        rdpc_codec_map(s, fs);
    }
    s->gate = g;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* --- the monitor --- */

/* One request, one reply of type want (blocking: this process serves one
 * connection). *fd receives a passed descriptor when fd is not NULL. */
static int rdpc_call(struct rdpc *s, uint8_t type, uint8_t want, int *fd)
{
    uint8_t got = 0;
    int r;

    if ((r = mproto_send(s->mon, type, s->msg, -1, 0)) != ERR_OK) {
        return r;
    }
    if ((r = mproto_recv(s->mon, &got, s->msg, fd)) != ERR_OK) {
        return r;
    }
    return got == want ? ERR_OK : ERR_PROTO;
}

/* MP_AUTH_PASSWORD: verdict and reason (reason holds why on failure). */
static int rdpc_auth_password(struct rdpc *s, const char *password,
                              uint8_t *verdict, char *reason, size_t rlen)
{
    uint32_t delay = 0;

    *verdict = MP_AUTH_FAIL;
    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->login) != ERR_OK ||
        buf_put_cstring(s->msg, password) != ERR_OK ||
        rdpc_call(s, MP_AUTH_PASSWORD, MP_AUTH_REPLY, NULL) != ERR_OK ||
        buf_get_u8(s->msg, verdict) != ERR_OK ||
        buf_get_u32(s->msg, &delay) != ERR_OK ||
        buf_get_cstring_into(s->msg, reason, rlen) != ERR_OK) {
        buf_reset(s->msg);
        *verdict = MP_AUTH_FAIL;
        return ERR_PROTO;
    }
    buf_reset(s->msg);
    return ERR_OK;
}

/* The bytes the client leg carried: received from and acknowledged by
 * the client (the kernel counts them; nothing to add up here). */
static void rdpc_bytes(const struct rdpc *s, uint64_t *up, uint64_t *down)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    *up = 0;
    *down = 0;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(s->a->client_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        len >= offsetof(struct tcp_info, tcpi_bytes_received) + 8) {
        *up = ti.tcpi_bytes_received;
        *down = ti.tcpi_bytes_acked;
    }
}

static void rdpc_session_end(struct rdpc *s, const char *result,
                             uint64_t rec_size, const char *rec_sha)
{
    uint64_t up = 0, down = 0;
    char res[STORE_RESULT_MAX + 1];

    if (s->row[0] == '\0') {
        return;
    }
    util_strlcpy(res, result, sizeof(res));
    rdpc_bytes(s, &up, &down);
    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->row) != ERR_OK ||
        buf_put_u64(s->msg, up) != ERR_OK ||
        buf_put_u64(s->msg, down) != ERR_OK || buf_put_u32(s->msg, 0) ||
        buf_put_cstring(s->msg, res) != ERR_OK ||
        buf_put_u64(s->msg, rec_size) != ERR_OK ||
        buf_put_cstring(s->msg, rec_sha) != ERR_OK ||
        rdpc_call(s, MP_SESSION_END, MP_ACK, NULL) != ERR_OK) {
        log_warn("rdp %s: cannot close report row %s", s->a->client_addr,
                 s->row);
    }
    s->row[0] = '\0';
}

/* --- the recording --- */

/* A write failed or the size limit is reached: the session ends (it must
 * never run unrecorded), s->why says why. */
static void rdpc_rec_failed(struct rdpc *s, int e)
{
    if (s->rec_stop) {
        return;
    }
    s->rec_stop = true;
    if (e == ERR_TOO_LONG || record_limit_hit(s->rec)) {
        snprintf(s->why, sizeof(s->why),
                 "error: the recording reached its size limit (%llu MiB, "
                 "[record] rdp_max_mb)",
                 (unsigned long long)(s->rec_max / (1024 * 1024)));
    } else {
        snprintf(s->why, sizeof(s->why), "error: the recording failed (%s)",
                 err_str(e));
    }
    log_warn("rdp %s: %s", s->a->client_addr, s->why);
}

static rdpGdi *rdpc_gdi(const struct rdpc *s)
{
    return s->recw != NULL && s->back != NULL ? s->back->context->gdi : NULL;
}

/* Marks [x, x + w) x [y, y + h) as changed, clipped to the screen. */
static void rdpc_rec_dirty(struct rdpc *s, UINT32 x, UINT32 y, UINT32 w,
                           UINT32 h)
{
    rdpGdi *g = rdpc_gdi(s);
    UINT32 x1, y1;

    if (g == NULL || w == 0 || h == 0 || x >= (UINT32)g->width ||
        y >= (UINT32)g->height) {
        return;
    }
    x1 = w > (UINT32)g->width - x ? (UINT32)g->width : x + w;
    y1 = h > (UINT32)g->height - y ? (UINT32)g->height : y + h;
    if (!s->dirty) {
        s->dx0 = x;
        s->dy0 = y;
        s->dx1 = x1;
        s->dy1 = y1;
        s->dirty = true;
    } else {
        s->dx0 = x < s->dx0 ? x : s->dx0;
        s->dy0 = y < s->dy0 ? y : s->dy0;
        s->dx1 = x1 > s->dx1 ? x1 : s->dx1;
        s->dy1 = y1 > s->dy1 ? y1 : s->dy1;
    }
    s->changed = true;
}

static void rdpc_rec_all_dirty(struct rdpc *s)
{
    rdpGdi *g = rdpc_gdi(s);

    if (g != NULL) {
        rdpc_rec_dirty(s, 0, 0, (UINT32)g->width, (UINT32)g->height);
    }
}

/* The whole screen as a FRAME. */
static void rdpc_rec_key(struct rdpc *s)
{
    rdpGdi *g = rdpc_gdi(s);
    int e;

    if (g == NULL || s->rec_stop) {
        return;
    }
    e = rdprec_w_image(s->recw, true, 0, 0, (unsigned)g->width,
                       (unsigned)g->height, g->primary_buffer, g->stride);
    if (e != ERR_OK) {
        rdpc_rec_failed(s, e);
        return;
    }
    s->dirty = false;
    s->changed = false;
    s->last_key = s->last_rect = util_mono_ms();
}

/* Writes what changed when it is time to; called after every event and
 * on a timer. */
static void rdpc_rec_tick(struct rdpc *s)
{
    rdpGdi *g = rdpc_gdi(s);
    int64_t now = util_mono_ms();
    int e = ERR_OK;

    if (g == NULL || s->rec_stop) {
        return;
    }
    if (s->changed && now - s->last_key >= RDPC_REC_KEY_MS) {
        rdpc_rec_key(s);
    } else if (s->dirty && now - s->last_rect >= RDPC_REC_RECT_MS) {
        e = rdprec_w_image(s->recw, false, s->dx0, s->dy0, s->dx1 - s->dx0,
                           s->dy1 - s->dy0, g->primary_buffer, g->stride);
        s->dirty = false;
        s->last_rect = now;
    }
    if (e == ERR_OK && now - s->last_flush >= RDPC_REC_FLUSH_MS) {
        e = record_flush(s->rec);
        s->last_flush = now;
    }
    if (e != ERR_OK || record_failed(s->rec)) {
        rdpc_rec_failed(s, e != ERR_OK ? e : ERR_IO);
    }
}

/* Input, as metadata: the pointer always (where the user pointed), keys
 * only when the profile records input (they may be passwords). */
static void rdpc_rec_mouse(struct rdpc *s, UINT16 flags, UINT16 x, UINT16 y)
{
    int e;

    if (s->recw == NULL || s->rec_stop ||
        (flags == PTR_FLAGS_MOVE && x == s->mouse_x && y == s->mouse_y)) {
        return;
    }
    s->mouse_x = x;
    s->mouse_y = y;
    if ((e = rdprec_w_mouse(s->recw, flags, x, y)) != ERR_OK) {
        rdpc_rec_failed(s, e);
    }
}

static void rdpc_rec_keyev(struct rdpc *s, bool unicode, UINT16 flags,
                           UINT16 code)
{
    int e;

    if (s->recw == NULL || s->rec_stop || !(s->rec_flags & 2)) {
        return;
    }
    if ((e = rdprec_w_key(s->recw, unicode, flags, code)) != ERR_OK) {
        rdpc_rec_failed(s, e);
    }
}

/* Clipboard text that crossed, when the profile records input (like
 * keys: it may be a password), capped at RDPC_REC_CLIP_MAX bytes. */
static void rdpc_rec_clip(struct rdpc *s, int dir,
                          const struct rdp_filter_result *r)
{
    char text[RDPC_REC_CLIP_MAX + 1];
    size_t n;
    int e;

    if (s->recw == NULL || s->rec_stop || !(s->rec_flags & 2)) {
        return;
    }
    n = rdp_cliprdr_text(r->text, r->text_len, r->text_utf16, text,
                         sizeof(text));
    e = rdprec_w_clip(s->recw,
                      dir == RDP_CLIP_UP ? RDPREC_CLIP_TO_TARGET
                                         : RDPREC_CLIP_TO_CLIENT,
                      text, n);
    if (e != ERR_OK) {
        rdpc_rec_failed(s, e);
    }
}

/* The monitor creates the file (exclusively, below [record] dir); a
 * session that must be recorded and cannot be does not start. */
static bool rdpc_rec_open(struct rdpc *s)
{
    char msg[600] = "";
    uint8_t ok = 0;
    int fd = -1;

    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->row) != ERR_OK ||
        buf_put_u8(s->msg, 2) != ERR_OK ||
        rdpc_call(s, MP_RECORD_OPEN, MP_RECORD_OPEN_REPLY, &fd) != ERR_OK ||
        buf_get_u8(s->msg, &ok) != ERR_OK ||
        buf_get_cstring_into(s->msg, msg, sizeof(msg)) != ERR_OK) {
        snprintf(s->why, sizeof(s->why), "error: monitor");
        goto fail;
    }
    if (!ok || fd < 0 || buf_get_u64(s->msg, &s->rec_max) != ERR_OK ||
        buf_expect_end(s->msg) != ERR_OK || s->rec_max <= RDPC_REC_RESERVE) {
        snprintf(s->why, sizeof(s->why),
                 "error: this session must be recorded and the recording "
                 "cannot be created (%s)",
                 msg[0] ? msg : "no file");
        log_warn("rdp %s: %s", s->a->client_addr, s->why);
        goto fail;
    }
    if ((s->rec = record_new(fd)) == NULL) {
        snprintf(s->why, sizeof(s->why), "error: out of memory");
        goto fail;
    }
    fd = -1;
    record_set_limit(s->rec, s->rec_max - RDPC_REC_RESERVE);
    buf_reset(s->msg);
    return true;
fail:
    if (fd >= 0) {
        close(fd);
    }
    buf_reset(s->msg);
    return false;
}

/* After the back leg connected: FreeRDP's gdi decodes what the target
 * sends into a framebuffer (besides our forwarding), the recording
 * starts with that screen. gdi_init installs its own update handlers:
 * they are kept and ours put back, which call them after forwarding. */
static bool rdpc_rec_start(struct rdpc *s, freerdp *inst)
{
    rdpUpdate *u = inst->update;
    pBitmapUpdate fw_bitmap = u->BitmapUpdate;
    pPalette fw_palette = u->Palette;
    pSurfaceBits fw_surface_bits = u->SurfaceBits;
    pSurfaceFrameMarker fw_frame_marker = u->SurfaceFrameMarker;
    rdpGdi *g;
    int e;

    if (!gdi_init(inst, PIXEL_FORMAT_RGBX32)) {
        snprintf(s->why, sizeof(s->why),
                 "error: the recorder cannot decode the target's screen");
        return false;
    }
    s->gdi_bitmap = u->BitmapUpdate;
    s->gdi_palette = u->Palette;
    s->gdi_surface_bits = u->SurfaceBits;
    s->gdi_frame_marker = u->SurfaceFrameMarker;
    /* one gdi_init does not set (BitmapUpdate in some FreeRDP 2
     * versions) would otherwise call ourselves */
    s->gdi_bitmap = s->gdi_bitmap == fw_bitmap ? NULL : s->gdi_bitmap;
    s->gdi_palette = s->gdi_palette == fw_palette ? NULL : s->gdi_palette;
    s->gdi_surface_bits =
        s->gdi_surface_bits == fw_surface_bits ? NULL : s->gdi_surface_bits;
    s->gdi_frame_marker =
        s->gdi_frame_marker == fw_frame_marker ? NULL : s->gdi_frame_marker;
    u->BitmapUpdate = fw_bitmap;
    u->Palette = fw_palette;
    u->SurfaceBits = fw_surface_bits;
    u->SurfaceFrameMarker = fw_frame_marker;
    g = inst->context->gdi;
    if ((s->recw = rdprec_writer_new(s->rec)) == NULL) {
        snprintf(s->why, sizeof(s->why), "error: out of memory");
        return false;
    }
    e = rdprec_w_start(s->recw, (unsigned)g->width, (unsigned)g->height,
                       (uint64_t)util_now() * 1000);
    if (e != ERR_OK) {
        rdpc_rec_failed(s, e);
        return false;
    }
    rdpc_rec_key(s);
    s->last_flush = util_mono_ms();
    return !s->rec_stop;
}

/* The END record and the file closed: its size and SHA-256 for the
 * report row. */
static void rdpc_rec_close(struct rdpc *s, const char *why, uint64_t *size,
                           char sha[65])
{
    *size = 0;
    sha[0] = '\0';
    if (s->rec == NULL) {
        return;
    }
    if (s->recw != NULL) {
        if (!s->rec_stop) {
            rdpc_rec_tick(s);
            if (s->dirty || s->changed) {
                rdpc_rec_key(s);
            }
        }
        record_set_limit(s->rec, s->rec_max);
        (void)rdprec_w_end(s->recw, why);
    }
    if (record_close(s->rec, size, sha) != ERR_OK) {
        log_warn("rdp %s: the recording could not be completed",
                 s->a->client_addr);
    }
    s->rec = NULL;
    rdprec_writer_free(s->recw);
    s->recw = NULL;
}

/* --- identities from FreeRDP --- */

/* A user, domain or password as FreeRDP hands it: UTF-16 unless the
 * ANSI flag says UTF-8 bytes. */
static int rdpc_ident(const UINT16 *p, UINT32 n, UINT32 flags, char *out,
                      size_t cap)
{
    if (p == NULL || n == 0) {
        out[0] = '\0';
        return ERR_OK;
    }
    if (flags & SEC_WINNT_AUTH_IDENTITY_ANSI) {
        if ((size_t)n + 1 > cap || memchr(p, '\0', n) != NULL) {
            return ERR_INVALID;
        }
        memcpy(out, p, n);
        out[n] = '\0';
        return ERR_OK;
    }
    return rdp_utf16_to_utf8((const uint8_t *)p, n, out, cap);
}

/* --- the front leg's authentication --- */

/*
 * WinPR's NTLM server calls this for NTOWFv2 of the user and domain the
 * client named. The monitor hands it out only against the client's NTLMv2
 * response that it proves (the server challenge and the response go with
 * the question), so this child, compromised or not, never holds the key
 * of a user whose password its client does not know. Beware: WinPR 2 reads the
 * SECURITY_STATUS it returns as a truth value (non-zero: the hash was written),
 * the opposite of SEC_E_OK; hence the two names below.
 */
#define RDPC_NTLM_YES ((SECURITY_STATUS)1)
#define RDPC_NTLM_NO ((SECURITY_STATUS)0)

static SECURITY_STATUS rdpc_ntlm_hash(void *client,
                                      const SEC_WINNT_AUTH_IDENTITY *id,
                                      const SecBuffer *proof,
                                      const BYTE *randkey, const BYTE *mic,
                                      const SecBuffer *micvalue, BYTE *hash)
{
    struct rdpc *s = rdpc_s;
    char domain[LOGIN_DOMAIN_MAX + 1];
    const uint8_t *key = NULL, *resp = NULL;
    size_t keylen = 0, resplen = 0;
    uint8_t ok = 0;

    if (s == NULL || id == NULL || s->ntlm_given) {
        return RDPC_NTLM_NO;
    }
    /* the server challenge: the first 8 bytes of WinPR's proof value */
    if (proof == NULL || proof->pvBuffer == NULL ||
        proof->cbBuffer < NTHASH_CHALLENGE_LEN || micvalue == NULL ||
        micvalue->pvBuffer == NULL ||
        !nthash_ntlm_response(micvalue->pvBuffer, micvalue->cbBuffer, &resp,
                              &resplen) ||
        resplen > NTHASH_RESPONSE_MAX) {
        snprintf(s->why, sizeof(s->why), "denied: malformed NTLM response");
        return RDPC_NTLM_NO;
    }
    if (rdpc_ident(id->User, id->UserLength, id->Flags, s->login,
                   sizeof(s->login)) != ERR_OK ||
        rdpc_ident(id->Domain, id->DomainLength, id->Flags, domain,
                   sizeof(domain)) != ERR_OK) {
        snprintf(s->why, sizeof(s->why), "denied: malformed user name");
        return RDPC_NTLM_NO;
    }
    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->login) != ERR_OK ||
        buf_put_cstring(s->msg, domain) != ERR_OK ||
        buf_put_string(s->msg, proof->pvBuffer, NTHASH_CHALLENGE_LEN) !=
            ERR_OK ||
        buf_put_string(s->msg, resp, resplen) != ERR_OK ||
        rdpc_call(s, MP_RDP_NTLM, MP_RDP_NTLM_REPLY, NULL) != ERR_OK ||
        buf_get_u8(s->msg, &ok) != ERR_OK ||
        buf_get_cstring_into(s->msg, s->why + 8, sizeof(s->why) - 8) !=
            ERR_OK ||
        buf_get_string_ptr(s->msg, 16, &key, &keylen) != ERR_OK ||
        buf_expect_end(s->msg) != ERR_OK) {
        log_warn("rdp %s: no NTLM answer from the monitor (%s)",
                 s->a->client_addr, strerror(errno));
        snprintf(s->why, sizeof(s->why), "error: monitor");
        buf_reset(s->msg);
        return RDPC_NTLM_NO;
    }
    if (!ok || keylen != 16) {
        memcpy(s->why, "denied: ", 8);
        log_info("rdp %s: login refused: %s", s->a->client_addr, s->why + 8);
        buf_reset(s->msg);
        /* WinPR is given a key no password makes, so that NLA fails as
         * for a wrong password (the MIC or the public key's proof does
         * not match) and the client reports a logon failure once; a
         * refusal here instead makes xfreerdp connect again and again,
         * each attempt a counted failure. No warm-up starts. */
        randombytes_buf(hash, 16);
        s->ntlm_given = s->ntlm_refused = true;
        return RDPC_NTLM_YES;
    }
    memcpy(hash, key, 16);
    buf_reset(s->msg);
    s->why[0] = '\0';
    s->ntlm_given = true;
    /* A real user (the monitor had an NT hash for the name, and counts
     * this as a failed login until the password is checked): FreeRDP's
     * client set-up for the back leg starts now, beside NTLM's end and
     * the password check; not before, so that a connection with no
     * valid user name costs no more CPU than the handshake. A thread
     * failing to start costs only the time it would save. */
    s->wthr_on = pthread_create(&s->wthr, NULL, rdpc_warm_main, NULL) == 0;
    return RDPC_NTLM_YES;
}

/*
 * The password of s->login, checked by the monitor against the argon2id
 * hash (or the user's directory) like an SSH password. Accepted: the
 * back leg's set-up starts. Refused: the client is told at activation
 * (tell_login), where it can show it.
 */
static bool rdpc_password_login(struct rdpc *s, const char *password)
{
    char reason[300] = "";
    uint8_t verdict = MP_AUTH_FAIL;

    if (rdpc_auth_password(s, password, &verdict, reason, sizeof(reason)) !=
        ERR_OK) {
        snprintf(s->why, sizeof(s->why), "error: monitor");
        return false;
    }
    if (verdict == MP_AUTH_OK) {
        s->authed = true;
        alarm(0); /* the login grace time is over */
        rdpc_back_start(s);
        return true;
    }
    if (verdict == MP_AUTH_PARTIAL) {
        snprintf(s->why, sizeof(s->why),
                 "denied: TOTP required: put the code in the user name "
                 "(user?123456#asset)");
    } else {
        snprintf(s->why, sizeof(s->why), "denied: %s",
                 reason[0] ? reason : "authentication failed");
    }
    s->tell_login = true;
    return false;
}

static BOOL rdpc_logon(freerdp_peer *peer, SEC_WINNT_AUTH_IDENTITY *id,
                       BOOL automatic)
{
    struct rdpc *s = rdpc_s;
    const rdpSettings *fs = peer->settings;
    char login[RDP_TEXT_MAX + 1], password[RDPC_PASSWORD_MAX + 1];
    BOOL ok = FALSE;

    s->logon_seen = true;
    if (!automatic && !s->ntlm_given && s->a->tls_logins && fs->TlsSecurity &&
        !fs->NlaSecurity) {
        /* TLS without NLA, allowed: FreeRDP calls this right after the
         * negotiation, before the Client Info PDU brings the user name
         * and password; they are checked at PostConnect */
        s->tls_login = true;
        return TRUE;
    }
    if (s->ntlm_refused) {
        return FALSE; /* the monitor's refusal stands (s->why) */
    }
    if (id == NULL || !s->ntlm_given) {
        snprintf(s->why, sizeof(s->why),
                 "denied: NLA is required (the client did not use it)");
        return FALSE;
    }
    if (rdpc_ident(id->User, id->UserLength, id->Flags, login, sizeof(login)) !=
            ERR_OK ||
        rdpc_ident(id->Password, id->PasswordLength, id->Flags, password,
                   sizeof(password)) != ERR_OK ||
        strcmp(login, s->login) != 0) {
        snprintf(s->why, sizeof(s->why), "denied: malformed credentials");
    } else {
        ok = rdpc_password_login(s, password) ? TRUE : FALSE;
    }
    sodium_memzero(password, sizeof(password));
    /* FreeRDP's copy of the CredSSP password (the peer's identity) lives
     * as long as the peer: wiped now that it is checked */
    if (id->Password != NULL) {
        sodium_memzero(
            id->Password,
            (size_t)id->PasswordLength *
                (id->Flags & SEC_WINNT_AUTH_IDENTITY_ANSI ? 1 : sizeof(WCHAR)));
    }
    if (!ok) {
        log_info("rdp %s: login refused (%s)", s->a->client_addr, s->why);
    }
    return ok;
}

/*
 * The Client Info PDU's password, which FreeRDP keeps in the peer's
 * settings for the session's life: wiped once the login is settled,
 * after NLA too (clients send it there as well, unused).
 */
static void rdpc_wipe_password(rdpSettings *fs)
{
    char *pw = fs->Password;

    if (pw != NULL) {
        sodium_memzero(pw, strlen(pw));
    }
    (void)freerdp_settings_set_string(fs, FreeRDP_Password, NULL);
}

/*
 * A TLS login ([rdp] tls_logins): the user name and password of the
 * Client Info PDU, which FreeRDP put into the peer's settings. A client
 * that sent no password (one that relies on the server's logon screen,
 * which a proxy does not have) is told to save it or use NLA.
 */
static void rdpc_tls_logon(struct rdpc *s)
{
    rdpSettings *fs = s->peer->settings;
    const char *user = freerdp_settings_get_string(fs, FreeRDP_Username);
    char *pw = fs->Password;

    if (user == NULL || user[0] == '\0' || strlen(user) >= sizeof(s->login)) {
        snprintf(s->why, sizeof(s->why),
                 "denied: the client sent no user name or an invalid one");
        s->tell_login = true;
    } else if (pw == NULL || pw[0] == '\0') {
        snprintf(s->login, sizeof(s->login), "%s", user);
        snprintf(s->why, sizeof(s->why),
                 "denied: the client sent no password (TLS without NLA): "
                 "save the password in the client, or use NLA");
        s->tell_login = true;
    } else {
        snprintf(s->login, sizeof(s->login), "%s", user);
        (void)rdpc_password_login(s, pw);
    }
    rdpc_wipe_password(fs);
    if (s->authed) {
        /* the back leg starts late: the front is past its MCS step */
        rdpc_front_progress(s, false);
    } else {
        log_info("rdp %s: login refused (%s)", s->a->client_addr, s->why);
    }
}

static BOOL rdpc_post_connect(freerdp_peer *peer)
{
    struct rdpc *s = rdpc_s;

    if (!s->authed && s->tls_login && !s->tell_login) {
        rdpc_tls_logon(s);
    }
    rdpc_wipe_password(peer->settings);
    if (!s->authed) {
        if (s->why[0] == '\0') {
            snprintf(s->why, sizeof(s->why), "denied: not authenticated");
        }
        /* A refused login after NLA goes on to activation, where the
         * client is told (rdpc_activate); FreeRDP calls Logon, then this,
         * whatever Logon answered. */
        return s->tell_login && s->logon_seen ? TRUE : FALSE;
    }
    return TRUE;
}

/* --- the back leg --- */

/* "SHA256:" and the unpadded base64 of the certificate's SHA-256, as
 * OpenSSH prints key fingerprints (the same column in the store). */
static int rdpc_cert_fp(const BYTE *pem, size_t len, char *out, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int r = ERR_CRYPTO;

    if (x != NULL && X509_digest(x, EVP_sha256(), md, &mdlen) == 1 &&
        mdlen == 32 && cap >= 8 + sodium_base64_ENCODED_LEN(32, 1)) {
        memcpy(out, "SHA256:", 8);
        sodium_bin2base64(out + 7, cap - 7, md, mdlen,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
        r = ERR_OK;
    }
    X509_free(x);
    BIO_free(bio);
    return r;
}

/* The target's certificate: pinned by the monitor; only then the vaulted
 * login, set for the NLA or TLS logon that follows the handshake. */
static int rdpc_back_verify(freerdp *inst, const BYTE *data, size_t length,
                            const char *hostname, UINT16 port, DWORD flags)
{
    struct rdpc *s = rdpc_s;
    char fp[RDPC_FP_MAX + 1], user[256], udom[256], domain[256];
    char msg[600] = "";
    char *login = NULL, *password = NULL, *key = NULL;
    rdpSettings *bs = inst->settings;
    uint8_t ok = 0;
    int result = 0;

    if (rdpc_cert_fp(data, length, fp, sizeof(fp)) != ERR_OK) {
        snprintf(s->why, sizeof(s->why),
                 "error: the target's certificate cannot be read");
        return 0;
    }
    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->row) != ERR_OK ||
        buf_put_cstring(s->msg, fp) != ERR_OK ||
        rdpc_call(s, MP_HOSTKEY, MP_HOSTKEY_REPLY, NULL) != ERR_OK ||
        buf_get_u8(s->msg, &ok) != ERR_OK ||
        buf_get_cstring_into(s->msg, msg, sizeof(msg)) != ERR_OK) {
        snprintf(s->why, sizeof(s->why), "error: monitor");
        return 0;
    }
    if (!ok) {
        snprintf(s->why, sizeof(s->why), "denied: %s", msg);
        log_warn("rdp %s: %s", s->a->client_addr, msg);
        return 0;
    }
    s->hostkey_ok = true;
    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->row) != ERR_OK ||
        rdpc_call(s, MP_CREDENTIALS, MP_CREDENTIALS_REPLY, NULL) != ERR_OK ||
        buf_get_u8(s->msg, &ok) != ERR_OK || !ok ||
        buf_get_cstring(s->msg, 1024, &login) != ERR_OK ||
        buf_get_cstring(s->msg, RDPC_PASSWORD_MAX, &password) != ERR_OK ||
        buf_get_cstring(s->msg, 65536, &key) != ERR_OK ||
        buf_expect_end(s->msg) != ERR_OK ||
        rdp_split_login(login, udom, sizeof(udom), domain, sizeof(domain)) !=
            ERR_OK) {
        snprintf(s->why, sizeof(s->why),
                 "error: the asset's vaulted login is not usable");
        goto out;
    }
    snprintf(user, sizeof(user), "%s", udom);
    if (!freerdp_settings_set_string(bs, FreeRDP_Username, user) ||
        !freerdp_settings_set_string(bs, FreeRDP_Password, password) ||
        !freerdp_settings_set_string(bs, FreeRDP_Domain,
                                     domain[0] ? domain : NULL)) {
        snprintf(s->why, sizeof(s->why), "error: out of memory");
        goto out;
    }
    s->creds_set = true;
    /* The Client Core Data and Client Network Data go to the target
     * after NLA: they must be the client's (its size, colour depth and
     * the channels it joined and the profile allows). The front has
     * them long before this in practice (one round trip after its
     * Logon, against the target's TLS handshake here); wait if not. */
    if (!rdpc_gate_wait(s, RDPC_GATE_MCS)) {
        goto out;
    }
    if (!rdpc_back_size(s, bs) || !rdpc_vc_plan(s, bs)) {
        snprintf(s->why, sizeof(s->why), "error: out of memory");
        goto out;
    }
    result = 1;
out:
    if (password != NULL) {
        sodium_memzero(password, strlen(password));
    }
    if (key != NULL) {
        sodium_memzero(key, strlen(key));
    }
    free(login);
    free(password);
    free(key);
    buf_reset(s->msg);
    return result;
}

/* FreeRDP asks for credentials it was not given: only ever after the
 * certificate check gave them, else refused. */
static BOOL rdpc_back_authenticate(freerdp *inst, char **user, char **password,
                                   char **domain)
{
    return rdpc_s->creds_set ? TRUE : FALSE;
}

/* Graphics from the target, to the client unchanged. */
static rdpContext *rdpc_front(void)
{
    return rdpc_s->peer->context;
}

/* Updates are held from the client while it is reactivated at a new
 * size (struct rdpc.resizing); the recording's gdi still gets them. */
static bool rdpc_front_held(void)
{
    return rdpc_s->resizing;
}

static BOOL rdpc_fw_begin_paint(rdpContext *c)
{
    rdpContext *f = rdpc_front();
    return rdpc_front_held() || f->update->BeginPaint(f);
}

static BOOL rdpc_fw_end_paint(rdpContext *c)
{
    rdpContext *f = rdpc_front();
    return rdpc_front_held() || f->update->EndPaint(f);
}

/* When recording, each graphics update is also drawn by gdi (after it
 * went to the client) and its area marked as changed. */
static BOOL rdpc_fw_bitmap_ok(struct rdpc *s, const BITMAP_UPDATE *b);

static BOOL rdpc_fw_bitmap(rdpContext *c, const BITMAP_UPDATE *b)
{
    struct rdpc *s = rdpc_s;
    rdpContext *f = rdpc_front();

    if (!rdpc_fw_bitmap_ok(s, b)) {
        return TRUE;
    }
    if (!rdpc_front_held() && !f->update->BitmapUpdate(f, b)) {
        return FALSE;
    }
    if (rdpc_gdi(s) == NULL || s->gdi_bitmap == NULL) {
        return TRUE;
    }
    for (UINT32 i = 0; i < b->number; i++) {
        const BITMAP_DATA *r = &b->rectangles[i];
        UINT32 w =
            r->destRight >= r->destLeft ? r->destRight - r->destLeft + 1 : 0;
        UINT32 h =
            r->destBottom >= r->destTop ? r->destBottom - r->destTop + 1 : 0;

        rdpc_rec_dirty(s, r->destLeft, r->destTop, w > r->width ? w : r->width,
                       h > r->height ? h : r->height);
    }
    return s->gdi_bitmap(c, b);
}

static BOOL rdpc_fw_palette(rdpContext *c, const PALETTE_UPDATE *p)
{
    struct rdpc *s = rdpc_s;
    rdpContext *f = rdpc_front();

    if (!rdpc_front_held() && !f->update->Palette(f, p)) {
        return FALSE;
    }
    if (rdpc_gdi(s) == NULL || s->gdi_palette == NULL) {
        return TRUE;
    }
    rdpc_rec_all_dirty(s);
    return s->gdi_palette(c, p);
}

/* Graphics from the target not sent to the client (what: "a surface
 * command", "a bitmap update"), said (as other refusals, rate-limited)
 * with why. */
static void rdpc_gfx_refused(struct rdpc *s, const char *what, const char *fmt,
                             ...) __attribute__((format(printf, 3, 4)));
static void rdpc_gfx_refused(struct rdpc *s, const char *what, const char *fmt,
                             ...)
{
    char why[120], line[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line),
             "%s from the target not sent to the client (%s)", what, why);
    rdpc_vlog(s, NULL, RDPC_VLOG_SURFACE, NULL, line, 0);
}

/*
 * Whether a Bitmap Update may go to the client and the recorder's gdi:
 * not when one of its rectangles is one FreeRDP's decoders cannot take
 * safely (a planar bitmap larger than the desktop the decoders were made
 * for, written past their scratch buffer: rdp_codec_update_check). The
 * whole update goes nowhere then, logged (rate-limited): a target that
 * sends one is hostile, and the next update or a refresh redraws.
 */
static BOOL rdpc_fw_bitmap_ok(struct rdpc *s, const BITMAP_UPDATE *b)
{
    for (UINT32 i = 0; i < b->number; i++) {
        const BITMAP_DATA *r = &b->rectangles[i];

        if (rdp_codec_update_check(
                r->bitsPerPixel, r->compressed ? true : false, r->width,
                r->height, s->f_width, s->f_height) != RDP_BITMAP_OK) {
            rdpc_gfx_refused(s, "a bitmap update",
                             "a planar bitmap of %ux%u for a desktop of %ux%u",
                             (unsigned)r->width, (unsigned)r->height,
                             (unsigned)s->f_width, (unsigned)s->f_height);
            return FALSE;
        }
    }
    return TRUE;
}

/*
 * A surface command goes to the client with its codec ID in the client's
 * numbering (rdp_codec.h); one the client cannot take (surface commands
 * or the codec not announced by it, or by the back leg: a target that
 * sends what it was not offered) is not sent, and logged (rate-limited:
 * a target can send thousands a second). The session goes on, the
 * recording too: its gdi decodes in the back leg's numbering, the
 * command as the target sent it. A bitmap FreeRDP's decoders cannot take
 * safely (an NSCodec bitmap larger than its rectangle, written past the
 * screen; a depth no decoder takes, logged pixel by pixel) goes to
 * neither (rdp_codec_bitmap_check).
 */
static BOOL rdpc_fw_surface_bits(rdpContext *c, const SURFACE_BITS_COMMAND *sb)
{
    struct rdpc *s = rdpc_s;
    rdpContext *f = rdpc_front();
    SURFACE_BITS_COMMAND out;
    uint8_t id = 0;
    UINT32 w, h;

    if (sb->bmp.codecID > UINT8_MAX ||
        !rdp_codec_map_id(&s->cmap, (uint8_t)sb->bmp.codecID, &id)) {
        char line[160];

        snprintf(line, sizeof(line),
                 "a surface command with codec ID %u from the target not "
                 "sent to the client (%s)",
                 (unsigned)sb->bmp.codecID,
                 s->cmap.surface ? "a codec the client was not offered"
                                 : "the client takes no surface commands");
        rdpc_vlog(s, NULL, RDPC_VLOG_SURFACE, NULL, line, 0);
        return TRUE;
    }
    switch (rdp_codec_bitmap_check(
        (uint8_t)sb->bmp.codecID, sb->bmp.bpp, sb->destLeft, sb->destTop,
        sb->destRight, sb->destBottom, sb->bmp.width, sb->bmp.height)) {
    case RDP_BITMAP_OK:
        break;
    case RDP_BITMAP_TOO_LARGE:
        rdpc_gfx_refused(s, "a surface command",
                         "an NSCodec bitmap of %ux%u for a rectangle "
                         "of %ux%u",
                         (unsigned)sb->bmp.width, (unsigned)sb->bmp.height,
                         (unsigned)(sb->destRight - sb->destLeft),
                         (unsigned)(sb->destBottom - sb->destTop));
        return TRUE;
    case RDP_BITMAP_DEPTH:
        rdpc_gfx_refused(s, "a surface command",
                         "a bitmap of %u bits per pixel, a depth no "
                         "decoder takes",
                         (unsigned)sb->bmp.bpp);
        return TRUE;
    case RDP_BITMAP_PLANAR_TOO_LARGE: /* Bitmap Updates' only */
        rdpc_gfx_refused(s, "a surface command", "a bitmap no decoder takes");
        return TRUE;
    }
    out = *sb;
    out.bmp.codecID = id;
    if (!rdpc_front_held() && !f->update->SurfaceBits(f, &out)) {
        return FALSE;
    }
    if (rdpc_gdi(s) == NULL || s->gdi_surface_bits == NULL) {
        return TRUE;
    }
    w = sb->destRight > sb->destLeft ? sb->destRight - sb->destLeft : 0;
    h = sb->destBottom > sb->destTop ? sb->destBottom - sb->destTop : 0;
    rdpc_rec_dirty(s, sb->destLeft, sb->destTop,
                   w > sb->bmp.width ? w : sb->bmp.width,
                   h > sb->bmp.height ? h : sb->bmp.height);
    return s->gdi_surface_bits(c, sb);
}

/* A frame marker goes to a client that announced them (surface commands
 * with SURFCMDS_FRAME_MARKER), as [MS-RDPBCGR] 2.2.7.2.9 allows. */
static BOOL rdpc_fw_frame_marker(rdpContext *c, const SURFACE_FRAME_MARKER *m)
{
    struct rdpc *s = rdpc_s;
    rdpContext *f = rdpc_front();

    if (!rdpc_front_held() && s->f_marker &&
        !f->update->SurfaceFrameMarker(f, m)) {
        return FALSE;
    }
    if (rdpc_gdi(s) == NULL || s->gdi_frame_marker == NULL) {
        return TRUE;
    }
    return s->gdi_frame_marker(c, m);
}

/* The target changed its desktop size: the client follows. */
static BOOL rdpc_fw_desktop_resize(rdpContext *c)
{
    struct rdpc *s = rdpc_s;
    rdpContext *f = rdpc_front();
    rdpSettings *fs = f->settings, *bs = c->settings;
    rdpGdi *g = rdpc_gdi(s);

    fs->DesktopWidth = bs->DesktopWidth;
    fs->DesktopHeight = bs->DesktopHeight;
    log_info("rdp %s: the target's desktop is %ux%u now: the client follows",
             s->a->client_addr, bs->DesktopWidth, bs->DesktopHeight);
    s->resizing = true;
    if (!f->update->DesktopResize(f)) {
        return FALSE;
    }
    if (g != NULL) {
        /* the new size as a FRAME at once */
        if (!gdi_resize(g, bs->DesktopWidth, bs->DesktopHeight)) {
            return FALSE;
        }
        rdpc_rec_key(s);
    }
    return TRUE;
}

static BOOL rdpc_fw_ptr_position(rdpContext *c,
                                 const POINTER_POSITION_UPDATE *p)
{
    rdpContext *f = rdpc_front();
    return rdpc_front_held() || f->update->pointer->PointerPosition(f, p);
}

static BOOL rdpc_fw_ptr_system(rdpContext *c, const POINTER_SYSTEM_UPDATE *p)
{
    rdpContext *f = rdpc_front();
    return rdpc_front_held() || f->update->pointer->PointerSystem(f, p);
}

/*
 * Whether a pointer update may go to the client: not one beyond what the
 * client announced (a cache index past its cache, a pointer larger than
 * it takes: rdp_codec_pointer_check), which FreeRDP's client side lets
 * through. It is logged as the other graphics refusals (rate-limited)
 * and the session goes on: the next pointer update replaces it.
 */
static bool rdpc_ptr_ok(enum rdp_pointer_kind kind, UINT32 index, UINT32 w,
                        UINT32 h)
{
    struct rdpc *s = rdpc_s;

    switch (rdp_codec_pointer_check(kind, index, w, h, s->f_ptr_cache,
                                    s->f_ptr_large)) {
    case RDP_POINTER_OK:
        return true;
    case RDP_POINTER_INDEX:
        if (s->f_ptr_cache == 0) {
            rdpc_gfx_refused(s, "a pointer update",
                             "cache index %u, the client announced no "
                             "pointer cache",
                             (unsigned)index);
        } else {
            rdpc_gfx_refused(s, "a pointer update",
                             "cache index %u, the client's cache has %u",
                             (unsigned)index, (unsigned)s->f_ptr_cache);
        }
        return false;
    case RDP_POINTER_TOO_LARGE:
        rdpc_gfx_refused(s, "a pointer update",
                         "a %s pointer of %ux%u, larger than the client takes",
                         kind == RDP_POINTER_LARGE ? "large" : "colour",
                         (unsigned)w, (unsigned)h);
        return false;
    }
    return false;
}

static BOOL rdpc_fw_ptr_color(rdpContext *c, const POINTER_COLOR_UPDATE *p)
{
    rdpContext *f = rdpc_front();

    if (!rdpc_ptr_ok(RDP_POINTER_COLOR, p->cacheIndex, p->width, p->height)) {
        return TRUE;
    }
    return rdpc_front_held() || f->update->pointer->PointerColor(f, p);
}

static BOOL rdpc_fw_ptr_new(rdpContext *c, const POINTER_NEW_UPDATE *p)
{
    rdpContext *f = rdpc_front();

    if (!rdpc_ptr_ok(RDP_POINTER_COLOR, p->colorPtrAttr.cacheIndex,
                     p->colorPtrAttr.width, p->colorPtrAttr.height)) {
        return TRUE;
    }
    return rdpc_front_held() || f->update->pointer->PointerNew(f, p);
}

static BOOL rdpc_fw_ptr_cached(rdpContext *c, const POINTER_CACHED_UPDATE *p)
{
    rdpContext *f = rdpc_front();

    if (!rdpc_ptr_ok(RDP_POINTER_CACHED, p->cacheIndex, 0, 0)) {
        return TRUE;
    }
    return rdpc_front_held() || f->update->pointer->PointerCached(f, p);
}

static BOOL rdpc_fw_ptr_large(rdpContext *c, const POINTER_LARGE_UPDATE *p)
{
    rdpContext *f = rdpc_front();

    if (!rdpc_ptr_ok(RDP_POINTER_LARGE, p->cacheIndex, p->width, p->height)) {
        return TRUE;
    }
    return rdpc_front_held() || f->update->pointer->PointerLarge(f, p);
}

/* Pointer updates go to the client as they came. */
static void rdpc_fw_pointer(rdpUpdate *u)
{
    u->pointer->PointerPosition = rdpc_fw_ptr_position;
    u->pointer->PointerSystem = rdpc_fw_ptr_system;
    u->pointer->PointerColor = rdpc_fw_ptr_color;
    u->pointer->PointerNew = rdpc_fw_ptr_new;
    u->pointer->PointerCached = rdpc_fw_ptr_cached;
    u->pointer->PointerLarge = rdpc_fw_ptr_large;
}

/*
 * Drawing orders: the back leg announces none (rdpc_back_settings: no
 * primary order, no bitmap, glyph, brush or offscreen cache; its Confirm
 * Active made sure of it on the wire: rdpc_wlog_packet), yet FreeRDP
 * 2.11's client parses some whatever it announced (a Cache Brush order,
 * Stream Bitmap and Desktop Composition ones: its
 * check_*_order_supported lets them through), and a recorded session's
 * gdi then fills its caches with them. Every secondary and alternate
 * secondary order is refused here, called by FreeRDP before it checks
 * or parses the order: the session ends (a refused order fails the
 * whole update; nothing between the orders lets one be skipped), said
 * in the log and the session's result. A primary order FreeRDP refuses
 * itself before parsing it (each kind being off in OrderSupport, which
 * a Demand Active can only clear), with no hook of ours first: its log
 * line names the order (rdpc_wlog_message), and it is said the same way.
 */
static BOOL rdpc_order_refused(enum rdp_order_class cls, UINT8 type)
{
    struct rdpc *s = rdpc_s;
    char name[64];

    rdp_codec_order_name(cls, type, name, sizeof(name));
    if (s->why[0] == '\0') {
        snprintf(s->why, sizeof(s->why),
                 "error: the target sent a drawing order the proxy did not "
                 "offer (%s)",
                 name);
    }
    log_warn("rdp %s: the target sent a drawing order the proxy did not "
             "offer (%s): the session ends",
             s->a->client_addr, name);
    return FALSE;
}

static BOOL rdpc_no_secondary(rdpContext *c, UINT16 len, UINT16 extra,
                              UINT8 type, const char *name)
{
    return rdpc_order_refused(RDP_ORDER_SECONDARY, type);
}

static BOOL rdpc_no_altsec(rdpContext *c, UINT8 type, const char *name)
{
    return rdpc_order_refused(RDP_ORDER_ALTSEC, type);
}

/*
 * Three of FreeRDP's loggers are listened to (rdpc_wlog_tap), each through
 * a WLog callback appender of its own; the others keep FreeRDP's console
 * appender.
 *
 * "com.freerdp.core.transport" at WLOG_TRACE: FreeRDP hands its
 * transport's logger every PDU it writes, whole and in its own send
 * buffer, just before TLS encrypts it (transport_write's WLog_Packet).
 * That is the one place between FreeRDP 2.11's reading the target's
 * Demand Active into the back leg's settings and the Confirm Active it
 * writes from them going out (rdp_client_connect_demand_active calls
 * one after the other, no callback between; docs/rdp.md, "What the
 * back leg announces"): rdpc_wlog_packet makes that Confirm Active
 * announce only what the proxy takes (rdp_codec_confirm_fix). Each
 * capability exchange of the back leg (rdpc_back_state) must see its
 * Confirm Active so fixed, or the session ends: if a FreeRDP build ever
 * stopped passing its PDUs here (or WLOG_FILTER lowered this logger),
 * the proxy refuses rather than announce what it does not take. The
 * front's PDUs come by too (one logger for every transport); a server
 * never sends a Confirm Active, so none of them is changed. The logger
 * is at WLOG_TRACE only from the back leg's CAPABILITIES_EXCHANGE to its
 * FINALIZATION (rdpc_back_state) and, with TLS logins, from the front's
 * start to its MCS Erect Domain Request (rdpc_edrq_watch, where the
 * front's inbound PDUs are looked at): WinPR spends 1.3-3 us on each PDU it
 * hands a callback appender, a tenth of the relay's own CPU per PDU if
 * it went on for the whole session. (A thread may read the level while
 * the other sets it: a word, read whole either way.)
 *
 * "com.freerdp.core.update" at its usual level: FreeRDP's refusal of a
 * primary order is only a line there (rdp_codec_primary_refusal); and
 * "com.freerdp.core.capabilities": its refusal of a Demand Active that
 * carries a set only a client sends (rdp_codec_capset_refusal).
 *
 * Their text lines go on to stderr as FreeRDP's console appender would
 * write them (from the level the root logger has), so the log reads as
 * before.
 */
#define RDPC_WLOG_TRANSPORT "com.freerdp.core.transport"
#define RDPC_WLOG_UPDATE "com.freerdp.core.update"
#define RDPC_WLOG_CAPS "com.freerdp.core.capabilities"
static DWORD rdpc_wlog_level = WLOG_WARN;
static wLog *rdpc_wlog_transport;

static BOOL rdpc_wlog_message(const wLogMessage *m)
{
    uint8_t type;
    uint16_t set;
    char name[64];

    if (m->Level >= rdpc_wlog_level && m->TextString != NULL) {
        fprintf(stderr, "%s%s\n", m->PrefixString ? m->PrefixString : "",
                m->TextString);
    }
    if (m->Level != WLOG_ERROR || rdpc_s == NULL) {
        return TRUE;
    }
    if (rdp_codec_primary_refusal(m->TextString, &type)) {
        (void)rdpc_order_refused(RDP_ORDER_PRIMARY, type);
    } else if (rdp_codec_capset_refusal(m->TextString, &set) &&
               rdpc_s->why[0] == '\0') {
        /* on the back leg's thread, in its connect: s->why is its own */
        rdp_codec_capset_name(set, name, sizeof(name));
        snprintf(rdpc_s->why, sizeof(rdpc_s->why),
                 "error: the target's Demand Active announced what only a "
                 "client announces (%s): the proxy's FreeRDP refused it",
                 name);
    }
    return TRUE;
}

/*
 * The transport logger is at WLOG_TRACE while either of its listeners
 * needs the PDUs: the front's until it is past rdesktop's Erect Domain
 * Request (edrq_watch, the main thread), the back leg's during its
 * capability exchange (caps_watch, its thread). With NLA the two
 * windows may overlap (the back leg connects beside the front), so each
 * sets its own flag and the level follows both, under s->mu.
 */
static void rdpc_wlog_transport_need(struct rdpc *s, bool *flag, bool on)
{
    pthread_mutex_lock(&s->mu);
    __atomic_store_n(flag, on, __ATOMIC_RELAXED);
    (void)WLog_SetLogLevel(rdpc_wlog_transport, s->edrq_watch || s->caps_watch
                                                    ? WLOG_TRACE
                                                    : rdpc_wlog_level);
    pthread_mutex_unlock(&s->mu);
}

static BOOL rdpc_wlog_packet(const wLogMessage *m)
{
    struct rdpc *s = rdpc_s;
    unsigned off = 0;
    char said[200];

    if (s == NULL || m->PacketData == NULL || m->PacketLength <= 0) {
        return TRUE;
    }
    if ((m->PacketFlags & WLOG_PACKET_INBOUND) != 0) {
        /* the front's PDUs, read whole and not yet parsed: rdesktop's
         * Erect Domain Request mended (rdpc_edrq_watch) */
        if (__atomic_load_n(&s->edrq_watch, __ATOMIC_RELAXED) &&
            rdp_codec_edrq_fix(m->PacketData, (size_t)m->PacketLength)) {
            log_info("rdp %s: the client's MCS Erect Domain Request "
                     "(rdesktop's, not in PER) rewritten in PER",
                     s->a->client_addr);
        }
        return TRUE;
    }
    if ((m->PacketFlags & WLOG_PACKET_OUTBOUND) == 0) {
        return TRUE;
    }
    switch (rdp_codec_confirm_fix(m->PacketData, (size_t)m->PacketLength,
                                  s->f_surface ? true : false, s->f_marker,
                                  &off)) {
    case RDP_CONFIRM_NOT:
        break;
    case RDP_CONFIRM_FIXED:
        __atomic_store_n(&s->caps_pending, false, __ATOMIC_RELEASE);
        if (off != 0) {
            rdp_codec_caps_said(off, said, sizeof(said));
            log_debug("rdp %s: the back leg's Confirm Active: turned off "
                      "what the proxy does not take (%s)",
                      s->a->client_addr, said);
        }
        break;
    case RDP_CONFIRM_BAD:
        log_warn("rdp %s: the back leg's Confirm Active could not be read "
                 "whole: the session ends",
                 s->a->client_addr);
        break;
    }
    return TRUE;
}

static void rdpc_wlog_tap(void)
{
    wLogCallbacks cb;
    const char *names[] = {RDPC_WLOG_TRANSPORT, RDPC_WLOG_UPDATE,
                           RDPC_WLOG_CAPS};

    memset(&cb, 0, sizeof(cb));
    cb.message = rdpc_wlog_message;
    cb.package = rdpc_wlog_packet;
    rdpc_wlog_level = WLog_GetLogLevel(WLog_GetRoot());
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        wLog *l = WLog_Get(names[i]);

        if (l == NULL || !WLog_SetLogAppenderType(l, WLOG_APPENDER_CALLBACK) ||
            !WLog_ConfigureAppender(WLog_GetLogAppender(l), "callbacks", &cb)) {
            /* the capability exchange then ends the session */
            log_warn("rdp: cannot listen to FreeRDP's logger %s", names[i]);
            continue;
        }
        /* no time of day in the prefix: one call per PDU */
        (void)WLog_Layout_SetPrefixFormat(l, WLog_GetLogLayout(l),
                                          "[%lv][%mn] - ");
        if (i == 0) {
            rdpc_wlog_transport = l;
        }
    }
}

/*
 * rdesktop (1.9) writes its MCS Erect Domain Request in a form FreeRDP
 * 2.11's server refuses (rdp_codec_edrq_fix). The front's PDUs pass the
 * transport logger too, whole and before FreeRDP parses them (its
 * transport_read_pdu hands each to WLog_Packet first), so with TLS
 * logins on (rdesktop does no NLA: docs/rdp.md, "rdesktop") that logger
 * is at WLOG_TRACE from the start of the connection until the front is
 * past that request, and rdpc_wlog_packet mends it there. A few PDUs
 * (the negotiation, TLS or NLA, the MCS Connect Initial) pass the
 * callback meanwhile; then the logger goes back to its level unless the
 * back leg's capability exchange needs it (rdpc_wlog_transport_need).
 */
static void rdpc_edrq_watch(struct rdpc *s, bool start)
{
    if (start) {
        if (s->a->tls_logins) {
            rdpc_wlog_transport_need(s, &s->edrq_watch, true);
        }
        return;
    }
    if (__atomic_load_n(&s->edrq_watch, __ATOMIC_RELAXED) &&
        freerdp_get_state(s->peer->context) >=
            CONNECTION_STATE_MCS_ERECT_DOMAIN) {
        rdpc_wlog_transport_need(s, &s->edrq_watch, false);
    }
}

static BOOL rdpc_back_pre_connect(freerdp *inst)
{
    rdpUpdate *u = inst->update;

    /* freerdp_connect sets FreeRDP's default primary orders (DstBlt,
     * PatBlt, ScrBlt, OpaqueRect, MultiOpaqueRect, LineTo, Polyline) just
     * before PreConnect, over rdpc_back_settings': the back leg announced
     * them to every target, and parsed them to no handler (the session
     * ended as if the target had). None, again. */
    memset(inst->settings->OrderSupport, 0, 32);

    u->secondary->CacheOrderInfo = rdpc_no_secondary;
    u->altsec->DrawOrderInfo = rdpc_no_altsec;

    u->BeginPaint = rdpc_fw_begin_paint;
    u->EndPaint = rdpc_fw_end_paint;
    u->BitmapUpdate = rdpc_fw_bitmap;
    u->Palette = rdpc_fw_palette;
    u->SurfaceBits = rdpc_fw_surface_bits;
    u->SurfaceFrameMarker = rdpc_fw_frame_marker;
    u->DesktopResize = rdpc_fw_desktop_resize;
    rdpc_fw_pointer(u);
    return TRUE;
}

static BOOL rdpc_back_post_connect(freerdp *inst)
{
    struct rdpc *s = rdpc_s;

    /* freerdp_connect puts its pointer cache's handlers in just before
     * PostConnect: they store the pointer in a cache this leg does not
     * have (no gdi), so the first pointer shape a target sent crashed
     * the child (xrdp's login screen, Windows at once). Ours again. */
    rdpc_fw_pointer(inst->update);
    if (!s->codecs_set) {
        /* the capability exchange went by without the client's codecs
         * (rdpc_back_state): the target may send what the client cannot
         * read */
        snprintf(s->why, sizeof(s->why),
                 "error: the target's capabilities were exchanged before "
                 "the client's were known");
        return FALSE;
    }
    if (s->rec != NULL && !rdpc_rec_start(s, inst)) {
        return FALSE;
    }
    return TRUE;
}

/*
 * The back leg asks the target for what the client agreed to, and for
 * nothing the relay would have to translate. Set in three steps, each
 * as soon as the front knows it: this before the back leg connects;
 * the client's size and colour depth (its Client Core Data) and
 * channels before the back leg's MCS connect (rdpc_back_size,
 * rdpc_vc_plan: from rdpc_back_verify); the client's codecs (its
 * Confirm Active) before the back leg's capability exchange
 * (rdpc_back_codecs: from rdpc_back_state).
 */
static bool rdpc_back_settings(struct rdpc *s, rdpSettings *bs)
{
    memset(bs->OrderSupport, 0, 32);
    return freerdp_settings_set_string(bs, FreeRDP_ServerHostname, "|") &&
           freerdp_settings_set_string(bs, FreeRDP_ConfigPath,
                                       s->a->config_path) &&
           freerdp_settings_set_uint32(bs, FreeRDP_ServerPort,
                                       (UINT32)s->back_fd) &&
           freerdp_settings_set_bool(bs, FreeRDP_ExternalCertificateManagement,
                                     TRUE) &&
           freerdp_settings_set_bool(bs, FreeRDP_RemoteFxCodec, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_NSCodec, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_JpegCodec, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_RemoteFxImageCodec, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_SurfaceCommandsEnabled,
                                     FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_FrameMarkerCommandEnabled,
                                     FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_SurfaceFrameMarkerEnabled,
                                     FALSE) &&
           freerdp_settings_set_uint32(bs, FreeRDP_FrameAcknowledge, 0) &&
           freerdp_settings_set_bool(bs, FreeRDP_SupportGraphicsPipeline,
                                     FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_BitmapCacheEnabled, FALSE) &&
           freerdp_settings_set_uint32(bs, FreeRDP_OffscreenSupportLevel, 0) &&
           freerdp_settings_set_uint32(bs, FreeRDP_GlyphSupportLevel,
                                       GLYPH_SUPPORT_NONE) &&
           /* BRUSH_DEFAULT ([MS-RDPBCGR] 2.2.7.1.7): no brush cache
            * (FreeRDP announces BRUSH_COLOR_FULL by default) */
           freerdp_settings_set_uint32(bs, FreeRDP_BrushSupportLevel, 0) &&
           freerdp_settings_set_bool(bs, FreeRDP_CompressionEnabled, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_AutoReconnectionEnabled,
                                     FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_SupportDynamicChannels,
                                     FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_DeviceRedirection, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_RedirectClipboard, FALSE) &&
           freerdp_settings_set_bool(bs, FreeRDP_NlaSecurity, TRUE) &&
           freerdp_settings_set_bool(bs, FreeRDP_TlsSecurity, TRUE) &&
           freerdp_settings_set_bool(bs, FreeRDP_RdpSecurity, FALSE);
}

/*
 * Copied from the front at RDPC_GATE_MCS (under s->mu, read here after
 * the gate opened: the main thread writes them no more). The graphics
 * pipeline is offered to the target when the client offered it (its
 * early capability flags), joins drdynvc (the pipeline's channel is a
 * dynamic one) and the session is not recorded: the recorder decodes
 * the classic updates with FreeRDP's gdi, not the pipeline (docs/rdp.md,
 * "Graphics pipeline"); a client told nothing of it draws those.
 */
static bool rdpc_back_size(struct rdpc *s, rdpSettings *bs)
{
    s->gfx = s->f_gfx && s->f_chan[RDPC_VC_DRDYNVC] && (s->rec_flags & 1) == 0;
    /* before the target can open the channel (the filter runs on this
     * thread until the join) */
    s->dvc.gfx_allowed = s->gfx;
    if (s->f_gfx) {
        log_info("rdp %s: graphics pipeline: %s", s->a->client_addr,
                 s->gfx ? "the client offers it: offered to the target"
                 : (s->rec_flags & 1) != 0
                     ? "not offered to the target: the session is recorded "
                       "(the client gets classic updates)"
                     : "not offered to the target: the client did not ask "
                       "for drdynvc");
    }
    return freerdp_settings_set_uint32(bs, FreeRDP_DesktopWidth, s->f_width) &&
           freerdp_settings_set_uint32(bs, FreeRDP_DesktopHeight,
                                       s->f_height) &&
           freerdp_settings_set_uint32(bs, FreeRDP_ColorDepth, s->f_depth) &&
           freerdp_settings_set_bool(bs, FreeRDP_SupportGraphicsPipeline,
                                     s->gfx ? TRUE : FALSE);
}

/* With the codecs, the client's pointer cache (none when it announced
 * none: a target told so sends no pointer that names a cache entry, and
 * any it sends is not passed on) and large pointers. */
static bool rdpc_back_codecs(struct rdpc *s, rdpSettings *bs)
{
    return freerdp_settings_set_uint32(bs, FreeRDP_PointerCacheSize,
                                       s->f_ptr_cache) &&
           freerdp_settings_set_uint32(bs, FreeRDP_LargePointerFlag,
                                       s->f_ptr_large) &&
           freerdp_settings_set_bool(bs, FreeRDP_RemoteFxCodec, s->f_rfx) &&
           freerdp_settings_set_bool(bs, FreeRDP_NSCodec, s->f_nsc) &&
           freerdp_settings_set_bool(bs, FreeRDP_SurfaceCommandsEnabled,
                                     s->f_surface);
}

/*
 * The back leg's connection state changes (FreeRDP's client raises
 * ConnectionStateChange at each). CAPABILITIES_EXCHANGE comes after
 * licensing (and after a Deactivate All), before the target's Demand
 * Active is read and our Confirm Active written from the settings: the
 * codecs must be the client's by then, so the thread waits here until
 * the front is active. FINALIZATION comes right after the Confirm
 * Active went out: it must have been made to announce only what the
 * proxy takes (rdpc_wlog_packet), or the session ends before any update
 * of the target's is read; and what the Demand Active put into the
 * settings is taken out again, so that FreeRDP's own checks of what the
 * target sends agree with what was announced.
 */
/*
 * FreeRDP 2.11's client connects in a loop that reads what has come
 * (rdp_check_fds) and then sleeps 100 ms (rdp_client_connect:
 * Sleep(100), WinPR's plain usleep): an answer of the target that comes
 * while the back leg's thread sleeps waits for the end of that sleep,
 * up to 100 ms per connection phase (MCS, licensing, Demand Active,
 * finalization). A signal cuts such a sleep short (nanosleep ends with
 * EINTR and is not restarted), so while the back leg connects a watcher
 * thread polls the target's socket and, when it is readable, signals
 * the back leg's thread (RDPC_KICK_SIG, a handler that does nothing; the
 * sandbox allows tgkill of this process with that signal only). The
 * thread then reads at once. Every other wait on that thread goes on
 * after the signal: FreeRDP's socket BIO and WinPR's waits poll again on
 * EINTR, the handler is SA_RESTART for reads and writes, and the
 * monitor's calls (mproto) retry. bench/README.md, "The back leg's
 * waits", has the figures.
 *
 * The socket stays readable until the back leg's thread has read it, so
 * after each signal the watcher looks again 1 ms later: drained, it
 * polls for the next answer; still readable, it signals again (the
 * signal came just before the sleep began, the thread was busy, or the
 * next answer came as soon as it had read: a watcher cannot tell, and a
 * back-off would delay quick round trips such as the channel joins),
 * every 1 ms, every 100 ms after 100 of them. While the thread waits
 * for the front's codecs (rdpc_kick_hold) it is not signalled. It runs
 * from the back leg's MCS Connect Initial to its activation, on the
 * back leg's thread's behalf only.
 */
#define RDPC_KICK_SIG SANDBOX_RDP_KICK_SIG
/* rdpc_back_state: how long one read of the back leg's PDUs may go on
 * while it connects (FreeRDP's MaxTimeInCheckLoop; its own 100 after) */
#define RDPC_CONNECT_CHECK_MS 10000

static void rdpc_on_kick(int sig)
{
    (void)sig; /* only to end the back leg's thread's sleep */
}

static bool rdpc_readable(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    return poll(&p, 1, ms) == 1;
}

static void *rdpc_kick_main(void *arg)
{
    struct rdpc *s = arg;
    struct pollfd p[2] = {{.fd = s->back_fd}, {.fd = s->kick_fd}};
    uint64_t v;
    unsigned streak = 0; /* signals since the socket was last drained */
    int n, next = -1;    /* ms to the next signal while unread; -1: none */
    bool held;

    p[1].events = POLLIN;
    for (;;) {
        held = __atomic_load_n(&s->kick_hold, __ATOMIC_ACQUIRE);
        p[0].events = next < 0 && !held ? POLLIN : 0;
        n = poll(p, 2, held ? -1 : next);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[1].revents != 0) {
            if (read(s->kick_fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
                break;
            }
            if (__atomic_load_n(&s->kick_end, __ATOMIC_ACQUIRE)) {
                break;
            }
            next = -1; /* held or released: look anew */
            streak = 0;
            continue;
        }
        if ((p[0].revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
            s->kick_err = pthread_kill(s->kick_to, RDPC_KICK_SIG);
            break; /* the back leg sees it when it reads */
        }
        if (held) {
            continue;
        }
        if (next >= 0 && !rdpc_readable(s->back_fd, 0)) {
            next = -1; /* read: wait for the next answer */
            streak = 0;
            continue;
        }
        if ((s->kick_err = pthread_kill(s->kick_to, RDPC_KICK_SIG)) != 0) {
            break; /* the sandbox refused it: FreeRDP's own pace */
        }
        s->kick_sent++;
        /* unread 1 ms after a signal: it came just before the sleep
         * began, or the thread was busy, or a new answer came as soon as
         * it had read (no way to tell): again every 1 ms, then every
         * 100 ms after 100 of them (FreeRDP's own pace, a thread busy
         * elsewhere) */
        next = ++streak < 100 ? 1 : 100;
    }
    return NULL;
}

/* The back leg's thread is about to wait on something of its own (the
 * front's codecs: hold true), or is back from it (false); signals in
 * between would only wake that wait. Once back, the watcher signals it
 * at once if an answer is waiting. */
static void rdpc_kick_hold(struct rdpc *s, bool hold)
{
    uint64_t one = 1;

    if (!s->kthr_on) {
        return;
    }
    __atomic_store_n(&s->kick_hold, hold, __ATOMIC_RELEASE);
    if (write(s->kick_fd, &one, sizeof(one)) != sizeof(one)) {
        log_debug("rdp %s: cannot prompt the back leg's watcher: %s",
                  s->a->client_addr, strerror(errno));
    }
}

/* On the back leg's thread, once its socket is set to non-blocking. */
static void rdpc_kick_start(struct rdpc *s)
{
    if (s->kthr_on || s->back_fd < 0) {
        return;
    }
    s->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->kick_fd < 0) {
        return; /* FreeRDP's own pace, as without the watcher */
    }
    s->kick_to = pthread_self();
    if (pthread_create(&s->kthr, NULL, rdpc_kick_main, s) != 0) {
        close(s->kick_fd);
        s->kick_fd = -1;
        return;
    }
    s->kthr_on = true;
}

/* On the back leg's thread: at its activation or when its connect ends. */
static void rdpc_kick_stop(struct rdpc *s)
{
    uint64_t one = 1;

    if (!s->kthr_on) {
        return;
    }
    __atomic_store_n(&s->kick_end, true, __ATOMIC_RELEASE);
    if (write(s->kick_fd, &one, sizeof(one)) != sizeof(one)) {
        /* a full counter still wakes it; anything else would leave it
         * polling: the child ends with the session either way */
        log_warn("rdp %s: cannot stop the back leg's watcher: %s",
                 s->a->client_addr, strerror(errno));
    }
    pthread_join(s->kthr, NULL);
    s->kthr_on = false;
    close(s->kick_fd);
    s->kick_fd = -1;
    if (s->kick_err != 0) {
        log_warn("rdp %s: the back leg's watcher could not signal its "
                 "thread (%s): it connected at FreeRDP's own pace",
                 s->a->client_addr, strerror(s->kick_err));
    } else {
        log_debug("rdp %s: the back leg's watcher woke its thread %u "
                  "time(s) while it connected",
                  s->a->client_addr, s->kick_sent);
    }
}

static void rdpc_back_state(void *ctx, ConnectionStateChangeEventArgs *e)
{
    struct rdpc *s = rdpc_s;
    rdpContext *c = ctx;
    rdpSettings *bs = c->settings;

    log_debug("rdp %s: the back leg's state %d, %lld ms after the connect",
              s->a->client_addr, e->state, (long long)(util_mono_ms() - s->t0));
    if (e->state == CONNECTION_STATE_MCS_CONNECT) {
        /* FreeRDP reads the PDUs that have come one after the other, for
         * MaxTimeInCheckLoop ms at most (100) from when it began; a
         * callback that waited longer (the capability exchange's wait
         * for the front's codecs) left the next PDU, read already and
         * held by TLS, for after a 100 ms sleep that no signal could
         * end (the socket has nothing more to read). While connecting,
         * the loop goes on until it has read all that came. */
        s->check_ms =
            freerdp_settings_get_uint32(bs, FreeRDP_MaxTimeInCheckLoop);
        (void)freerdp_settings_set_uint32(bs, FreeRDP_MaxTimeInCheckLoop,
                                          RDPC_CONNECT_CHECK_MS);
        rdpc_kick_start(s);
        return;
    }
    if (e->state == CONNECTION_STATE_ACTIVE) {
        rdpc_kick_stop(s);
        (void)freerdp_settings_set_uint32(bs, FreeRDP_MaxTimeInCheckLoop,
                                          s->check_ms);
        return;
    }
    if (e->state == CONNECTION_STATE_FINALIZATION) {
        rdpc_wlog_transport_need(s, &s->caps_watch, false);
        if (__atomic_load_n(&s->caps_pending, __ATOMIC_ACQUIRE)) {
            if (s->why[0] == '\0') {
                snprintf(s->why, sizeof(s->why),
                         "error: the proxy could not make sure of what it "
                         "announced to the target (its Confirm Active)");
            }
            log_warn("rdp %s: the back leg's Confirm Active was not checked "
                     "before it went out: the session ends",
                     s->a->client_addr);
            freerdp_abort_connect(c->instance);
            return;
        }
        memset(bs->OrderSupport, 0, 32);
        bs->GlyphSupportLevel = GLYPH_SUPPORT_NONE;
        bs->OffscreenSupportLevel = 0;
        bs->DrawNineGridEnabled = FALSE;
        bs->DrawGdiPlusEnabled = FALSE;
        bs->DrawGdiPlusCacheEnabled = FALSE;
        bs->RemoteWndSupportLevel = 0;
        bs->BitmapCachePersistEnabled = FALSE;
        return;
    }
    if (e->state != CONNECTION_STATE_CAPABILITIES_EXCHANGE) {
        return;
    }
    __atomic_store_n(&s->caps_pending, true, __ATOMIC_RELEASE);
    rdpc_wlog_transport_need(s, &s->caps_watch, true);
    if (s->codecs_set) {
        return;
    }
    rdpc_kick_hold(s, true);
    if (!rdpc_gate_wait(s, RDPC_GATE_ACTIVE)) {
        rdpc_kick_hold(s, false);
        freerdp_abort_connect(c->instance);
        return;
    }
    rdpc_kick_hold(s, false);
    if (!rdpc_back_codecs(s, c->settings)) {
        freerdp_abort_connect(c->instance);
        return;
    }
    s->codecs_set = true;
}

/* --- static virtual channels --- */

/*
 * The channels the proxy can relay and the profile switches that open
 * each (any of them). A channel the client joined and the profile
 * refuses is not offered to the target, and what the client sends on it
 * is dropped; one the client did not ask for is not offered either (nor
 * relayed if it asked and did not join). rdpdr
 * carries drives, printers, ports and smart cards in one channel, and
 * Windows plays audio only to a client that joined it: it is relayed
 * when drives, printers or audio are allowed, and its device filter
 * (rdp_rdpdr.h) lets only the allowed kinds of device cross.
 */
static const struct {
    const char *name;
    const char *what;
    unsigned any;
} rdpc_vc_table[RDPC_VC_MAX] = {
    {"cliprdr", "clipboard", POLICY_RDP_CLIPBOARD},
    {"rdpsnd", "audio", POLICY_RDP_AUDIO},
    {"rdpdr", "drive and printer redirection",
     POLICY_RDP_DRIVE | POLICY_RDP_PRINTER | POLICY_RDP_AUDIO},
    /* dynamic channels, of which only display control and graphics
     * cross (rdp_dvc.h): always, they carry no data of the user's */
    {"drdynvc", "display resize and graphics", 0},
};

/* The back leg's channel list: those the client asked for (as the
 * front saw them at RDPC_GATE_MCS) and the profile allows. Called before
 * the back leg's MCS connect; the front's IDs are taken at activation,
 * of the channels the client joined (rdpc_vc_joined). The options are
 * those FreeRDP's and Windows' clients ask for (the client's own are
 * known only once it joined): encrypted, compressible (the back leg
 * asks for no compression), initialized. */
static bool rdpc_vc_plan(struct rdpc *s, rdpSettings *bs)
{
    CHANNEL_DEF *d;
    struct rdpc_vc *v;

    rdp_cliprdr_init(&s->clip, (s->chans & POLICY_RDP_CLIP_FILES) != 0);
    rdp_rdpdr_init(&s->dr, (s->chans & POLICY_RDP_DRIVE) != 0,
                   (s->chans & POLICY_RDP_PRINTER) != 0);
    for (size_t i = 0; i < RDPC_VC_MAX; i++) {
        if (!s->f_chan[i]) {
            continue; /* the client did not ask for it */
        }
        if (rdpc_vc_table[i].any != 0 &&
            (s->chans & rdpc_vc_table[i].any) == 0) {
            log_info("rdp %s: %s: %s refused by the access profile (channel "
                     "%s not offered to the target)",
                     s->a->client_addr, s->user, rdpc_vc_table[i].what,
                     rdpc_vc_table[i].name);
            continue;
        }
        if (bs->ChannelDefArray == NULL ||
            bs->ChannelCount >= bs->ChannelDefArraySize) {
            return false;
        }
        d = &bs->ChannelDefArray[bs->ChannelCount++];
        memset(d, 0, sizeof(*d));
        util_strlcpy(d->name, rdpc_vc_table[i].name, sizeof(d->name));
        d->options = CHANNEL_OPTION_INITIALIZED | CHANNEL_OPTION_ENCRYPT_RDP |
                     CHANNEL_OPTION_COMPRESS_RDP;
        v = &s->vc[s->nvc++];
        v->name = rdpc_vc_table[i].name;
        v->what = rdpc_vc_table[i].what;
        v->front_id = 0; /* rdpc_vc_joined */
        v->options = d->options;
        log_info("rdp %s: %s: %s allowed (channel %s relayed%s%s%s)",
                 s->a->client_addr, s->user, v->what, v->name,
                 i == 0 && !s->clip.files ? ", files refused" : "",
                 i == 2 && !s->dr.drive ? ", drives refused" : "",
                 i == 2 && !s->dr.printer ? ", printers refused" : "");
    }
    return true;
}

/* At activation (the back leg's thread joined): the front's ID of each
 * relayed channel, which the client has joined by now; one it asked for
 * and did not join is not relayed. */
static void rdpc_vc_joined(struct rdpc *s)
{
    for (size_t i = 0; i < s->nvc; i++) {
        struct rdpc_vc *v = &s->vc[i];

        v->front_id = WTSChannelGetId(s->peer, v->name);
        if (v->front_id == 0) {
            log_info("rdp %s: channel %s not relayed: the client asked for "
                     "it and did not join it",
                     s->a->client_addr, v->name);
        } else {
            INT64 opt = WTSChannelGetOptions(s->peer, v->front_id);

            v->options = opt >= 0 ? (UINT32)opt : v->options;
        }
    }
}

static struct rdpc_vc *rdpc_vc_by_front(struct rdpc *s, UINT16 id)
{
    for (size_t i = 0; i < s->nvc; i++) {
        if (s->vc[i].front_id == id) {
            return &s->vc[i];
        }
    }
    return NULL;
}

/* The target's ID of a relayed channel, 0 if it did not join it. */
static UINT16 rdpc_vc_back_id(struct rdpc *s, struct rdpc_vc *v)
{
    if (v->back_id == 0 && s->back != NULL && s->back->context != NULL) {
        v->back_id = freerdp_channels_get_id_by_name(s->back, v->name);
        if (v->back_id == (UINT16)-1) {
            v->back_id = 0;
        }
    }
    return v->back_id;
}

static void rdpc_vc_free(struct rdpc *s)
{
    for (size_t i = 0; i < s->nvc; i++) {
        rdp_vc_free(&s->vc[i].buf[0], &s->vc_budget);
        rdp_vc_free(&s->vc[i].buf[1], &s->vc_budget);
    }
    rdp_vc_free(&s->fout, &s->vc_budget);
}

/* The filters of the relayed channels, and the words the relay logs
 * their verdicts with. */
struct rdpc_filter {
    const char *chan; /* the channel it filters */
    const char *what; /* for the log */
    const char *item; /* what it strips, singular */
    const char *why;  /* why it strips */
    int (*run)(struct rdpc *s, int dir, const uint8_t *in, size_t len,
               uint8_t *out, size_t *outlen, struct rdp_filter_result *r);
};

static int rdpc_filter_clip(struct rdpc *s, int dir, const uint8_t *in,
                            size_t len, uint8_t *out, size_t *outlen,
                            struct rdp_filter_result *r)
{
    return rdp_cliprdr_filter(&s->clip, dir, in, len, out, outlen, r);
}

static int rdpc_filter_dr(struct rdpc *s, int dir, const uint8_t *in,
                          size_t len, uint8_t *out, size_t *outlen,
                          struct rdp_filter_result *r)
{
    return rdp_rdpdr_filter(&s->dr, dir, in, len, out, outlen, r);
}

static const struct rdpc_filter rdpc_filters[RDPC_FILTERS] = {
    {"cliprdr", "clipboard", "file format", "the access profile refuses files",
     rdpc_filter_clip},
    {"rdpdr", "device redirection", "device", "the access profile refuses them",
     rdpc_filter_dr},
};

/* A verdict of filter f (or the reassembly's, f NULL) on a message from
 * the client or the target. Said at once, then at most once per
 * RDPC_VLOG_MS per kind with how many came since the last line; count
 * is what this one stripped. */
static void rdpc_vlog(struct rdpc *s, const struct rdpc_filter *f, int kind,
                      const char *from, const char *detail, unsigned count)
{
    int k = f != NULL ? (int)(f - rdpc_filters) * RDPC_VLOG_PER_FILTER + kind
                      : kind;
    uint64_t n = log_limit_take(&s->vlog[k], util_mono_ms(), RDPC_VLOG_MS);
    char more[64] = "";

    if (n == 0) {
        return;
    }
    if (n > 1) {
        snprintf(more, sizeof(more), " (%llu times since the last such line)",
                 (unsigned long long)n);
    }
    if (f == NULL) {
        log_info("rdp %s: %s%s", s->a->client_addr, detail, more);
    } else if (kind == RDPC_VLOG_MALFORMED) {
        log_info("rdp %s: a malformed %s PDU from the %s dropped%s",
                 s->a->client_addr, f->what, from, more);
    } else if (kind == RDPC_VLOG_REFUSED) {
        log_info("rdp %s: %s: %s from the %s refused%s", s->a->client_addr,
                 f->what, detail, from, more);
    } else {
        log_info("rdp %s: %s: %u %s%s from the %s taken off (%s)%s",
                 s->a->client_addr, f->what, count, f->item,
                 count == 1 ? "" : "s", from, f->why, more);
    }
}

/* At the end of the session: the counts held back and not said yet. */
static void rdpc_vlog_flush(struct rdpc *s)
{
    static const char *const kinds[RDPC_VLOG_PER_FILTER] = {
        "malformed PDU(s) dropped", "PDU(s) refused",
        "PDU(s) with items taken off"};
    static const char *const own[] = {
        "oversized channel message(s) dropped",
        "channel message(s) whose chunks did not add up dropped",
        "channel message(s) over the session's buffer budget dropped",
        "surface command(s) from the target not sent to the client"};
    uint64_t n;

    for (int k = 0; k < RDPC_VLOG_N; k++) {
        if ((n = log_limit_flush(&s->vlog[k])) == 0) {
            continue;
        }
        if (k < RDPC_VLOG_TOO_BIG) {
            log_info("rdp %s: %s: %llu more %s since the last line",
                     s->a->client_addr,
                     rdpc_filters[k / RDPC_VLOG_PER_FILTER].what,
                     (unsigned long long)n, kinds[k % RDPC_VLOG_PER_FILTER]);
        } else {
            log_info("rdp %s: %llu more %s since the last line",
                     s->a->client_addr, (unsigned long long)n,
                     own[k - RDPC_VLOG_TOO_BIG]);
        }
    }
}

/* One whole message on a relayed channel, to the other leg (through the
 * channel's filter, if it has one). FALSE ends the session (a leg's
 * write failed). */
static BOOL rdpc_vc_deliver(struct rdpc *s, struct rdpc_vc *v, int dir,
                            const uint8_t *m, size_t len)
{
    const char *from = dir == RDP_CLIP_UP ? "client" : "target";
    const struct rdpc_filter *f = NULL;
    struct rdp_filter_result res;
    size_t n = len;
    char line[128];
    int e;

    if (strcmp(v->name, "drdynvc") == 0) {
        return rdpc_dvc_deliver(s, v, dir, m, len);
    }
    for (size_t i = 0; i < RDPC_FILTERS; i++) {
        if (strcmp(v->name, rdpc_filters[i].chan) == 0) {
            f = &rdpc_filters[i];
        }
    }
    if (f != NULL) {
        if ((e = rdp_vc_reserve(&s->fout, &s->vc_budget, len)) != ERR_OK) {
            if (e != ERR_TOO_LONG) {
                return FALSE;
            }
            snprintf(line, sizeof(line),
                     "a %zu-byte message on %s dropped (over the session's "
                     "buffer budget)",
                     len, v->name);
            rdpc_vlog(s, NULL, RDPC_VLOG_OVER_BUDGET, NULL, line, 0);
            return TRUE;
        }
        memset(&res, 0, sizeof(res));
        if (f->run(s, dir, m, len, s->fout.msg, &n, &res) != ERR_OK) {
            rdpc_vlog(s, f, RDPC_VLOG_MALFORMED, from, NULL, 0);
            return TRUE;
        }
        if (res.refused != NULL) {
            rdpc_vlog(s, f, RDPC_VLOG_REFUSED, from, res.refused, 0);
            return TRUE;
        }
        if (res.stripped > 0) {
            rdpc_vlog(s, f, RDPC_VLOG_STRIPPED, from, NULL, res.stripped);
        }
        if (res.text != NULL) {
            rdpc_rec_clip(s, dir, &res);
        }
        m = s->fout.msg;
    }
    if (n == 0 || (dir == RDP_CLIP_DOWN && v->front_id == 0)) {
        return TRUE;
    }
    if (dir == RDP_CLIP_UP) {
        return s->back->SendChannelData(s->back, rdpc_vc_back_id(s, v), m, n);
    }
    return s->peer->SendChannelData(s->peer, v->front_id, m, n);
}

/*
 * A chunk of a channel message ([MS-RDPBCGR] 3.1.5.2.2): kept until the
 * last one (rdp_vc.h), so the other leg gets the message whole (it
 * chunks it again for its own peer) and the filter sees whole PDUs. A
 * message too large, over the session's budget, or whose chunks do not
 * add up, is dropped.
 */
static BOOL rdpc_vc_chunk(struct rdpc *s, struct rdpc_vc *v, int dir,
                          const BYTE *data, size_t size, UINT32 flags,
                          size_t total)
{
    struct rdp_vc_buf *a = &v->buf[dir];
    enum rdp_vc_verdict verdict;
    char line[128];
    BOOL ok;

    if (rdp_vc_chunk(a, &s->vc_budget, data, size,
                     flags & (RDP_VC_FIRST | RDP_VC_LAST), total,
                     &verdict) != ERR_OK) {
        return FALSE;
    }
    switch (verdict) {
    case RDP_VC_MORE:
        return TRUE;
    case RDP_VC_TOO_BIG:
        snprintf(line, sizeof(line), "a %zu-byte message on %s dropped", total,
                 v->name);
        rdpc_vlog(s, NULL, RDPC_VLOG_TOO_BIG, NULL, line, 0);
        return TRUE;
    case RDP_VC_OVER_BUDGET:
        snprintf(line, sizeof(line),
                 "a %zu-byte message on %s dropped (over the session's "
                 "buffer budget)",
                 total, v->name);
        rdpc_vlog(s, NULL, RDPC_VLOG_OVER_BUDGET, NULL, line, 0);
        return TRUE;
    case RDP_VC_MISFIT:
        snprintf(line, sizeof(line),
                 "a message on %s whose chunks do not add up dropped", v->name);
        rdpc_vlog(s, NULL, RDPC_VLOG_MISFIT, NULL, line, 0);
        return TRUE;
    case RDP_VC_WHOLE:
        break;
    }
    ok = rdpc_vc_deliver(s, v, dir, a->msg, a->len);
    rdp_vc_done(a, &s->vc_budget);
    rdp_vc_done(&s->fout, &s->vc_budget);
    return ok;
}

/* Channel data from the client. */
static BOOL rdpc_front_channel(freerdp_peer *peer, UINT16 id, const BYTE *data,
                               size_t size, UINT32 flags, size_t total)
{
    struct rdpc *s = rdpc_s;
    struct rdpc_vc *v;
    const char *name;
    size_t i;

    if (!s->back_up) {
        /* before activation, while the back leg's thread plans the
         * channels: nothing to relay to yet */
        return TRUE;
    }
    v = rdpc_vc_by_front(s, id);
    if (v != NULL && rdpc_vc_back_id(s, v) != 0) {
        return rdpc_vc_chunk(s, v, RDP_CLIP_UP, data, size, flags, total);
    }
    /* refused (or not joined by the target): dropped, said once */
    name = WTSChannelGetName(peer, id);
    for (i = 0; i < RDPC_VC_MAX; i++) {
        if (name != NULL && strcmp(name, rdpc_vc_table[i].name) == 0) {
            break;
        }
    }
    if (!(s->dropped_told & (1u << i))) {
        s->dropped_told |= 1u << i;
        log_info("rdp %s: data the client sent on channel %s dropped (%s)",
                 s->a->client_addr, name != NULL ? name : "?",
                 v != NULL ? "the target did not join it"
                           : "refused by the access profile");
    }
    return TRUE;
}

/* Channel data from the target. */
static BOOL rdpc_back_channel(freerdp *inst, UINT16 id, const BYTE *data,
                              size_t size, UINT32 flags, size_t total)
{
    struct rdpc *s = rdpc_s;

    for (size_t i = 0; i < s->nvc; i++) {
        if (rdpc_vc_back_id(s, &s->vc[i]) == id) {
            return rdpc_vc_chunk(s, &s->vc[i], RDP_CLIP_DOWN, data, size, flags,
                                 total);
        }
    }
    return TRUE; /* a channel the proxy did not ask for */
}

/* --- drdynvc: display resize and graphics (rdp_dvc.h) --- */

/* [MS-RDPEGFX] 2.2.3.2: version 8.1's caps flag for H.264 (AVC420) */
#define RDPC_GFX_AVC420 0x10

/* What crossed on the graphics channel, for the log. */
static void rdpc_gfx_note(struct rdpc *s, int dir,
                          const struct rdp_dvc_result *r, size_t n)
{
    if (r->chan != RDP_DVC_GFX) {
        return;
    }
    if (r->opened && !s->gfx_open) {
        s->gfx_open = true;
        log_info("rdp %s: graphics pipeline: the client opened its channel "
                 "(relayed, not decoded)",
                 s->a->client_addr);
    }
    if (r->gfx_version != 0 && s->gfx_version == 0) {
        log_info("rdp %s: graphics pipeline: the target confirmed version "
                 "0x%08x, flags 0x%08x%s",
                 s->a->client_addr, r->gfx_version, r->gfx_flags,
                 (r->gfx_flags & RDPC_GFX_AVC420) != 0 ? " (AVC420: H.264)"
                                                       : "");
    }
    if (r->gfx_version != 0) {
        s->gfx_version = r->gfx_version;
    }
    s->gfx_acks += r->gfx_acks;
    s->gfx_bytes[dir] += n;
}

/*
 * The target confirmed the client's graphics caps (relayed to the client
 * just before): the proxy asks it for its whole screen at once, with a
 * Refresh Rect PDU on the back leg, as a client does when it needs a
 * repaint.
 *
 * Why: FreeRDP's shadow server (2.11, server/shadow/shadow_client.c)
 * handles the caps advertise on the graphics channel's own thread,
 * where it first asks its capture thread for a full frame and only then
 * records that the client takes H.264 and sends the caps confirm. The
 * session's thread sends that frame as soon as the capture thread
 * signals it; when it gets there before the H.264 switch is recorded,
 * the full screen goes out as classic bitmap updates, the screen counts
 * as sent, and no graphics frame follows until the screen changes: the
 * client, drawing the pipeline's surface, stays black on a still
 * screen. (Read in its source; what bench/rdp --still sees agrees: each
 * connection that never got a graphics frame had a whole screen of
 * classic updates after the pipeline opened. A few in a hundred, direct
 * ones too: docs/rdp.md.) The caps confirm is sent after the switch, so
 * a refresh asked once it is seen comes back as graphics frames. On any
 * other target it costs one repaint of the screen per caps exchange; a
 * target that did not advertise Refresh Rect support is not asked
 * (FreeRDP sends nothing then).
 */
static BOOL rdpc_gfx_refresh(struct rdpc *s)
{
    rdpContext *b = s->back->context;
    rdpSettings *bs = s->back->settings;
    RECTANGLE_16 all = {0, 0, (UINT16)(bs->DesktopWidth - 1),
                        (UINT16)(bs->DesktopHeight - 1)};

    if (!bs->RefreshRect) {
        return TRUE;
    }
    log_info("rdp %s: graphics pipeline: a full screen asked of the target "
             "after its caps confirm",
             s->a->client_addr);
    return b->update->RefreshRect(b, 1, &all);
}

/* At the end of a session that opened the graphics channel. */
static void rdpc_gfx_summary(struct rdpc *s)
{
    if (!s->gfx_open) {
        return;
    }
    log_info("rdp %s: graphics pipeline: %llu bytes to the client, %llu "
             "from it, %llu frames acknowledged by the client",
             s->a->client_addr, (unsigned long long)s->gfx_bytes[RDP_DVC_DOWN],
             (unsigned long long)s->gfx_bytes[RDP_DVC_UP],
             (unsigned long long)s->gfx_acks);
}

/* One whole drdynvc message through the filter, its output in s->fout
 * (reserved by the caller). */
static BOOL rdpc_dvc_relay(struct rdpc *s, struct rdpc_vc *v, int dir,
                           const uint8_t *m, size_t len)
{
    const char *from = dir == RDP_DVC_UP ? "client" : "target";
    struct rdp_dvc_result r;
    bool had = s->dvc.held_len > 0, tell;
    size_t n = 0;
    BOOL ok = TRUE;
    int e;

    e = rdp_dvc_filter(&s->dvc, dir, m, len, util_mono_ms(), s->fout.msg, &n,
                       &r);
    tell = (e != ERR_OK || r.refused != NULL) && s->dvc_told++ < RDPC_DVC_TOLD;
    if (tell && e != ERR_OK) {
        log_info("rdp %s: a malformed dynamic channel PDU from the %s "
                 "dropped",
                 s->a->client_addr, from);
    } else if (tell) {
        log_info("rdp %s: dynamic channels: %s from the %s refused%s%s%s",
                 s->a->client_addr, r.refused, from,
                 r.name[0] != '\0' ? " (" : "", r.name,
                 r.name[0] != '\0' ? ")" : "");
    }
    if (tell && s->dvc_told == RDPC_DVC_TOLD) {
        log_info("rdp %s: dynamic channels: further refusals not logged",
                 s->a->client_addr);
    }
    if (e != ERR_OK) {
        return TRUE;
    }
    if (r.refused == NULL) {
        rdpc_gfx_note(s, dir, &r, n);
    }
    if (r.reply_len > 0) {
        /* a refusal answered on the client's behalf */
        ok = dir == RDP_DVC_DOWN
                 ? s->back->SendChannelData(s->back, rdpc_vc_back_id(s, v),
                                            r.reply, r.reply_len)
                 : TRUE;
    }
    if (r.monitors > 0 && !(r.held && had)) {
        log_info("rdp %s: display resize: %ux%u (%u monitor%s) from the "
                 "client%s",
                 s->a->client_addr, r.width, r.height, r.monitors,
                 r.monitors == 1 ? "" : "s",
                 r.held ? " held (one a second reaches the target)" : "");
    }
    if (!ok || n == 0 || (dir == RDP_DVC_DOWN && v->front_id == 0)) {
        return ok;
    }
    if (dir == RDP_DVC_UP) {
        return s->back->SendChannelData(s->back, rdpc_vc_back_id(s, v),
                                        s->fout.msg, n);
    }
    ok = s->peer->SendChannelData(s->peer, v->front_id, s->fout.msg, n);
    if (ok && r.refused == NULL && r.chan == RDP_DVC_GFX &&
        r.gfx_cmd == RDP_GFX_CAPS_CONFIRM && r.gfx_version != 0) {
        ok = rdpc_gfx_refresh(s);
    }
    return ok;
}

/* The filter's output is charged to the session's channel budget like
 * the other filters' (rdp_vc.h); a message over it is dropped. */
static BOOL rdpc_dvc_deliver(struct rdpc *s, struct rdpc_vc *v, int dir,
                             const uint8_t *m, size_t len)
{
    BOOL ok;
    int e;

    if ((e = rdp_vc_reserve(&s->fout, &s->vc_budget, len)) != ERR_OK) {
        return e == ERR_TOO_LONG ? TRUE : FALSE;
    }
    ok = rdpc_dvc_relay(s, v, dir, m, len);
    rdp_vc_done(&s->fout, &s->vc_budget);
    return ok;
}

/* A layout held back by the coalescing (rdp_dvc.h), when its time has
 * come; the loop waits no longer than that. */
static bool rdpc_dvc_flush(struct rdpc *s)
{
    uint8_t m[RDP_DVC_HELD_MAX];
    size_t n;

    if (!s->back_up) {
        return true;
    }
    for (size_t i = 0; i < s->nvc; i++) {
        struct rdpc_vc *v = &s->vc[i];

        if (strcmp(v->name, "drdynvc") != 0 || rdpc_vc_back_id(s, v) == 0) {
            continue;
        }
        n = rdp_dvc_due(&s->dvc, util_mono_ms(), m);
        if (n > 0) {
            log_info("rdp %s: display resize: the held layout sent",
                     s->a->client_addr);
            return s->back->SendChannelData(s->back, v->back_id, m, n);
        }
    }
    return true;
}

static wEventType rdpc_state_event[] = {
    DEFINE_EVENT_ENTRY(ConnectionStateChange)};

/* Authorize, connect, pin, log on to the target (on the back leg's
 * thread, from the front's Logon). false: s->why says. */
static bool rdpc_back_connect(struct rdpc *s)
{
    char sid[STORE_ID_MAX + 1] = "", msg[600] = "";
    uint32_t maxmin = 0, idlemin = 0;
    uint8_t ok = 0, rec = 0;
    int fd = -1;

    buf_reset(s->msg);
    if (buf_put_u8(s->msg, KIND_RDP) != ERR_OK ||
        buf_put_cstring(s->msg, "") != ERR_OK ||
        rdpc_call(s, MP_AUTHORIZE, MP_AUTHORIZE_REPLY, NULL) != ERR_OK ||
        buf_get_u8(s->msg, &ok) != ERR_OK ||
        buf_get_cstring_into(s->msg, sid, sizeof(sid)) != ERR_OK ||
        buf_get_cstring_into(s->msg, msg, sizeof(msg)) != ERR_OK ||
        buf_get_cstring_into(s->msg, s->asset, sizeof(s->asset)) != ERR_OK ||
        buf_get_u32(s->msg, &maxmin) != ERR_OK ||
        buf_get_u32(s->msg, &idlemin) != ERR_OK ||
        buf_get_u8(s->msg, &rec) != ERR_OK ||
        buf_get_cstring_into(s->msg, s->user, sizeof(s->user)) != ERR_OK ||
        buf_get_u8(s->msg, &s->chans) != ERR_OK) {
        snprintf(s->why, sizeof(s->why), "error: monitor");
        return false;
    }
    if (!ok) {
        /* the monitor wrote the refusal's report row */
        snprintf(s->why, sizeof(s->why), "%s", msg);
        log_info("rdp %s: %s", s->a->client_addr, msg);
        return false;
    }
    snprintf(s->row, sizeof(s->row), "%s", sid);
    s->rec_flags = rec;
    if ((rec & 1) && !rdpc_rec_open(s)) {
        return false;
    }
    buf_reset(s->msg);
    if (buf_put_cstring(s->msg, s->row) != ERR_OK ||
        rdpc_call(s, MP_CONNECT, MP_CONNECT_REPLY, &fd) != ERR_OK ||
        buf_get_u8(s->msg, &ok) != ERR_OK ||
        buf_get_cstring_into(s->msg, msg, sizeof(msg)) != ERR_OK) {
        snprintf(s->why, sizeof(s->why), "error: monitor");
        goto fail;
    }
    if (!ok || fd < 0) {
        snprintf(s->why, sizeof(s->why), "error: %s", msg);
        log_info("rdp %s: %s", s->a->client_addr, msg);
        goto fail;
    }
    s->back_fd = fd;
    fd = -1;
    pthread_mutex_lock(&s->mu);
    s->bfd = s->back_fd; /* rdpc_back_stop shuts it down to wake us */
    ok = !s->abort;
    pthread_mutex_unlock(&s->mu);
    if (!ok || (s->back = freerdp_new()) == NULL) {
        goto nomem;
    }
    s->back->PreConnect = rdpc_back_pre_connect;
    s->back->PostConnect = rdpc_back_post_connect;
    s->back->VerifyX509Certificate = rdpc_back_verify;
    s->back->Authenticate = rdpc_back_authenticate;
    s->back->ReceiveChannelData = rdpc_back_channel;
    if (!freerdp_context_new(s->back) ||
        !rdpc_back_settings(s, s->back->settings)) {
        goto nomem;
    }
    /* FreeRDP 2 raises ConnectionStateChange without registering its
     * type (nothing hears it): registered here, the client's state
     * changes reach rdpc_back_state */
    PubSub_AddEventTypes(s->back->context->pubSub, rdpc_state_event, 1);
    if (PubSub_SubscribeConnectionStateChange(s->back->context->pubSub,
                                              rdpc_back_state) < 0) {
        goto nomem;
    }
    pthread_mutex_lock(&s->mu);
    s->binst = s->back;
    pthread_mutex_unlock(&s->mu);
    if (!freerdp_connect(s->back)) {
        if (s->why[0] == '\0') {
            snprintf(s->why, sizeof(s->why),
                     "error: the target refused the connection or the "
                     "vaulted login (%s)",
                     freerdp_get_last_error_string(
                         freerdp_get_last_error(s->back->context)));
        }
        log_info("rdp %s: %s", s->a->client_addr, s->why);
        return false;
    }
    log_info("rdp %s: %s connected to %s", s->a->client_addr, s->user,
             s->asset);
    return true;
nomem:
    snprintf(s->why, sizeof(s->why), "error: out of memory");
fail:
    if (fd >= 0) {
        close(fd);
    }
    return false;
}

/*
 * Measured (bench/README.md, "Issue 17"): FreeRDP 2's client spends
 * about 0.3 s of CPU in freerdp_connect before it sends a byte, the
 * first time in a process (its codecs and primitives set up their
 * tables: rdp_client_reset_codecs prepares every codec). Done once on a
 * thread of its own from the NTLM key (rdpc_ntlm_hash), that time passes
 * while NLA ends and the monitor checks the password, instead of on the
 * back leg's path; the back leg's thread waits for it (it is
 * FreeRDP's global set-up: not run twice at once). In the sandbox, as
 * the back leg's own set-up always was.
 */
static void *rdpc_warm_main(void *arg)
{
    freerdp *w = freerdp_new();
    rdpCodecs *c;

    (void)arg;
    if (w != NULL && freerdp_context_new(w)) {
        if ((c = codecs_new(w->context)) != NULL) {
            (void)freerdp_client_codecs_prepare(c, FREERDP_CODEC_ALL, 64, 64);
            codecs_free(c);
        }
        freerdp_context_free(w);
    }
    freerdp_free(w);
    return NULL;
}

static void rdpc_warm_join(struct rdpc *s)
{
    if (s->wthr_on) {
        pthread_join(s->wthr, NULL);
        s->wthr_on = false;
    }
}

static void *rdpc_back_main(void *arg)
{
    struct rdpc *s = arg;
    bool ok;

    rdpc_warm_join(s);
    ok = rdpc_back_connect(s);
    rdpc_kick_stop(s);

    pthread_mutex_lock(&s->mu);
    s->bok = ok;
    s->bfd = -1;
    if (!ok && s->abort) {
        s->why[0] = '\0'; /* the front ended first: the main thread says */
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* From the front's Logon: the back leg's set-up starts now, beside the
 * front's (MCS, licensing, capabilities); rdpc_activate joins it. */
static void rdpc_back_start(struct rdpc *s)
{
    int e = pthread_create(&s->bthr, NULL, rdpc_back_main, s);

    if (e != 0) {
        snprintf(s->why, sizeof(s->why),
                 "error: cannot start the connection to the target (%s)",
                 strerror(e));
        log_warn("rdp %s: %s", s->a->client_addr, s->why);
        return;
    }
    s->bthr_on = true;
}

static void rdpc_back_join(struct rdpc *s)
{
    if (s->bthr_on) {
        pthread_join(s->bthr, NULL);
        s->bthr_on = false;
    }
}

/* The front ended before activation: the thread is woken wherever it
 * waits (a gate, the target's socket, FreeRDP's own waits) and joined;
 * a monitor call it is in is answered first. */
static void rdpc_back_stop(struct rdpc *s)
{
    if (!s->bthr_on) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->abort = true;
    if (s->bfd >= 0) {
        shutdown(s->bfd, SHUT_RDWR);
    }
    if (s->binst != NULL) {
        freerdp_abort_connect(s->binst);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    rdpc_back_join(s);
}

/*
 * A refusal after login, told to the client as a Set Error Info PDU
 * before the connection closes, so it shows a reason rather than a
 * network error: no access (a role or profile refused it, or a changed
 * target certificate) as "insufficient privileges", anything else (the
 * target is down or refused the vaulted login) as "connection denied".
 * The words are in the report row and the log.
 */
static void rdpc_tell_client(struct rdpc *s)
{
    rdpRdp *rdp = s->peer->context->rdp;
    bool denied = strncmp(s->why, "denied: ", 8) == 0 ||
                  strncmp(s->why, "access denied", 13) == 0 ||
                  strncmp(s->why, "unknown asset", 13) == 0;
    UINT32 code = denied ? ERRINFO_SERVER_INSUFFICIENT_PRIVILEGES
                         : ERRINFO_SERVER_DENIED_CONNECTION;

    if (!s->authed && s->tell_login) {
        /* the password was right (NLA) and the login was still refused
         * (a TOTP code missing or wrong): mstsc asks for the
         * credentials anew, where the user can put the code in the user
         * name */
        code = ERRINFO_SERVER_FRESH_CREDENTIALS_REQUIRED;
    }
    freerdp_set_error_info(rdp, code);
    s->told = freerdp_send_error_info(rdp) ? true : false;
}

/* The client is active: now its codecs are known. Called again after
 * each reactivation (a desktop resize). */
static BOOL rdpc_activate(freerdp_peer *peer)
{
    struct rdpc *s = rdpc_s;
    rdpSettings *fs = peer->settings, *bs;

    if (s->back_up) {
        /* a new Confirm Active: the client may have numbered its codecs
         * anew (the back leg keeps what it announced) */
        rdpc_codec_map(s, fs);
        if (s->resizing) {
            /* active again at its new size: the screen it missed */
            RECTANGLE_16 all = {0, 0, (UINT16)(fs->DesktopWidth - 1),
                                (UINT16)(fs->DesktopHeight - 1)};
            rdpContext *b = s->back->context;

            s->resizing = false;
            log_info("rdp %s: the client is active again at %ux%u",
                     s->a->client_addr, fs->DesktopWidth, fs->DesktopHeight);
            return b->update->RefreshRect(b, 1, &all);
        }
        return TRUE;
    }
    /* Bulk compression of the updates to the client is most of the
     * relay's CPU (bench/README.md, "Issue 17: RDP"): an operator may
     * turn it off; the client reads uncompressed PDUs as well. */
    if (!s->a->compression &&
        !freerdp_settings_set_bool(fs, FreeRDP_CompressionEnabled, FALSE)) {
        return FALSE;
    }
    if (!s->authed) {
        if (s->tell_login) {
            rdpc_tell_client(s);
        }
        return FALSE;
    }
    /* The back leg has been connecting since Logon; it waits for the
     * client's codecs before its own capability exchange, has them now,
     * and is waited for here: nothing else is to be done for the client
     * until the target's screen comes. A refusal it met (no role,
     * profile, asset down, changed certificate) is told now, when the
     * client can show it. */
    rdpc_front_progress(s, true);
    rdpc_back_join(s);
    if (!s->bok) {
        if (s->why[0] == '\0') {
            snprintf(s->why, sizeof(s->why), "error: monitor");
        }
        rdpc_tell_client(s);
        return FALSE;
    }
    s->back_up = true;
    rdpc_vc_joined(s);
    bs = s->back->settings;
    if (bs->DesktopWidth != fs->DesktopWidth ||
        bs->DesktopHeight != fs->DesktopHeight) {
        fs->DesktopWidth = bs->DesktopWidth;
        fs->DesktopHeight = bs->DesktopHeight;
        s->resizing = true;
        return peer->update->DesktopResize(peer->context);
    }
    return TRUE;
}

/* --- input from the client, to the target unchanged --- */

static BOOL rdpc_in_sync(rdpInput *in, UINT32 flags)
{
    return !rdpc_s->back_up ||
           freerdp_input_send_synchronize_event(rdpc_s->back->input, flags);
}

static BOOL rdpc_in_key(rdpInput *in, UINT16 flags, UINT16 code)
{
    rdpc_rec_keyev(rdpc_s, false, flags, code);
    return !rdpc_s->back_up ||
           freerdp_input_send_keyboard_event(rdpc_s->back->input, flags, code);
}

static BOOL rdpc_in_unicode(rdpInput *in, UINT16 flags, UINT16 code)
{
    rdpc_rec_keyev(rdpc_s, true, flags, code);
    return !rdpc_s->back_up || freerdp_input_send_unicode_keyboard_event(
                                   rdpc_s->back->input, flags, code);
}

static BOOL rdpc_in_mouse(rdpInput *in, UINT16 flags, UINT16 x, UINT16 y)
{
    rdpc_rec_mouse(rdpc_s, flags, x, y);
    return !rdpc_s->back_up ||
           freerdp_input_send_mouse_event(rdpc_s->back->input, flags, x, y);
}

static BOOL rdpc_in_xmouse(rdpInput *in, UINT16 flags, UINT16 x, UINT16 y)
{
    rdpc_rec_mouse(rdpc_s, PTR_FLAGS_MOVE, x, y);
    return !rdpc_s->back_up || freerdp_input_send_extended_mouse_event(
                                   rdpc_s->back->input, flags, x, y);
}

static BOOL rdpc_in_refresh(rdpContext *c, BYTE count, const RECTANGLE_16 *r)
{
    rdpContext *b;

    if (!rdpc_s->back_up) {
        return TRUE;
    }
    b = rdpc_s->back->context;
    return b->update->RefreshRect(b, count, r);
}

static BOOL rdpc_in_suppress(rdpContext *c, BYTE allow, const RECTANGLE_16 *r)
{
    rdpContext *b;

    if (!rdpc_s->back_up) {
        return TRUE;
    }
    b = rdpc_s->back->context;
    return b->update->SuppressOutput(b, allow, r);
}

/* --- the session --- */

static bool rdpc_front_setup(struct rdpc *s)
{
    freerdp_peer *p;
    rdpSettings *fs;

    if ((p = freerdp_peer_new(s->a->client_fd)) == NULL) {
        return false;
    }
    s->peer = p;
    if (!freerdp_peer_context_new(p)) {
        return false;
    }
    fs = p->settings;
    if (!freerdp_settings_set_string(fs, FreeRDP_CertificateContent,
                                     s->a->cert_pem) ||
        !freerdp_settings_set_string(fs, FreeRDP_PrivateKeyContent,
                                     s->a->key_pem) ||
        !freerdp_settings_set_bool(fs, FreeRDP_NlaSecurity, TRUE) ||
        !freerdp_settings_set_bool(fs, FreeRDP_TlsSecurity,
                                   s->a->tls_logins ? TRUE : FALSE) ||
        !freerdp_settings_set_bool(fs, FreeRDP_RdpSecurity, FALSE) ||
        !freerdp_settings_set_bool(fs, FreeRDP_SupportGraphicsPipeline, TRUE) ||
        /* offered in the Demand Active so that FreeRDP's server keeps
         * them (with the client's IDs) when the client announces them;
         * the back leg offers the target what the client took
         * (rdpc_front_progress), and surface commands cross renumbered
         * (rdpc_fw_surface_bits) */
        !freerdp_settings_set_bool(fs, FreeRDP_RemoteFxCodec, TRUE) ||
        !freerdp_settings_set_bool(fs, FreeRDP_NSCodec, TRUE) ||
        !freerdp_settings_set_bool(fs, FreeRDP_RefreshRect, TRUE) ||
        !freerdp_settings_set_bool(fs, FreeRDP_SuppressOutput, TRUE)) {
        return false;
    }
    p->ComputeNtlmHash = rdpc_ntlm_hash;
    p->Logon = rdpc_logon;
    p->PostConnect = rdpc_post_connect;
    p->Activate = rdpc_activate;
    p->ReceiveChannelData = rdpc_front_channel;
    p->input->SynchronizeEvent = rdpc_in_sync;
    p->input->KeyboardEvent = rdpc_in_key;
    p->input->UnicodeKeyboardEvent = rdpc_in_unicode;
    p->input->MouseEvent = rdpc_in_mouse;
    p->input->ExtendedMouseEvent = rdpc_in_xmouse;
    p->update->RefreshRect = rdpc_in_refresh;
    p->update->SuppressOutput = rdpc_in_suppress;
    return p->Initialize(p) ? true : false;
}

#define RDPC_CLIENT_ENDED "ok: the client ended the session"

/*
 * SIGTERM: the spawner ends every session this way when the server stops
 * (or its main process is gone). Without a handler the child died at
 * once: the client saw a dropped connection and the row was closed by
 * the monitor without its bytes. Now the handler sets a flag and makes
 * an eventfd readable (write(2) is safe in a handler; WinPR's SetEvent is
 * not), which the loop waits on beside the connections' handles, so it
 * wakes at once and only then: the client is told (a Set Error Info PDU:
 * "an administrative tool disconnected the session") and the row is
 * closed with RDPC_STOP_RESULT and its bytes, as the SSH child does. A
 * second SIGTERM ends it at once.
 */
static volatile sig_atomic_t rdpc_stopping;
static int rdpc_stop_fd = -1; /* readable once SIGTERM came */

#define RDPC_STOP_RESULT "error: interrupted (the access server stopped)"

static void rdpc_on_term(int sig)
{
    uint64_t one = 1;
    int saved = errno;

    (void)sig;
    rdpc_stopping = 1;
    if (rdpc_stop_fd >= 0) {
        (void)!write(rdpc_stop_fd, &one, sizeof(one));
    }
    errno = saved;
}

/*
 * The back leg failed: was it the client that went? What the target
 * sends is forwarded to the client as it is read, so a client that
 * closed (xfreerdp quitting: MCS Disconnect Provider Ultimatum, then
 * FIN) often shows first as a failed write to it while the back leg's
 * updates are forwarded, which ends the back leg's processing; the
 * client's socket then says it was the client (its end closed or reset).
 */
static bool rdpc_client_gone(const struct rdpc *s)
{
    struct pollfd p = {.fd = s->a->client_fd, .events = POLLRDHUP};

    return poll(&p, 1, 0) == 1 &&
           (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/*
 * The stack below the loop, where FreeRDP and OpenSSL ran the whole
 * connection sequence: a dead frame there still held a copy of the
 * Client Info password (found by test_rdp_tls.py reading the child's
 * memory). Wiped once, when the login is settled; 256 KiB reaches below
 * the deepest frames of the handshake.
 */
#define RDPC_STACK_WIPE (256 * 1024)

static __attribute__((noinline)) void rdpc_stack_wipe(void)
{
    unsigned char dead[RDPC_STACK_WIPE];

    sodium_memzero(dead, sizeof(dead));
    __asm__ volatile("" : : "r"(dead) : "memory");
}

/* Both legs until either ends. */
static void rdpc_loop(struct rdpc *s)
{
    HANDLE h[RDPC_HANDLES];
    HANDLE stop = NULL;
    DWORD n, m, w, t;
    int held;

    if (rdpc_stop_fd >= 0) {
        stop = CreateFileDescriptorEvent(NULL, FALSE, FALSE, rdpc_stop_fd,
                                         WINPR_FD_READ);
    }
    for (;;) {
        if (rdpc_stopping) {
            log_info("rdp %s: the access server stopped: ending the session",
                     s->a->client_addr);
            snprintf(s->why, sizeof(s->why), "%s", RDPC_STOP_RESULT);
            break;
        }
        if (s->back_up && !s->stack_wiped) {
            rdpc_stack_wipe();
            s->stack_wiped = true;
        }
        if (!rdpc_dvc_flush(s)) {
            break;
        }
        n = s->peer->GetEventHandles(s->peer, h, RDPC_HANDLES - 1);
        if (n == 0) {
            break;
        }
        if (s->back_up) {
            m = freerdp_get_event_handles(s->back->context, h + n,
                                          RDPC_HANDLES - 1 - n);
            if (m == 0) {
                break;
            }
            n += m;
        }
        /* a recording writes what changed on a clock of its own */
        t = s->recw != NULL ? RDPC_REC_RECT_MS : INFINITE;
        held = rdp_dvc_wait_ms(&s->dvc, util_mono_ms());
        if (held >= 0 && (t == INFINITE || (DWORD)held < t)) {
            t = (DWORD)held; /* a held layout's turn (rdpc_dvc_flush) */
        }
        if (stop != NULL) {
            h[n++] = stop; /* rdpc_stopping */
        } else if (t == INFINITE || t > 1000) {
            t = 1000; /* no eventfd: look at rdpc_stopping each second */
        }
        w = WaitForMultipleObjects(n, h, FALSE, t);
        if (w == WAIT_FAILED) {
            break;
        }
        if (w == WAIT_TIMEOUT) {
            rdpc_rec_tick(s);
            if (s->rec_stop) {
                break;
            }
            continue;
        }
        if (!s->peer->CheckFileDescriptor(s->peer)) {
            rdpc_back_stop(s);
            if (s->why[0] == '\0') {
                snprintf(s->why, sizeof(s->why), "%s", RDPC_CLIENT_ENDED);
            }
            break;
        }
        rdpc_front_progress(s, false);
        rdpc_edrq_watch(s, false);
        if (s->back_up && (!freerdp_check_event_handles(s->back->context) ||
                           freerdp_shall_disconnect(s->back))) {
            if (s->why[0] == '\0') {
                snprintf(s->why, sizeof(s->why), "%s",
                         rdpc_client_gone(s) ? RDPC_CLIENT_ENDED
                                             : "ok: the target ended "
                                               "the session");
            }
            break;
        }
        rdpc_rec_tick(s);
        if (s->rec_stop) {
            break;
        }
    }
    if (stop != NULL) {
        (void)CloseHandle(stop); /* attached: rdpc_stop_fd stays open */
    }
}

/*
 * After a Set Error Info PDU: our side is shut, the client's bytes are
 * read and dropped until it closes (at most a second), so that closing
 * with its bytes unread does not reset the connection and throw away
 * the PDU before the client has read it.
 */
static void rdpc_linger(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char scratch[4096];
    int waited = 0;

    if (shutdown(fd, SHUT_WR) != 0) {
        return;
    }
    while (waited < 1000 && poll(&p, 1, 100) >= 0) {
        if (p.revents == 0) {
            waited += 100;
            continue;
        }
        if (recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) <= 0) {
            return;
        }
    }
}

int rdp_child_run(const struct rdp_child_args *a)
{
    struct rdpc s;
    struct sigaction term;
    char reason[300], rec_sha[65] = "";
    uint64_t rec_size = 0;
    uint8_t verdict;
    int rc = 0;

    memset(&s, 0, sizeof(s));
    rdp_dvc_init(&s.dvc);
    s.a = a;
    s.vc_budget.max = RDP_VC_BUDGET;
    s.mon = a->monitor_fd;
    s.back_fd = -1;
    s.bfd = -1;
    s.kick_fd = -1;
    s.t0 = util_mono_ms();
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    rdpc_s = &s;
    if ((s.msg = buf_new(MPROTO_MAX)) == NULL) {
        return 1;
    }
    /* Before the sandbox: OpenSSL reads its configuration once. */
    winpr_InitializeSSL(WINPR_SSL_INIT_DEFAULT);
    rdpc_wlog_tap();
    rdpc_edrq_watch(&s, true);
    if (!rdpc_front_setup(&s)) {
        log_error("rdp %s: cannot set up the RDP server side", a->client_addr);
        rc = 1;
        goto out;
    }
    if (a->login_grace_seconds > 0) {
        alarm((unsigned)a->login_grace_seconds);
    }
    rdpc_stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    memset(&term, 0, sizeof(term));
    term.sa_handler = rdpc_on_term;
    term.sa_flags = SA_RESETHAND; /* a second SIGTERM ends it at once */
    sigemptyset(&term.sa_mask);
    (void)sigaction(SIGTERM, &term, NULL);
    term.sa_handler = rdpc_on_kick; /* rdpc_kick_main */
    term.sa_flags = SA_RESTART;
    (void)sigaction(RDPC_KICK_SIG, &term, NULL);
    if (sandbox_enter_rdp(a->sb) != ERR_OK) {
        rc = 1;
        goto out;
    }
    rdpc_loop(&s);
    rdpc_back_stop(&s);
    rdpc_warm_join(&s); /* the back leg's thread did not (never started) */
    if (s.rec_stop && s.back_up) {
        /* the recording failed: the client is told the session ended */
        rdpc_tell_client(&s);
    } else if (rdpc_stopping && s.authed) {
        rdpRdp *rdp = s.peer->context->rdp;

        freerdp_set_error_info(rdp, ERRINFO_RPC_INITIATED_DISCONNECT);
        s.told = freerdp_send_error_info(rdp) ? true : false;
    }
    if (!s.authed) {
        /* Close first: a refused client learns at once, and does not
         * wait for the failure delay below (unless it was told why: the
         * linger below closes then). */
        if (!s.told) {
            shutdown(a->client_fd, SHUT_RDWR);
        }
        if (s.ntlm_given && !s.ntlm_refused && !s.logon_seen) {
            /* NLA failed after the monitor handed the key: a wrong
             * password. Counted like one. (A refused key was counted
             * by the monitor, or was no password at all.) */
            (void)rdpc_auth_password(&s, "", &verdict, reason, sizeof(reason));
        }
    }
    if (s.told) {
        rdpc_linger(a->client_fd);
    }
    rdpc_rec_close(&s, s.why[0] ? s.why : "ok", &rec_size, rec_sha);
    if (s.row[0] != '\0') {
        rdpc_session_end(&s, s.why[0] ? s.why : "ok", rec_size, rec_sha);
    }
out:
    rdpc_back_stop(&s);
    if (s.back != NULL) {
        if (s.back_up) {
            freerdp_disconnect(s.back);
        }
        if (s.back->context != NULL && s.back->context->gdi != NULL) {
            gdi_free(s.back);
        }
        freerdp_context_free(s.back);
        freerdp_free(s.back);
    }
    if (s.peer != NULL) {
        s.peer->Close(s.peer);
        freerdp_peer_context_free(s.peer);
        freerdp_peer_free(s.peer);
    }
    if (s.rec != NULL) { /* ended before its close above */
        record_free(s.rec);
    }
    rdprec_writer_free(s.recw);
    rdpc_vlog_flush(&s);
    rdpc_gfx_summary(&s);
    rdpc_vc_free(&s);
    buf_free(s.msg);
    return rc;
}

const struct rdp_module rdp_module = {
    .version = PORTCULLIS_VERSION,
    .args_size = sizeof(struct rdp_child_args),
    .run = rdp_child_run,
};
