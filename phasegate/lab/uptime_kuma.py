"""Lab component `uptime_kuma`: a stand-in for Uptime Kuma 2's Socket.IO API (the reads the suite makes).

No Uptime Kuma installs here (it is a Node.js application shipped as a container image and a git
checkout; no Debian package, and npm/PyPI carry clients, not the server: see docs/design.md), so this
speaks the protocol its UI speaks: Engine.IO v4 long-polling on `/socket.io/` (open packet with `sid`,
`pingInterval`, `pingTimeout`; POST to send, GET to receive; packets separated by \\x1e; ping `2`,
pong `3`) carrying Socket.IO v5 packets (`40` connect, `42[id][event, ...]`, `43<id>[answer]`).
Events (louislam/uptime-kuma server/server.js): on connection `info` and `loginRequired`; `login`
({username, password, token}) acknowledged `{ok, token}` or `{ok: false, msg}`, then `monitorList`
pushed; `getMonitorBeats(monitorID, period)` acknowledged `{ok, data: [heartbeat rows]}` with every
beat newer than `period` hours, oldest first, rows with `time` "YYYY-MM-DD HH:MM:SS.fff" (UTC).
Any other event is acknowledged `{ok: false, msg}` and recorded (a write the suite must never make).

The monitor is the one the real `external-monitor-sync` CronJob creates from Forgejo's ingress
annotation: `[External] forgejo`, `https://forgejo.viktorbarzin.me/api/healthz`, every 300 s, 3 retries,
200-299 (stacks/uptime-kuma/modules/uptime-kuma/main.tf:347,440-451 @ 5d22b449; FJ:190 @ 5d22b449).
"""

from __future__ import annotations

import datetime as dt
import json
import queue
import secrets as _secrets
import threading
import time

from phasegate.lab.loopback import Handler, LoopbackStandin, Write

SEP = "\x1e"
PING_INTERVAL_MS = 1000  # the real server's is 25000; a short one keeps the lab's long-polls short
UTC = dt.UTC


def row_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class _Session:
    def __init__(self):
        self.out: queue.Queue[str] = queue.Queue()
        self.user = ""
        self.connected = False


class _KumaHandler(Handler):
    def _session(self):
        sid = self.query().get("sid", "")
        return sid, self.standin.sessions.get(sid)

    def do_GET(self):
        if self.route != "/socket.io/":
            return self.send(404, b"Not Found")
        q = self.query()
        if q.get("EIO") != "4" or q.get("transport") != "polling":
            return self.send_json(400, {"code": 5, "message": "Unsupported protocol version"})
        sid, session = self._session()
        if not sid:
            sid = _secrets.token_urlsafe(15)
            self.standin.sessions[sid] = _Session()
            return self.send(200, ("0" + json.dumps({"sid": sid, "upgrades": ["websocket"],
                                                      "pingInterval": PING_INTERVAL_MS, "pingTimeout": 20000,
                                                      "maxPayload": 1000000})).encode())
        if session is None:
            return self.send_json(400, {"code": 1, "message": "Session ID unknown"})
        packets = []
        try:
            packets.append(session.out.get(timeout=PING_INTERVAL_MS / 1000))
            while True:
                packets.append(session.out.get_nowait())
        except queue.Empty:
            pass
        self.send(200, SEP.join(packets or ["2"]).encode())

    def do_POST(self):
        sid, session = self._session()
        if self.route != "/socket.io/" or session is None:
            return self.send_json(400, {"code": 1, "message": "Session ID unknown"})
        for packet in self.body().decode().split(SEP):
            self.standin.handle(session, packet)
        self.send(200, b"ok", "text/html")


class UptimeKumaStandin(LoopbackStandin):
    name = "uptime_kuma"

    def __init__(self, username: str = "admin", password: str = ""):
        self.username = username
        self.password = password
        self.monitors: dict[int, dict] = {}
        self.beats: dict[int, list[tuple[float, int, str]]] = {}
        self.sessions: dict[str, _Session] = {}
        self.requests: list[tuple[str, str]] = []
        self.refused_events: list[str] = []
        self._lock = threading.Lock()

    # -- data ------------------------------------------------------------------------
    def add_monitor(self, name: str, url: str, interval: int = 300, retries: int = 3) -> int:
        mid = len(self.monitors) + 1
        self.monitors[mid] = {"id": mid, "name": name, "url": url, "type": "http", "interval": interval,
                              "maxretries": retries, "accepted_statuscodes": ["200-299"], "active": True}
        self.beats[mid] = []
        return mid

    def set_beats(self, monitor_id: int, beats: list[tuple[float, int, str]]) -> None:
        with self._lock:
            self.beats[monitor_id] = sorted(beats)

    # -- protocol ----------------------------------------------------------------------
    def handle(self, s: _Session, packet: str) -> None:
        if packet == "3" or not packet:  # pong
            return
        if packet.startswith("40"):
            s.connected = True
            s.out.put("40" + json.dumps({"sid": _secrets.token_urlsafe(15)}))
            s.out.put("42" + json.dumps(["info", {"version": "2.0.2", "latestVersion": "2.0.2",
                                                  "primaryBaseURL": None, "serverTimezone": "UTC"}]))
            s.out.put("42" + json.dumps(["loginRequired"]))
            return
        if not packet.startswith("42") or not s.connected:
            return
        body = packet[2:]
        ack = ""
        while body and body[0].isdigit():
            ack, body = ack + body[0], body[1:]
        try:
            event, *args = json.loads(body)
        except ValueError:
            return
        answer = self.event(s, event, args)
        if ack:
            s.out.put(f"43{ack}" + json.dumps([answer]))

    def event(self, s: _Session, event: str, args: list) -> dict:
        if event == "login":
            d = args[0] if args and isinstance(args[0], dict) else {}
            if d.get("username") != self.username or d.get("password") != self.password:
                return {"ok": False, "msg": "authIncorrectCreds", "msgi18n": True}
            s.user = self.username
            s.out.put("42" + json.dumps(["monitorList", {str(k): v for k, v in self.monitors.items()}]))
            return {"ok": True, "token": "eyJ" + _secrets.token_urlsafe(24)}
        if not s.user:
            return {"ok": False, "msg": "You are not logged in."}
        if event == "getMonitorBeats":
            mid, period = (args + [None, None])[:2]
            if period is None:
                return {"ok": False, "msg": "Invalid period."}
            since = time.time() - float(period) * 3600
            with self._lock:
                rows = [{"id": i, "monitor_id": mid, "status": st, "msg": msg, "time": row_time(t), "ping": 42,
                         "important": 0, "duration": 300, "down_count": 0}
                        for i, (t, st, msg) in enumerate(self.beats.get(int(mid), [])) if t > since]
            return {"ok": True, "data": rows}
        self.refused_events.append(event)
        return {"ok": False, "msg": f"{event}: not served by the lab stand-in"}

    # -- component protocol ----------------------------------------------------------------
    def start(self, lab=None) -> None:
        if lab is not None:
            self.password = lab.secret("uptime_kuma_password")
        self.serve(_KumaHandler, "uptime-kuma")

    def inventory(self) -> dict:
        return {"uptime_kuma": {"url": self.url}}

    def env(self) -> dict:
        return {"PHASEGATE_UPTIME_KUMA_PASSWORD": self.password}

    # write evidence (tests/test_readonly_guard.py): Socket.IO carries reads in POSTs too, so the evidence is
    # every event other than `login` / `getMonitorBeats`
    def mark(self) -> int:
        return len(self.refused_events)

    def writes(self, since: int = 0) -> list[Write]:
        return [Write("EMIT", event) for event in self.refused_events[since:]]
