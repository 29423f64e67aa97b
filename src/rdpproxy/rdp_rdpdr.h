/*
 * The device-redirection filter of the RDP proxy ([MS-RDPEFS] on the
 * static virtual channel "rdpdr"). rdpdr carries every kind of device
 * in one channel (and Windows servers want it joined for audio too), so
 * the access profile's drive and printer switches are held per device:
 *
 *  - the client's Device List Announce keeps only the devices of a type
 *    the profile allows (drives: RDPDR_DTYP_FILESYSTEM, printers:
 *    RDPDR_DTYP_PRINT); serial and parallel ports and smart cards never
 *    cross; the IDs kept are remembered;
 *  - a Device I/O Request from the target, and a completion from the
 *    client, must name a device that was announced and kept (so a
 *    stripped drive cannot be used by its ID);
 *  - printer-component PDUs cross only with printers allowed;
 *  - malformed PDUs are refused.
 *
 * Pure like rdp_cliprdr.h: unit-tested (test_rdp_rdpdr) and fuzzed
 * (fuzz_rdp_rdpdr).
 */
#ifndef PORTCULLIS_RDP_RDPDR_H
#define PORTCULLIS_RDP_RDPDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rdpproxy/rdp_filter.h"

/* Devices remembered; more in one session are stripped. */
#define RDP_DR_DEVICES_MAX 64

/* Directions, as rdp_cliprdr.h: 0 from the client, 1 from the target. */
#define RDP_DR_UP 0
#define RDP_DR_DOWN 1

#define RDP_DR_CTYP_CORE 0x4472
#define RDP_DR_CTYP_PRN 0x5052
#define RDP_DR_DEVICELIST_ANNOUNCE 0x4441
#define RDP_DR_DEVICELIST_REMOVE 0x444D
#define RDP_DR_DEVICE_IOREQUEST 0x4952
#define RDP_DR_DEVICE_IOCOMPLETION 0x4943

#define RDP_DR_DTYP_SERIAL 0x01
#define RDP_DR_DTYP_PARALLEL 0x02
#define RDP_DR_DTYP_PRINT 0x04
#define RDP_DR_DTYP_FILESYSTEM 0x08
#define RDP_DR_DTYP_SMARTCARD 0x20

struct rdp_rdpdr {
    bool drive, printer;              /* what may cross */
    uint32_t dev[RDP_DR_DEVICES_MAX]; /* devices announced and kept */
    size_t ndev;
};

void rdp_rdpdr_init(struct rdp_rdpdr *d, bool drive, bool printer);

/*
 * One channel message, as rdp_cliprdr_filter: out (at least len bytes)
 * receives what to forward, *outlen its length (0: nothing, r->refused
 * says why). ERR_OK; ERR_PROTO for a malformed PDU (nothing forwarded,
 * the state unchanged); ERR_INVALID for bad arguments.
 */
int rdp_rdpdr_filter(struct rdp_rdpdr *d, int dir, const uint8_t *in,
                     size_t len, uint8_t *out, size_t *outlen,
                     struct rdp_filter_result *r);

#endif
