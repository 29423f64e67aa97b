"""The browser terminal on a cluster (docs/api.md "The browser terminal"):
a page served by node B opens a shell on an asset behind an agent that
node A holds. The terminal's session is an SSH session of node B, which
reaches the agent through A like any other session (the `node:` hop,
test_cluster.py); the report row says both nodes."""
import json
import time

from agentlib import NsTarget, make_agent, netns  # noqa: F401
from clusterlib import pg  # noqa: F401
from pclib import uniq
from test_cluster import (cluster, nodes, url,  # noqa: F401
                          user_of_an_asset_behind_a)
from test_job_stream_cluster import login_token
from test_jobs import API


def test_terminal_on_b_to_an_agent_held_by_a(cluster, make_agent, pctarget,
                                             tmp_path):
    import websocket
    a, b, ns = cluster
    target = NsTarget(tmp_path / "target", ns, *pctarget)
    target.start()
    ws = None
    try:
        ag, asset_id, user, pw = user_of_an_asset_behind_a(
            a, b, ns, make_agent, target)
        tok = login_token(b, ns.host_ip, user, pw)
        ws = websocket.create_connection(
            "ws://%s:%d%s/terminal" % (ns.host_ip, b.http_port, API),
            subprotocols=["portcullis-terminal.v1"], timeout=30)
        ws.send(json.dumps({"type": "auth", "token": tok, "asset": asset_id,
                            "cols": 80, "rows": 24}))
        op, data = ws.recv_data()
        assert op == websocket.ABNF.OPCODE_TEXT, (op, data)
        assert json.loads(data) == {"type": "ready"}, data
        ws.send_binary(b"echo term-$((6*7)); grep -c pcvn /proc/net/dev;"
                       b" exit\n")
        seen = b""
        deadline = time.monotonic() + 20
        ended = None
        while time.monotonic() < deadline and ended is None:
            op, data = ws.recv_data()
            if op == websocket.ABNF.OPCODE_BINARY:
                seen += data
            elif op == websocket.ABNF.OPCODE_TEXT:
                ended = json.loads(data)
            else:
                break
        text = seen.decode(errors="replace")
        assert "term-42" in text, (text, b.log_tail(), a.log_tail())
        # ran inside the agent's namespace: its interface is there
        assert "\n1\r" in text or "\n1\n" in text, text
        assert ended == {"type": "exit", "status": 0}, (ended, text)
        row = b.session_of(user, "ok", kind="shell")
        assert row["route"] == "agent:%s" % ag.id, row
        rows = nodes(b)
        assert row["node"] == rows["b"]["id"], row
        assert row["agent_node"] == rows["a"]["id"], row
    finally:
        if ws is not None:
            ws.close()
        target.stop()
