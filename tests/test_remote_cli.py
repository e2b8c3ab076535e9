"""One CLI, local or remote (issue 28): each command run through a real `dodas
server` prints what it prints locally on the same deployment (the server's own
state), in text and JSON, and exits alike; inputs are collected by one
function (the same refusals); `logs -f` follows until interrupted and sees a
later destroy; what a server does not offer is refused with the reason."""

from __future__ import annotations

import json
import signal

import psutil
import pytest
from support.clipair import Pair, shown
from support import serverproc
from support.server import TIMEOUT_S, Server, boxes, clean_env
from support.waiting import wait_until


@pytest.fixture
def pair(server, tmp_path) -> Pair:
    client = tmp_path / "client"
    client.mkdir()
    (client / "boxes.yaml").write_text(boxes(n=2))
    (client / "dup.yaml").write_text("n: 1\nn: 2\n")
    (client / "in.yaml").write_text("n: 3\n")
    (client / "warn.yaml").write_text(boxes(n=2).replace("inputs:\n", "inputs:\n    n: {type: integer}\n", 1))
    return Pair(server, client)


#: read-only commands and plans, and their failures: the same bytes and exit code both ways
SAME = [
    ("list",), ("list", "--json"), ("list", "--all"),
    ("status", "cmp"), ("status", "cmp", "--json"), ("status", "nosuch"), ("status", "nosuch", "--json"),
    ("outputs", "cmp"), ("outputs", "cmp", "--json"), ("outputs", "cmp", "address", "--raw"),
    ("outputs", "cmp", "address", "--json"), ("outputs", "cmp", "adress"),
    ("logs", "cmp"), ("logs", "cmp", "--json"), ("logs", "cmp", "--tail", "2"), ("logs", "cmp", "box[1]"),
    ("logs", "cmp", "box", "--since", "1h", "--json"), ("logs", "cmp", "--tail", "0"), ("logs", "cmp", "nope"),
    ("plan", "boxes.yaml", "--name", "cmp"), ("plan", "boxes.yaml", "--name", "cmp", "--json"),
    ("plan", "boxes.yaml", "--name", "cmp", "-i", "n=3", "--detailed-exitcode"),
    ("plan", "boxes.yaml", "--name", "cmp", "-f", "in.yaml", "--json"),
    ("plan", "boxes.yaml", "--name", "new-one"),
    ("plan", "warn.yaml", "--name", "new-one"), ("plan", "warn.yaml", "--name", "new-one", "--json"),
    ("plan", "boxes.yaml", "--name", "cmp", "-f", "dup.yaml"),
    ("plan", "boxes.yaml", "--name", "cmp", "-f", "in.yaml", "-f", "in.yaml"),
    ("plan", "boxes.yaml", "--name", "cmp", "-i", "novalue"),
    ("refresh", "cmp"), ("refresh", "cmp", "--json"),
    ("kubeconfig", "cmp"), ("spark-conf", "cmp", "--json"),
    # what needs confirmation is refused without a terminal, the same way
    ("scale", "cmp", "box", "1"), ("up", "boxes.yaml", "--name", "cmp", "-i", "n=1"), ("destroy", "cmp"),
]


