/* Scaffolding while the hub is written (replaced in this change). */
#include "hub/hub.h"

#include <stdlib.h>

#include <libwebsockets.h>

#include "common/err.h"

struct hub {
    struct lws_protocols proto;
};

static int hub_callback(struct lws *wsi, enum lws_callback_reasons reason,
                        void *user, void *in, size_t len)
{
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION) {
        return 1;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

int hub_start(struct hub **out, const struct config *cfg, struct loop *loop,
              struct store *store)
{
    struct hub *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        return ERR_NOMEM;
    }
    h->proto.name = "portcullis-agent.v1";
    h->proto.callback = hub_callback;
    h->proto.user = h;
    *out = h;
    return ERR_OK;
}

void hub_stop(struct hub *h) { free(h); }

const struct lws_protocols *hub_lws_protocol(struct hub *h)
{
    return &h->proto;
}

void hub_changed(struct hub *h, unsigned what) {}
bool hub_agent_online(const struct hub *h, const char *agent_id)
{
    return false;
}
size_t hub_agents_online(const struct hub *h) { return 0; }

struct hub_req *hub_connect(struct hub *h, const char *agent_id,
                            enum hub_stream_kind kind, const char *host,
                            int port, const char *orig, int orig_port, int fd,
                            hub_connect_fn fn, void *arg)
{
    fn(arg, false, "agents are not supported yet");
    return NULL;
}

void hub_connect_cancel(struct hub_req *r) {}
void hub_set_presence_fn(struct hub *h, hub_presence_fn fn, void *arg) {}
