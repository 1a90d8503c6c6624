"""The event log over REST and the live event stream (SSE): order, ids, replay, heartbeat, hang-ups."""
from __future__ import annotations

import json

from core.rest import events, models
from core.rest.routes_events import HUB
from test_rest_support import API, basic, rest, wait_for  # noqa: F401  (fixture)


class Stream:
    """An open ``event-stream`` response read message by message (comments kept as ``(":", text)``)."""

    def __init__(self, rest, last_event_id: int | None = None):
        self.conn = rest.connect(timeout=10)
        headers = {"Authorization": basic("admin", rest.password), "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", f"{API}/event-stream", headers=headers)
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.headers["Content-Type"].startswith("text/event-stream")

    def next(self) -> dict:
        fields: dict = {}
        while True:
            line = self.resp.readline().decode().rstrip("\n")
            if not line:
                if fields:
                    return fields
                continue
            name, _, value = line.partition(":")
            fields[name or ":"] = value.strip()

    def next_event(self, code: str) -> dict:
        """Skip to the persisted event with ``code``; returns ``{id, kind, data}``."""
        while True:
            m = self.next()
            if m.get("event") == "event":
                data = json.loads(m["data"])
                if data["event"]["eventType"] == code:
                    return {"id": int(m["id"]), "kind": m["event"], "data": data}

    def close(self) -> None:
        self.conn.close()


def test_events_since_and_limit(rest, client):
    last = client.events("SiteA")[-1].id
    client.create_volume("SiteA/e1", "1MiB")
    client.create_volume("SiteB/e2", "1MiB")  # another array's event: not this array's log
    client.create_volume("SiteA/e3", "1MiB")
    got = rest.ok("GET", f"events?since={last}")
    assert [(e["eventType"], e["componentLocation"]) for e in got] == [("volumeCreated", "e1"),
                                                                        ("volumeCreated", "e3")]
    assert [models.event_from_ws(e) for e in got] == [e for e in client.events("SiteA") if e.id > last]
    assert int(got[0]["sequenceNumber"]) == got[0]["id"] and got[0]["priority"] == "informational"
    assert [e["componentLocation"] for e in rest.ok("GET", f"events?since={last}&limit=1")] == ["e3"]
    r = rest.get("events?limit=0")
    assert r.status == 422 and "'limit'" in r.error["errorMessage"]


def test_stream_carries_this_arrays_changes_with_log_positions(rest, client):
    s = Stream(rest)
    try:
        client.create_volume("SiteB/elsewhere", "1MiB")
        client.create_volume("SiteA/here", "1MiB")
        m = s.next_event("volumeCreated")
        assert m["data"]["event"]["componentLocation"] == "here" and m["data"]["array"] == "SiteA"
        assert m["id"] == client.events("SiteA")[-1].id
        change = s.next()  # the "volume" change that follows, at the same log position
        assert change["event"] == "volume" and int(change["id"]) == m["id"]
        assert json.loads(change["data"])["object"] == "here"
    finally:
        s.close()


def test_reconnecting_with_last_event_id_replays_what_was_missed(rest, client):
    last = client.events("SiteA")[-1].id
    client.create_volume("SiteA/m1", "1MiB")
    client.create_volume("SiteA/m2", "1MiB")
    s = Stream(rest, last_event_id=last)
    try:
        first, second = s.next(), s.next()
        assert [json.loads(m["data"])["event"]["componentLocation"] for m in (first, second)] == ["m1", "m2"]
        assert int(first["id"]) < int(second["id"])
        client.create_volume("SiteA/m3", "1MiB")
        assert s.next_event("volumeCreated")["data"]["event"]["componentLocation"] == "m3"
    finally:
        s.close()


def test_heartbeat_comments_keep_an_idle_stream_open(rest, monkeypatch):
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.1)
    s = Stream(rest)
    try:
        assert s.next() == {":": "heartbeat"}
    finally:
        s.close()


def test_a_client_that_hangs_up_is_unsubscribed(rest, client):
    listeners = lambda: client.call(lambda: rest.runner.app[HUB].listeners)  # noqa: E731
    s = Stream(rest)
    wait_for(lambda: listeners() == 1, what="the stream to register")
    s.close()
    wait_for(lambda: listeners() == 0, what="the stream to be dropped after the hang-up")