def test_each_command_prints_the_same_locally_and_through_the_server(pair):
    up = pair.remote("up", "boxes.yaml", "--name", "cmp", "--yes", "--json")
    assert up.returncode == 0, (up.stdout, up.stderr, pair.server.tail())
    made = json.loads(up.stdout)
    assert made["status"] == "CREATE_COMPLETE" and made["warnings"] == [] and made["changed"] is True
    assert not (pair.client / "data").exists(), "the client made no state of its own"
    for args in SAME:
        local, remote = shown(pair.local(*args)), shown(pair.remote(*args))
        assert remote == local, (args, local, remote)
        assert "Traceback" not in remote[2]
    # a deployment planned with the template it keeps: named as it was sent (locally: the state's copy)
    kept = pair.remote("plan", "cmp")
    assert kept.returncode == 0 and kept.stdout.startswith("Plan for boxes.yaml: 2 instances"), kept
    assert kept.stdout.split("\n", 1)[1] == pair.local("plan", "cmp").stdout.split("\n", 1)[1]
    # the plan's sections as well as its changes
    text = pair.remote("plan", "boxes.yaml", "--name", "cmp", "-i", "n=3").stdout
    for section in ("Plan for boxes.yaml: 3 instances (3 machines) in 1 waves", "Wave 1:", "Outputs:",
                    "address = get_attribute(box, public_address) (at run time)", "+ box[2]", "Plan: 1 to create"):
        assert section in text, text

    # up again, nothing to change: the same result, and the same progress lines
    local, remote = pair.local("up", "boxes.yaml", "--name", "cmp", "--yes"), pair.remote(
        "up", "boxes.yaml", "--name", "cmp", "--yes")
    assert (remote.returncode, remote.stdout) == (local.returncode, local.stdout) == (
        0, local.stdout), (local, remote)
    assert local.stdout.startswith("cmp: UPDATE_COMPLETE (nothing to change)\n"), local.stdout

    scaled = pair.remote("scale", "cmp", "box", "3", "--yes", "--json")
    assert scaled.returncode == 0, (scaled.stderr, pair.server.tail())
    back = pair.local("scale", "cmp", "box", "2", "--yes", "--json")
    assert back.returncode == 0, back.stderr
    r, lo = json.loads(scaled.stdout), json.loads(back.stdout)
    assert sorted(r) == sorted(lo) and r["status"] == lo["status"] == "UPDATE_COMPLETE"
    assert len(r["outputs"]["address"]["value"]) == 3 and len(lo["outputs"]["address"]["value"]) == 2

    destroyed = pair.remote("destroy", "cmp", "--yes")
    assert shown(destroyed)[:2] == (0, "cmp: DELETE_COMPLETE\n"), (destroyed.stderr, pair.server.tail())
    assert shown(pair.local("destroy", "cmp", "--yes"))[:2] == (0, "cmp: DELETE_COMPLETE\n")
    assert shown(pair.remote("status", "cmp", "--json")) == shown(pair.local("status", "cmp", "--json"))
    # the list through the server names no file of the server's: the kept copy a destroy
    # leaves is "(the server's files)" there, its path in the server's own home here
    remote, local = pair.remote("list", "--all", "--json"), pair.local("list", "--all", "--json")
    assert (remote.returncode, remote.stderr) == (local.returncode, local.stderr) == (0, ""), (remote, local)
    rows = json.loads(local.stdout)
    for row in rows:
        if str(row.get("template") or "").startswith(str(pair.server.home)):
            row["template"] = "(the server's files)"
    assert json.loads(remote.stdout) == rows, (remote.stdout, local.stdout)
    forgot = pair.remote("forget", "cmp")
    assert forgot.returncode == 0 and forgot.stdout.startswith("cmp: forgotten, its records dropped ("), forgot
    assert shown(pair.local("status", "cmp"))[0] == 4, "forgotten on the server is forgotten"


def test_what_a_server_does_not_offer_is_refused_with_the_reason(pair):
    up = pair.remote("up", "boxes.yaml", "--name", "cmp", "--yes", "--quiet")
    assert up.returncode == 0, (up.stderr, pair.server.tail())
    r = pair.remote("unlock", "cmp")
    assert r.returncode == 2 and "through a server, unlock is not needed and not offered" in r.stderr, r.stderr
    r = pair.remote("up", "boxes.yaml", "--name", "cmp", "--parallelism", "2", "--keep-failed")
    assert r.returncode == 2 and "through a server, up takes no --parallelism, --keep-failed" in r.stderr, r.stderr
    r = pair.remote("providers", "--check")
    assert r.returncode == 2 and "providers --check is not offered" in r.stderr, r.stderr
    r = pair.remote("providers", "--json")
    assert r.returncode == 0 and [p["name"] for p in json.loads(r.stdout)] == ["sim"], r.stdout
    # another user may not read it: the same answer as for a name that does not exist; even run in
    # the server's own home, each command asks the server, never reads its database
    other = Pair(pair.server, pair.client, user="bob", remote_home=pair.server.home)
    for args in (("logs", "cmp", "--tail", "1"), ("spark-conf", "cmp"), ("kubeconfig", "cmp"), ("refresh", "cmp"),
                 ("forget", "cmp"), ("status", "cmp"), ("logs", "cmp", "-f")):
        r = other.remote(*args)
        assert r.returncode == 4 and 'no deployment named "cmp"' in r.stderr, (args, r.stderr)


