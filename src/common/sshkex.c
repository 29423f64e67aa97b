/*
 * The first key exchange's KEXINIT flush; see sshkex.h for why.
 *
 * libssh's server.c reports status 0.5 when the client's identification
 * string was read, right before it queues its KEXINIT (ssh_send_kex);
 * with the socket marked writable, the write goes out then instead of
 * waiting for a POLLOUT that comes after the client's KEXINIT was judged.
 */
#include "common/sshkex.h"

#include <string.h>

static void sshkex_on_status(void *userdata, float status)
{
    struct sshkex_flush *f = userdata;

    if (f->session != NULL && status > 0.45f && status < 0.55f) {
        ssh_set_fd_towrite(f->session);
    }
}

void sshkex_flush_begin(struct sshkex_flush *f, ssh_session s)
{
    memset(f, 0, sizeof(*f));
    f->session = s;
    f->cb.userdata = f;
    f->cb.connect_status_function = sshkex_on_status;
    ssh_callbacks_init(&f->cb);
    (void)ssh_set_callbacks(s, &f->cb);
}

void sshkex_flush_end(struct sshkex_flush *f)
{
    f->cb.connect_status_function = NULL;
    f->session = NULL;
}
