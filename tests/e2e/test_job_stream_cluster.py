"""Watching a job on a cluster (docs/api.md "Watching a job"): a job
queued through node B runs on node A, which holds its agent; a watcher
on B gets its output from the store as A records it, and the end; a
watcher on A gets it pushed. Both see the same bytes."""
import http.client
import json
import time

from agentlib import make_agent, netns, wait_agent  # noqa: F401
from clusterlib import pg  # noqa: F401
from test_cluster import cluster, url  # noqa: F401
from test_job_stream import Watch, text_of
from pclib import uniq
from test_jobs import API, SCRIPTS


def api(pc, host, method, path, body=None, token=None):
    conn = http.client.HTTPConnection(host, pc.http_port, timeout=30)
    hdrs = {"Content-Type": "application/json"}
    if token:
        hdrs["Authorization"] = "Bearer " + token
    conn.request(method, path, body=json.dumps(body) if body else None,
                 headers=hdrs)
    r = conn.getresponse()
    out = json.loads(r.read() or b"null")
    conn.close()
    return r.status, out


def login_token(pc, host, user, pw):
    """A session token of user, logged in through pc's API."""
    status, out = api(pc, host, "POST", API + "/login",
                      {"username": user, "password": pw})
    assert status == 200, out
    return out["data"]["token"]


def admin_token(pc, host):
    """A session token of a new administrator of pc's (shared) store."""
    user, pw = uniq("adm"), "pw-" + uniq()
    pc.user_add(user, password=pw)
    assert pc.cli("role", "grant", "--user", user, "--role",
                  "administrator")[0] == 0
    return login_token(pc, host, user, pw)


def test_watcher_on_another_node_follows_through_the_store(cluster,
                                                           make_agent):
    a, b, ns = cluster
    host = ns.host_ip
    ag = make_agent(a, netns=ns, server=url(a, ns), conf=list(SCRIPTS))
    wait_agent(b, ag.id)
    tok = admin_token(b, host)  # an administrator of the shared store
    status, out = api(b, host, "POST", API + "/jobs",
                      {"agents": [ag.id], "interpreter": "sh",
                       "script": "echo one\nsleep 2\necho two >&2\n"
                                 "echo three\nexit 5\n",
                       "timeout": 30}, token=tok)
    assert status == 202, out
    jid = out["data"]["jobs"][0]["id"]
    on_b = Watch(b, jid, tok, host=host)
    on_a = Watch(a, jid, tok, host=host)
    assert on_b.head() == 200 and on_a.head() == 200
    # the first line reaches b's watcher while the job still runs
    t0 = time.monotonic()
    while "one\n" not in text_of(on_b.events, "stdout"):
        assert on_b.next_event() is not None, on_b.events
    assert time.monotonic() - t0 < 2.5
    eb, ea = on_b.all_events(), on_a.all_events()
    for ev in (eb, ea):
        assert ev[0][1] == "job" and ev[-1][1] == "end", ev
        end = ev[-1][2]
        assert (end["status"], end["exit_code"]) == ("failed", 5), end
        assert text_of(ev, "stdout") == "one\nthree\n"
        assert text_of(ev, "stderr") == "two\n"
    assert "job %s: running" % jid in a.log_text()


def test_command_through_the_node_that_does_not_hold_the_agent(cluster,
                                                               make_agent):
    """POST /agents/{id}/commands on node B for an agent node A holds (the
    web UI's "run" button on B): B queues the job for A, A runs it, and
    B's answer waits for the end and carries the output, as for an agent
    of its own (it was "agent offline" before). Without waiting: 202
    queued, then GET /jobs/{id} on B shows it ended."""
    a, b, ns = cluster
    host = ns.host_ip
    ag = make_agent(a, netns=ns, server=url(a, ns), conf=list(SCRIPTS))
    wait_agent(b, ag.id)
    tok = admin_token(b, host)
    t0 = time.monotonic()
    status, out = api(b, host, "POST", API + "/agents/%s/commands" % ag.id,
                      {"interpreter": "sh",
                       "script": "echo held-by-a; echo err >&2; exit 3\n",
                       "timeout": 20}, token=tok)
    assert status == 200, out
    job = out["data"]
    assert (job["status"], job["exit_code"]) == ("failed", 3), job
    assert job["stdout"] == "held-by-a\n" and job["stderr"] == "err\n", job
    assert time.monotonic() - t0 < 10
    assert "job %s: running" % job["id"] in a.log_text()
    assert "job %s: running" % job["id"] not in b.log_text()
    # without waiting
    status, out = api(b, host, "POST", API + "/agents/%s/commands" % ag.id,
                      {"interpreter": "sh", "script": "echo later\n",
                       "wait": False}, token=tok)
    assert status == 202 and out["data"]["status"] == "queued", out
    jid = out["data"]["id"]
    deadline = time.monotonic() + 15
    while True:
        status, out = api(b, host, "GET", API + "/jobs/" + jid, token=tok)
        assert status == 200, out
        if out["data"]["status"] not in ("queued", "running") or \
                time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert out["data"]["status"] == "ok" and \
        out["data"]["stdout"] == "later\n", out