def test_logs_follow_until_interrupted_and_see_a_later_destroy(pair):
    up = pair.remote("up", "boxes.yaml", "--name", "cmp", "--yes", "--quiet")
    assert up.returncode == 0, (up.stderr, pair.server.tail())
    follow = pair.popen(True, "logs", "cmp", "-f", "--tail", "1", "--json")
    try:
        first = json.loads(follow.stdout.readline())  # it has read the events: what follows is new
        assert first["message"] == "complete", first
        destroyed = pair.remote("destroy", "cmp", "--yes", "--quiet")
        assert destroyed.returncode == 0, destroyed.stderr
        last = json.loads(pair.remote("logs", "cmp", "--json", "--tail", "1").stdout)
        seen = [first]
        while seen[-1]["id"] != last["id"]:  # no work was left when it started: it did not stop then
            line = follow.stdout.readline()
            assert line, ("the follower ended", follow.wait(), follow.stderr.read())
            seen.append(json.loads(line))
        assert follow.poll() is None, "still following after the destroy"
    finally:
        follow.send_signal(signal.SIGINT)
        follow.communicate(timeout=TIMEOUT_S)
    assert any(e["phase"] == "state" and e["message"].startswith("deleted") for e in seen), seen
    assert len({e["id"] for e in seen}) == len(seen), "no event twice"


def test_a_broken_stream_is_taken_up_again_and_the_resumed_attempt_recorded(serve, tmp_path):
    """The server is killed (SIGKILL) while `up` follows its work, and started
    again on the same home and port: `up` reconnects, resumes from the last event
    it saw and ends with the deployment made (exit 0); the attempt the dead server
    left is interrupted, the one resumed by the new server's worker is recorded
    with its outcome."""
    first = serve(sim={"create_latency": 4.0})
    client = tmp_path / "client"
    client.mkdir()
    (client / "boxes.yaml").write_text(boxes(n=2))
    pair = Pair(first, client)
    up = pair.popen(True, "up", "boxes.yaml", "--name", "k9", "--yes")
    second = None
    try:
        port = int(first.url.rsplit(":", 1)[1])

        def creating() -> bool:
            """The worker is making the machines (its attempt recorded) and `up` follows
            the event stream (a connection to the server open): on a busy machine
            either may lag behind the deployment's status."""
            r = first.v1("alice", "GET", "/deployments/k9")
            if r.status_code != 200 or r.json()["status"] != "CREATE_IN_PROGRESS" or not r.json()["attempts"]:
                return False
            try:
                conns = psutil.Process(up.pid).net_connections(kind="tcp")
            except psutil.Error:
                return False
            return any(c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED for c in conns)
        wait_until(creating, "the create to start and `up` to follow it")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        second = restart(first)
        pair.server = second
        out, err = up.communicate(timeout=TIMEOUT_S * 4)
        assert up.returncode == 0, (out, err, second.tail())
        assert "k9: CREATE_COMPLETE" in out and "the event stream broke" in err, (out, err)
        assert "Traceback" not in err
        st = json.loads(pair.remote("status", "k9", "--json").stdout)
        assert [a["status"] for a in st["attempts"]] == ["interrupted", "succeeded"], st["attempts"]
        events = [json.loads(line) for line in pair.remote("logs", "k9", "--json").stdout.splitlines()]
        assert any("took over a lock" in e["message"] for e in events), events
    finally:
        if up.poll() is None:
            up.kill()
        if second is not None:
            second.stop()


def restart(dead: Server) -> Server:
    """A server on the home and port of one that was killed, with its configuration."""
    log = dead.home / "server-2.log"
    proc, url = serverproc.start(clean_env(dead.home), log, "--config", str(dead.home / "server.json"),
                                 cwd=dead.home, port=int(dead.url.rsplit(":", 1)[1]))
    return Server(url, dead.home, proc, log, dead.issuer)


def progress(r, name: str) -> list[str]:
    """A command's progress lines (stderr), with its deployment's name, ids and
    figures made alike; sorted, since instances made side by side report in
    either order."""
    import re

    out = []
    for line in r.stderr.splitlines():
        line = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "ID", line.replace(name, "NAME"))
        out.append(re.sub(r"\d+(\.\d+)?", "N", line).rstrip())
    return sorted(x for x in out if x.strip())


def test_progress_is_the_same_locally_and_through_the_server(pair):
    """`up` and `destroy` show the same progress both ways: the remote one replays
    the server's events into the local display."""
    remote = pair.remote("up", "boxes.yaml", "--name", "pr", "--yes")
    local = pair.local("up", "boxes.yaml", "--name", "pl", "--yes")
    assert remote.returncode == local.returncode == 0, (remote.stderr, local.stderr, pair.server.tail())
    assert progress(remote, "pr") == progress(local, "pl") != [], (remote.stderr, local.stderr)
    remote = pair.remote("destroy", "pr", "--yes")
    local = pair.local("destroy", "pl", "--yes")
    assert remote.returncode == local.returncode == 0, (remote.stderr, local.stderr)
    assert progress(remote, "pr") == progress(local, "pl") != [], (remote.stderr, local.stderr)
