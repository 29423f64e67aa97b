/*
 * What the e2e tests' RDP clients (rdp_clip_client.c, rdp_dvc_client.c)
 * share: a FreeRDP client instance that logs in through the proxy (NLA,
 * the certificate not checked, no compression, no reconnection) with one
 * static channel of its own, its event loop, update handlers that draw
 * nothing, and the lines it prints on stdout.
 */
#ifndef PORTCULLIS_RDP_TEST_CLIENT_H
#define PORTCULLIS_RDP_TEST_CLIENT_H

#include <time.h>

#include <freerdp/freerdp.h>

/* A line on stdout, flushed at once (the test reads it as it comes). */
void rtc_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A client instance with the callbacks (pre and post may be NULL) and
 * the settings every test client has: 127.0.0.1:port as user with
 * password, NLA only, the certificate not checked, a desktop of w x h
 * at 32 bits, no static drdynvc of FreeRDP's, no compression, no
 * reconnection. NULL when it cannot be set up. */
freerdp *rtc_new(const char *port, const char *user, const char *password,
                 UINT32 w, UINT32 h, pPreConnect pre, pPostConnect post,
                 pReceiveChannelData channel);

/* For PreConnect: the client's only static channel, name, with options
 * (CHANNEL_OPTION_*; INITIALIZED added). FALSE when there is no room. */
BOOL rtc_channel(freerdp *inst, const char *name, UINT32 options);

/* Update handlers that take everything and draw nothing (set in
 * PreConnect and again in PostConnect: the pointer cache replaces the
 * pointer's); resize (may be NULL) is called on a Deactivate-Reactivate. */
void rtc_ignore_updates(rdpUpdate *u, pDesktopResize resize);

/* Connects, then serves the connection's events, 100 ms at most a turn,
 * calling tick(start) after each turn (start: when connected) until it
 * returns non-zero; returns that value, or -1 after printing "ended"
 * when the connection failed or ended. */
int rtc_run(freerdp *inst, int (*tick)(const struct timespec *start));

/* Disconnects (if connected) and frees inst. */
void rtc_free(freerdp *inst);

#endif
