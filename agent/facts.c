/* The announcement's facts; see facts.h. Read afresh at every connect, as
 * addresses change while an agent runs. */
#include "agent/facts.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <jansson.h>

#include "common/err.h"
#include "common/util.h"

#define FACTS_ADDRS_MAX 64
#define FACTS_STR_MAX 128

/* Adds key: s, cut to max bytes at a UTF-8 boundary. */
static int facts_set(json_t *o, const char *key, const char *s, size_t max)
{
    char buf[256];
    size_t n = strlen(s);

    if (n == 0) {
        return ERR_OK;
    }
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    if (n >= sizeof(buf)) {
        n = sizeof(buf) - 1;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* json_string refuses invalid UTF-8: leave such a fact out. */
    json_t *v = json_string(buf);
    if (v == NULL) {
        return ERR_OK;
    }
    return json_object_set_new(o, key, v) == 0 ? ERR_OK : ERR_NOMEM;
}

/* PRETTY_NAME from /etc/os-release, unquoted, into out. */
static void facts_os(char *out, size_t outlen)
{
    uint8_t *data = NULL;
    size_t len = 0;
    char *line, *next, *v;

    out[0] = '\0';
    if (util_read_file("/etc/os-release", 65536, &data, &len) != ERR_OK &&
        util_read_file("/usr/lib/os-release", 65536, &data, &len) != ERR_OK) {
        return;
    }
    for (line = (char *)data; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL) {
            *next++ = '\0';
        }
        if (strncmp(line, "PRETTY_NAME=", 12) != 0) {
            continue;
        }
        v = line + 12;
        if ((v[0] == '"' || v[0] == '\'') && strlen(v) >= 2 &&
            v[strlen(v) - 1] == v[0]) {
            v[strlen(v) - 1] = '\0';
            v++;
        }
        util_strlcpy(out, v, outlen);
        break;
    }
    free(data);
}

static int facts_addresses(json_t *o)
{
    struct ifaddrs *ifa = NULL, *i;
    char buf[INET6_ADDRSTRLEN];
    json_t *arr = json_array(), *s;
    const void *a;

    if (arr == NULL) {
        return ERR_NOMEM;
    }
    if (getifaddrs(&ifa) == 0) {
        for (i = ifa; i != NULL && json_array_size(arr) < FACTS_ADDRS_MAX;
             i = i->ifa_next) {
            if (i->ifa_addr == NULL || (i->ifa_flags & IFF_LOOPBACK)) {
                continue;
            }
            if (i->ifa_addr->sa_family == AF_INET) {
                a = &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr;
            } else if (i->ifa_addr->sa_family == AF_INET6) {
                a = &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr;
            } else {
                continue;
            }
            if (inet_ntop(i->ifa_addr->sa_family, a, buf, sizeof(buf)) ==
                NULL) {
                continue;
            }
            bool dup = false;
            for (size_t k = 0; k < json_array_size(arr); k++) {
                if (strcmp(json_string_value(json_array_get(arr, k)), buf) ==
                    0) {
                    dup = true;
                }
            }
            if (!dup && (s = json_string(buf)) != NULL) {
                json_array_append_new(arr, s);
            }
        }
        freeifaddrs(ifa);
    }
    return json_object_set_new(o, "addresses", arr) == 0 ? ERR_OK : ERR_NOMEM;
}

int facts_announcement(const char *id, const char *name,
                       const char *const *tags, size_t ntags, char **out)
{
    char host[256] = "", os[FACTS_STR_MAX + 1], kernel[2 * 65 + 2];
    struct utsname u;
    json_t *o = json_object(), *t = json_array();
    int r = ERR_NOMEM;

    *out = NULL;
    if (o == NULL || t == NULL) {
        goto out;
    }
    if (gethostname(host, sizeof(host) - 1) != 0) {
        host[0] = '\0';
    }
    host[sizeof(host) - 1] = '\0';
    facts_os(os, sizeof(os));
    if ((r = facts_set(o, "id", id, 64)) != ERR_OK ||
        (r = facts_set(o, "name", name != NULL ? name : host, 128)) != ERR_OK ||
        (r = facts_set(o, "hostname", host, 255)) != ERR_OK ||
        (r = facts_set(o, "os", os, 128)) != ERR_OK) {
        goto out;
    }
    if (uname(&u) == 0) {
        snprintf(kernel, sizeof(kernel), "%s %s", u.sysname, u.release);
        if ((r = facts_set(o, "kernel", kernel, 128)) != ERR_OK ||
            (r = facts_set(o, "arch", u.machine, 32)) != ERR_OK) {
            goto out;
        }
    }
    if ((r = facts_addresses(o)) != ERR_OK ||
        (r = facts_set(o, "version", PORTCULLIS_VERSION, 64)) != ERR_OK) {
        goto out;
    }
    for (size_t i = 0; i < ntags; i++) {
        json_t *s = json_string(tags[i]);
        if (s == NULL || json_array_append_new(t, s) != 0) {
            r = ERR_INVALID;
            goto out;
        }
    }
    if (json_object_set(o, "tags", t) != 0) {
        r = ERR_NOMEM;
        goto out;
    }
    *out = json_dumps(o, JSON_COMPACT);
    r = *out == NULL ? ERR_NOMEM : ERR_OK;
    if (r == ERR_OK && strlen(*out) > FACTS_JSON_MAX) {
        free(*out);
        *out = NULL;
        r = ERR_TOO_LONG;
    }
out:
    json_decref(t);
    json_decref(o);
    return r;
}
