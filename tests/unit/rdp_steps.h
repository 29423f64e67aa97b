/*
 * Table-driven tests of the RDP proxy's channel filters
 * (test_rdp_cliprdr.c, test_rdp_rdpdr.c): a session is a table of
 * steps, each a PDU built by a small function, the direction it goes,
 * and what the filter must answer (its result code, what it forwards,
 * whether it refused, how much it stripped, and any check of its own).
 * Include after <cmocka.h>.
 */
#ifndef PORTCULLIS_TEST_RDP_STEPS_H
#define PORTCULLIS_TEST_RDP_STEPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "le_pdu.h"
#include "rdpproxy/rdp_filter.h"

/* rdp_step.out: forwarded as it came (same length, same bytes) */
#define RDP_STEP_SAME (-1L)

struct rdp_step {
    const char *what; /* said when the step fails */
    int dir;
    void (*build)(struct pdu *p, uint32_t a, uint32_t b);
    uint32_t a, b; /* the builder's arguments */
    int err;       /* the filter's result code */
    long out;      /* length forwarded (0: nothing), or RDP_STEP_SAME */
    bool refused;  /* r->refused set */
    unsigned stripped;
    /* more checks of what was forwarded, or NULL */
    void (*check)(const uint8_t *out, size_t n,
                  const struct rdp_filter_result *r);
};

/* The filter under test, on its state. */
struct rdp_steps_filter {
    int (*run)(void *state, int dir, const uint8_t *in, size_t len,
               uint8_t *out, size_t *outlen, struct rdp_filter_result *r);
    void *state;
};

#define RDP_STEP_EQ(i, s, got, want)                                           \
    do {                                                                       \
        if ((long)(got) != (long)(want)) {                                     \
            fail_msg("step %zu (%s): %s is %ld, not %ld", (i), (s)->what,      \
                     #got, (long)(got), (long)(want));                         \
        }                                                                      \
    } while (0)

static inline void rdp_steps_run(const struct rdp_steps_filter *f,
                                 const struct rdp_step *steps, size_t nsteps)
{
    for (size_t i = 0; i < nsteps; i++) {
        const struct rdp_step *s = &steps[i];
        struct rdp_filter_result r;
        struct pdu p = {.n = 0};
        uint8_t out[sizeof(p.b)];
        size_t n = 12345;
        int e;

        s->build(&p, s->a, s->b);
        e = f->run(f->state, s->dir, p.b, p.n, out, &n, &r);
        RDP_STEP_EQ(i, s, e, s->err);
        if (s->out == RDP_STEP_SAME) {
            RDP_STEP_EQ(i, s, n, p.n);
            if (memcmp(out, p.b, p.n) != 0) {
                fail_msg("step %zu (%s): not forwarded as it came", i, s->what);
            }
        } else {
            RDP_STEP_EQ(i, s, n, s->out);
        }
        if (e != ERR_OK) {
            continue; /* r means nothing then */
        }
        RDP_STEP_EQ(i, s, r.refused != NULL, s->refused);
        RDP_STEP_EQ(i, s, r.stripped, s->stripped);
        if (s->check != NULL) {
            s->check(out, n, &r);
        }
    }
}

#define RDP_STEPS(f, steps)                                                    \
    rdp_steps_run((f), (steps), sizeof(steps) / sizeof((steps)[0]))

#endif
