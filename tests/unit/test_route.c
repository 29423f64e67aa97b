/*
 * Unit tests for src/route/route.c: which route strings an asset may
 * have and what each refusal says (route_parse), and route_connect
 * through a real loop: a direct route to a listening loopback port hands
 * back a connected socket, to a closed port the connect error; an agent
 * route without that agent fails at once with the hub's reason; a
 * cancelled request and one left at routes_free call nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/loop.h"
#include "route/route.h"

static void test_parse_accepts(void **state)
{
    struct route rt;
    char why[200] = "";

    (void)state;
    assert_int_equal(route_parse("direct", &rt, why, sizeof(why)), ERR_OK);
    assert_string_equal(route_kind_name(&rt), "direct");
    assert_string_equal(rt.text, "direct");
    assert_string_equal(rt.name, "");
    /* no route is the direct one, and says so in report rows */
    assert_int_equal(route_parse("", &rt, why, sizeof(why)), ERR_OK);
    assert_string_equal(route_kind_name(&rt), "direct");
    assert_string_equal(rt.text, "direct");
    assert_int_equal(route_parse(NULL, &rt, why, sizeof(why)), ERR_OK);
    assert_string_equal(rt.text, "direct");

    assert_int_equal(route_parse("agent:a1", &rt, why, sizeof(why)), ERR_OK);
    assert_string_equal(route_kind_name(&rt), "agent");
    assert_string_equal(rt.name, "a1");
    assert_string_equal(rt.text, "agent:a1");
    assert_int_equal(route_parse("agent:Web-01.site_b", &rt, why, sizeof(why)),
                     ERR_OK);
    assert_string_equal(rt.name, "Web-01.site_b");
    {
        char id[80];

        memset(id, 'x', 64);
        id[64] = '\0';
        char text[90];
        snprintf(text, sizeof(text), "agent:%s", id);
        assert_int_equal(route_parse(text, &rt, why, sizeof(why)), ERR_OK);
        assert_string_equal(rt.name, id);
    }
}

/* Each refusal: ERR_INVALID, no kind, the text as given, a reason. */
static void refused(const char *text, const char *want_why)
{
    struct route rt;
    char why[200] = "";

    assert_int_equal(route_parse(text, &rt, why, sizeof(why)), ERR_INVALID);
    assert_null(rt.kind);
    assert_string_equal(route_kind_name(&rt), "invalid");
    assert_string_equal(why, want_why);
}

static void test_parse_refuses(void **state)
{
    char text[300];

    (void)state;
    refused("node:node2", "not supported yet");
    refused("peer:", "not a valid peer name: ''");
    refused("peer:a b", "not a valid peer name: 'a b'");
    refused("cluster", "not supported yet");
    refused("Direct", "not supported yet");
    refused("direct ", "not supported yet");
    refused(" direct", "not supported yet");
    refused("directx", "not supported yet");
    refused("agent", "not supported yet");
    refused("agent:", "not a valid agent name: ''");
    refused("agent:bad id", "not a valid agent name: 'bad id'");
    refused("agent:a/b", "not a valid agent name: 'a/b'");
    refused("agent:a:b", "not a valid agent name: 'a:b'");
    memset(text, 0, sizeof(text));
    memcpy(text, "agent:", 6);
    memset(text + 6, 'x', 65);
    refused(text, "not a valid agent name: "
                  "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                  "xxxxxxxx'");
    memset(text, 'x', 200);
    text[200] = '\0';
    refused(text, "route is longer than 160 bytes");
    {
        struct route rt;
        char why[200];

        /* the report row shows what the asset says */
        assert_int_equal(route_parse("node:node2", &rt, why, sizeof(why)),
                         ERR_INVALID);
        assert_string_equal(rt.text, "node:node2");
        assert_int_equal(route_parse("peer:plant-7", &rt, why, sizeof(why)),
                         ERR_OK);
        assert_string_equal(route_kind_name(&rt), "peer");
        assert_string_equal(rt.name, "plant-7");
    }
}

struct cfx {
    struct loop *loop;
    struct config cfg;
    struct routes *rs;
    int calls;
    int fd;
    char why[300];
};

static int setup(void **state)
{
    static struct cfx fx;

    memset(&fx, 0, sizeof(fx));
    fx.fd = -2;
    fx.cfg.connect_timeout_seconds = 10;
    fx.loop = loop_new();
    assert_non_null(fx.loop);
    fx.rs = routes_new(fx.loop, &fx.cfg, NULL);
    assert_non_null(fx.rs);
    *state = &fx;
    return 0;
}

static int teardown(void **state)
{
    struct cfx *fx = *state;

    routes_free(fx->rs);
    loop_free(fx->loop);
    if (fx->fd >= 0) {
        close(fx->fd);
    }
    return 0;
}

static void on_done(void *arg, const struct route_result *r)
{
    struct cfx *fx = arg;

    fx->calls++;
    fx->fd = r->fd;
    snprintf(fx->why, sizeof(fx->why), "%s",
             r->why != NULL ? r->why : "(null)");
    loop_stop(fx->loop);
}

static void on_deadline(struct loop *l, void *arg)
{
    (void)arg;
    loop_stop(l);
}

/* Runs the loop until on_done or ms pass. */
static void run_for(struct cfx *fx, int64_t ms)
{
    uint64_t t = loop_add_timer(fx->loop, ms, on_deadline, fx);

    assert_int_equal(loop_run(fx->loop), ERR_OK);
    loop_del_timer(fx->loop, t);
}

/* A loopback listener; returns its fd and port. */
static int listener(int *port)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static void test_direct_connects(void **state)
{
    struct cfx *fx = *state;
    struct route rt;
    char why[200];
    int lfd, port, peer;
    struct route_req *rq;

    lfd = listener(&port);
    assert_int_equal(route_parse("", &rt, why, sizeof(why)), ERR_OK);
    rq = route_connect(fx->rs, &rt, "127.0.0.1", port, "192.0.2.9", 5555,
                       on_done, fx);
    assert_non_null(rq); /* resolving: not finished yet */
    assert_int_equal(fx->calls, 0);
    run_for(fx, 5000);
    assert_int_equal(fx->calls, 1);
    assert_true(fx->fd >= 0);
    assert_string_equal(fx->why, "(null)");
    /* a real connection: the listener accepts it and bytes pass */
    peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    assert_int_equal(write(fx->fd, "hi", 2), 2);
    {
        char b[2];

        assert_int_equal(read(peer, b, 2), 2);
        assert_memory_equal(b, "hi", 2);
    }
    close(peer);
    close(lfd);
}

static void test_direct_refused(void **state)
{
    struct cfx *fx = *state;
    struct route rt;
    char why[200];
    int lfd, port;

    lfd = listener(&port);
    close(lfd); /* nothing listens there now */
    assert_int_equal(route_parse("direct", &rt, why, sizeof(why)), ERR_OK);
    (void)route_connect(fx->rs, &rt, "127.0.0.1", port, "192.0.2.9", 5555,
                        on_done, fx);
    run_for(fx, 5000);
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->fd, -1);
    assert_string_equal(fx->why, "Connection refused");
}

