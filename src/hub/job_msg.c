/*
 * The result stream of a job (job_msg.h).
 */
#include "hub/job_msg.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

static int job_msg_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int job_msg_fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && whylen > 0) {
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return ERR_INVALID;
}

void job_msg_init(struct job_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->exit_code = -1;
}

int job_msg_feed(struct job_msg *m, const uint8_t *data, size_t len,
                 job_msg_chunk_fn fn, void *arg, char *why, size_t whylen)
{
    while (len > 0) {
        size_t take;

        if (m->done) {
            return job_msg_fail(why, whylen, "bytes after the result");
        }
        if (m->need == 0) {
            /* a frame header */
            take = sizeof(m->head) - m->head_len;
            take = take < len ? take : len;
            memcpy(m->head + m->head_len, data, take);
            m->head_len += take;
            data += take;
            len -= take;
            if (m->head_len < sizeof(m->head)) {
                return ERR_OK;
            }
            m->head_len = 0;
            m->type = m->head[0];
            m->need = (uint32_t)m->head[1] << 24 | (uint32_t)m->head[2] << 16 |
                      (uint32_t)m->head[3] << 8 | (uint32_t)m->head[4];
            if (m->type == 'O' || m->type == 'E') {
                size_t *tot = m->type == 'O' ? &m->out_len : &m->err_len;
                if (m->need == 0 || m->need > JOB_MSG_CHUNK_MAX) {
                    return job_msg_fail(why, whylen,
                                        "an output frame of %u bytes",
                                        (unsigned)m->need);
                }
                if (*tot + m->need > JOB_MSG_OUT_MAX) {
                    return job_msg_fail(why, whylen,
                                        "more output than the cap");
                }
                *tot += m->need;
            } else if (m->type == 'R') {
                if (m->need == 0 || m->need > JOB_MSG_HEADER_MAX) {
                    return job_msg_fail(why, whylen,
                                        "a result frame of %u bytes",
                                        (unsigned)m->need);
                }
            } else {
                return job_msg_fail(why, whylen, "unknown frame type 0x%02x",
                                    m->type);
            }
            continue;
        }
        take = m->need < len ? m->need : len;
        if (m->type == 'R') {
            memcpy(m->hdr + m->hdr_len, data, take);
            m->hdr_len += take;
        } else if (fn != NULL) {
            fn(arg, m->type == 'O' ? 1 : 2, data, take);
        }
        m->need -= (uint32_t)take;
        data += take;
        len -= take;
        if (m->need == 0 && m->type == 'R') {
            m->hdr[m->hdr_len] = '\0';
            m->done = true;
        }
    }
    return ERR_OK;
}

static bool job_msg_len_is(const json_t *h, const char *key, size_t want)
{
    const json_t *v = json_object_get(h, key);

    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           (size_t)json_integer_value(v) == want;
}

int job_msg_end(struct job_msg *m, bool unknown_ok, char *why, size_t whylen)
{
    static const char *const known[] = {"ok", "failed", "timeout", "refused",
                                        NULL};
    json_error_t je;
    json_t *h, *v;
    const char *st;
    bool good = false;

    if (!m->done) {
        return job_msg_fail(why, whylen, "the stream ended before the result");
    }
    h = json_loadb(m->hdr, m->hdr_len, JSON_REJECT_DUPLICATES, &je);
    st = json_string_value(json_object_get(h, "status"));
    for (size_t i = 0; st != NULL && known[i] != NULL; i++) {
        good = good || strcmp(st, known[i]) == 0;
    }
    if (st != NULL && unknown_ok && strcmp(st, "unknown") == 0) {
        good = true;
    }
    if (!json_is_object(h) || !good) {
        json_decref(h);
        return job_msg_fail(why, whylen, "no known status in the result");
    }
    if (!job_msg_len_is(h, "stdout_len", m->out_len) ||
        !job_msg_len_is(h, "stderr_len", m->err_len)) {
        json_decref(h);
        return job_msg_fail(why, whylen,
                            "the result's lengths differ from the output");
    }
    snprintf(m->status, sizeof(m->status), "%s", st);
    v = json_object_get(h, "exit_code");
    m->exit_code = json_is_integer(v) && json_integer_value(v) >= 0 &&
                           json_integer_value(v) <= 255
                       ? (int)json_integer_value(v)
                       : -1;
    v = json_object_get(h, "signal");
    m->signal = json_is_integer(v) && json_integer_value(v) > 0 &&
                        json_integer_value(v) < 128
                    ? (int)json_integer_value(v)
                    : 0;
    m->sudo = json_is_string(json_object_get(h, "sudo"));
    v = json_object_get(h, "why");
    snprintf(m->why, sizeof(m->why), "%s",
             json_is_string(v) ? json_string_value(v) : "");
    for (char *p = m->why; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = ' ';
        }
    }
    json_decref(h);
    return ERR_OK;
}
