/*
 * Building little-endian PDUs in unit tests (RDP's virtual channel
 * messages: test_rdp_cliprdr.c, test_rdp_rdpdr.c).
 */
#ifndef PORTCULLIS_TEST_LE_PDU_H
#define PORTCULLIS_TEST_LE_PDU_H

#include <stddef.h>
#include <stdint.h>

/* A PDU under construction. */
struct pdu {
    uint8_t b[4096];
    size_t n;
};

static inline void p16(struct pdu *p, uint16_t v)
{
    p->b[p->n++] = (uint8_t)v;
    p->b[p->n++] = (uint8_t)(v >> 8);
}

static inline void p32(struct pdu *p, uint32_t v)
{
    p16(p, (uint16_t)v);
    p16(p, (uint16_t)(v >> 16));
}

static inline uint32_t g32(const uint8_t *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
           ((uint32_t)b[3] << 24);
}

#endif