/* No hub (or an agent that is not connected): the reason comes at once,
 * before route_connect returns, which then returns NULL. */
static void test_agent_not_connected(void **state)
{
    struct cfx *fx = *state;
    struct route rt;
    char why[200];

    assert_int_equal(route_parse("agent:a1", &rt, why, sizeof(why)), ERR_OK);
    assert_null(route_connect(fx->rs, &rt, "10.0.0.5", 22, "192.0.2.9", 5555,
                              on_done, fx));
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->fd, -1);
    assert_string_equal(fx->why,
                        "through agent 'a1': agent 'a1' is not connected");
}

/* A refused route never connects, whatever the caller does. */
static void test_refused_route_does_not_connect(void **state)
{
    struct cfx *fx = *state;
    struct route rt;
    char why[200];

    assert_int_equal(route_parse("node:n2", &rt, why, sizeof(why)),
                     ERR_INVALID);
    assert_null(route_connect(fx->rs, &rt, "127.0.0.1", 22, "192.0.2.9", 5555,
                              on_done, fx));
    assert_int_equal(fx->calls, 1);
    assert_int_equal(fx->fd, -1);
    assert_string_equal(fx->why, "unsupported route");
    /* a peer route without the store (routes_set_store): one clear line */
    assert_int_equal(route_parse("peer:n2", &rt, why, sizeof(why)), ERR_OK);
    assert_null(route_connect(fx->rs, &rt, "127.0.0.1", 22, "192.0.2.9", 5555,
                              on_done, fx));
    assert_int_equal(fx->calls, 2);
    assert_int_equal(fx->fd, -1);
    assert_string_equal(fx->why, "peer routes are not available here");
}

/* Cancelled while resolving, and one left pending at routes_free: no
 * callback ever, and the late answers touch nothing freed (ASan). */
static void test_cancel(void **state)
{
    struct cfx *fx = *state;
    struct route rt;
    char why[200];
    struct route_req *rq;
    int lfd, port;

    lfd = listener(&port);
    assert_int_equal(route_parse("direct", &rt, why, sizeof(why)), ERR_OK);
    rq = route_connect(fx->rs, &rt, "127.0.0.1", port, "192.0.2.9", 5555,
                       on_done, fx);
    assert_non_null(rq);
    route_cancel(rq);
    rq = route_connect(fx->rs, &rt, "localhost", port, "192.0.2.9", 5555,
                       on_done, fx);
    assert_non_null(rq);
    routes_free(fx->rs);
    fx->rs = NULL;
    run_for(fx, 300); /* the resolver answers meanwhile */
    assert_int_equal(fx->calls, 0);
    close(lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test_setup_teardown(test_direct_connects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_not_connected, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_route_does_not_connect,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
