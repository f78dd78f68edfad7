"""Uptime Kuma's history of one monitor, through its Socket.IO API (the interface its own UI uses).

Why this interface (docs/design.md, "Uptime Kuma"): it is the only one that returns a monitor's
heartbeats over a chosen period. `getMonitorBeats(monitorID, period)` answers every heartbeat newer
than `period` hours (louislam/uptime-kuma server/server.js, "getMonitorBeats": `SELECT * FROM heartbeat
WHERE monitor_id = ? AND time > <now - period hours> ORDER BY time ASC`). The public status-page API
(`/api/status-page/heartbeat/<slug>`) serves only monitors on a published status page, and the last
100 beats (1.x; 8h at 300s) or a page's `heartbeat_bar_days` (2.x), the badges an
aggregate percentage, `/metrics` the current state; and the real Prometheus does not scrape Uptime
Kuma (PCV:524-536 @ 5d22b449). The real cluster talks to it the same way: `external-monitor-sync`
logs in as `admin` over Socket.IO (uptime-kuma-api; stacks/uptime-kuma/modules/uptime-kuma/main.tf:
427-428 @ 5d22b449) and the image is `louislam/uptime-kuma:2` (:103).

Wire: Socket.IO v5 over Engine.IO v4's HTTP long-polling transport (socket.io-protocol and
engine.io-protocol specifications): `GET /socket.io/?EIO=4&transport=polling` opens a session
(`0{"sid":..}`), `POST ...&sid=` sends packets, `GET ...&sid=` receives them; packets in one payload
are separated by \\x1e. `40` connects the main namespace, `42<id>["event",...]` emits an event with an
acknowledgement id, `43<id>[answer]` is its acknowledgement; `2`/`3` are Engine.IO ping/pong.

Read-only: Socket.IO carries its events in POST bodies, so the client does not use the process-wide
HTTP guard's method rule; instead it emits only the events in READ_EVENTS (log in, read beats) and
refuses any other event unless the running gate may write (phasegate.http.GUARD). Timeouts,
redaction and the transcript are the shared factory's.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass

import httpx

from phasegate import http
from phasegate.secrets import Secret, register
from phasegate.verdict import AuthError, Broken, WriteRefused

PATH = "/socket.io/"
READ_EVENTS = frozenset({"login", "getMonitorBeats"})
SEP = "\x1e"
UTC = dt.UTC
# heartbeat status (louislam/uptime-kuma src/util.ts: DOWN = 0, UP = 1, PENDING = 2, MAINTENANCE = 3)
STATUS = {0: "DOWN", 1: "UP", 2: "PENDING", 3: "MAINTENANCE"}


class UptimeKumaError(Broken):
    """Uptime Kuma answered something that is not its Socket.IO protocol, or refused a read."""


@dataclass(frozen=True)
class Monitor:
    id: int
    name: str
    url: str
    interval: int  # seconds between checks
    active: bool


@dataclass(frozen=True)
class Beat:
    t: float  # unix seconds
    status: int
    msg: str

    @property
    def up(self) -> bool:
        return self.status == 1

    @property
    def state(self) -> str:
        return STATUS.get(self.status, str(self.status))


def parse_time(value) -> float:
    """A heartbeat's `time`: SQLite gives "YYYY-MM-DD HH:MM:SS.fff" (UTC), MariaDB an ISO string."""
    s = str(value).replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(s, fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    raise ValueError(f"heartbeat time {value!r}")


class _SocketIoGuard(http.WriteGuard):
    """POSTs to the Socket.IO endpoint carry events; which events may go is decided in `emit`."""

    def check(self, method: str, target: str) -> None:
        if method.upper() == "POST" and httpx.URL(target).path == PATH:
            return
        http.GUARD.check(method, target)


class UptimeKuma:
    def __init__(self, url: str, settings: http.HttpSettings, *, username: str, password: Secret,
                 ca_bundle: str = ""):
        self.url = url.rstrip("/")
        self._user = username
        self._password = password
        self._http = http.client(settings, base_url=self.url, ca_bundle=ca_bundle, guard=_SocketIoGuard(),
                                 http2=False)
        self._sid = ""
        self._ack = 0
        self._events: list[tuple[str, list]] = []
        self._deadline = time.monotonic() + settings.total

    @classmethod
    def from_inventory(cls, inv, settings: http.HttpSettings) -> UptimeKuma:
        k = inv.uptime_kuma
        return cls(k.url, settings, username=k.username, password=inv.secret(k.password_secret), ca_bundle=k.ca_bundle)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> UptimeKuma:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- Engine.IO ---------------------------------------------------------------
    def _params(self) -> dict:
        p = {"EIO": "4", "transport": "polling"}
        if self._sid:
            p["sid"] = self._sid
        return p

    def _get(self) -> list[str]:
        r = self._http.get(PATH, params=self._params())
        if r.status_code >= 500:
            raise http.status_error(r, f"Uptime Kuma {PATH}")
        if r.status_code != 200:
            raise UptimeKumaError(f"Uptime Kuma {PATH}: HTTP {r.status_code} (is this Uptime Kuma?)")
        return [p for p in r.text.split(SEP) if p]

    def _post(self, packets: list[str]) -> None:
        r = self._http.post(PATH, params=self._params(), content=SEP.join(packets).encode(),
                            headers={"Content-Type": "text/plain;charset=UTF-8"})
        if r.status_code >= 500:
            raise http.status_error(r, f"Uptime Kuma {PATH}")
        if r.status_code != 200:
            raise UptimeKumaError(f"Uptime Kuma {PATH}: HTTP {r.status_code} on send")

    def _open(self) -> None:
        packets = self._get()
        if not packets or not packets[0].startswith("0"):
            raise UptimeKumaError(f"Uptime Kuma {self.url}{PATH}: no Engine.IO open packet (is this Uptime Kuma?)")
        try:
            self._sid = json.loads(packets[0][1:])["sid"]
        except (ValueError, KeyError, TypeError):
            raise UptimeKumaError("Uptime Kuma: malformed Engine.IO open packet") from None
        self._post(["40"])
        self._wait(lambda p: p.startswith("40") or p.startswith("44"), "the namespace connect")

    def _wait(self, want, what: str) -> str:
        """Poll until a packet satisfies `want`; events seen meanwhile are kept, pings answered."""
        while True:
            if time.monotonic() > self._deadline:
                raise Broken(f"Uptime Kuma {self.url}: no answer to {what} within the total timeout")
            for p in self._get():
                if p == "2":
                    self._post(["3"])
                    continue
                if p.startswith("1"):
                    raise UptimeKumaError(f"Uptime Kuma closed the session while waiting for {what}")
                if p.startswith("44"):
                    raise UptimeKumaError(f"Uptime Kuma refused the connection: {p[2:200]}")
                if p.startswith("42"):
                    try:
                        ev = json.loads(p[2:])
                        self._events.append((ev[0], ev[1:]))
                    except (ValueError, IndexError):
                        pass
                if want(p):
                    return p

    # -- Socket.IO events ----------------------------------------------------------
    def emit(self, event: str, *args):
        """Emit an event and wait for its acknowledgement (the callback's argument)."""
        if event not in READ_EVENTS and not http.GUARD.allowed:
            raise WriteRefused(f"refused Uptime Kuma event {event!r}: this gate is read-only "
                               f"(only {', '.join(sorted(READ_EVENTS))} are reads)")
        if not self._sid:
            self._open()
        self._ack += 1
        ack = str(self._ack)
        self._post([f"42{ack}" + json.dumps([event, *args])])
        p = self._wait(lambda p: p.startswith(f"43{ack}["), f"{event!r}")
        try:
            return json.loads(p[2 + len(ack):])[0]
        except (ValueError, IndexError):
            raise UptimeKumaError(f"Uptime Kuma: malformed acknowledgement of {event!r}") from None

    def _event(self, name: str) -> list:
        """The arguments of the latest event `name` the server pushed, waiting for one if none came yet."""
        while True:
            for seen, args in reversed(self._events):
                if seen == name and args:
                    return args
            self._wait(lambda p: p.startswith(f'42["{name}"'), f"the {name} event")

    def login(self) -> None:
        answer = self.emit("login", {"username": self._user, "password": self._password.reveal(), "token": ""})
        if not isinstance(answer, dict) or not answer.get("ok"):
            msg = answer.get("msg", "") if isinstance(answer, dict) else ""
            raise AuthError(f"Uptime Kuma {self.url}: login as {self._user!r} refused ({msg or 'no reason given'})")
        if answer.get("token"):
            register(str(answer["token"]))  # a session JWT: redacted wherever it might show

    def monitors(self) -> list[Monitor]:
        """The monitor list the server pushes after login (event `monitorList`)."""
        doc = self._event("monitorList")[0]
        try:
            return [Monitor(int(m["id"]), str(m["name"]), str(m.get("url") or ""), int(m.get("interval") or 0),
                            bool(m.get("active", True))) for m in doc.values()]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise UptimeKumaError("Uptime Kuma: malformed monitorList") from None

    def beats(self, monitor_id: int, hours: float) -> list[Beat]:
        """Every heartbeat of the monitor newer than `hours` hours, oldest first."""
        answer = self.emit("getMonitorBeats", monitor_id, hours)
        if not isinstance(answer, dict) or not answer.get("ok"):
            raise UptimeKumaError(f"Uptime Kuma refused getMonitorBeats({monitor_id}, {hours}): "
                                  f"{answer.get('msg') if isinstance(answer, dict) else answer!r}")
        try:
            return sorted((Beat(parse_time(b["time"]), int(b["status"]), str(b.get("msg") or ""))
                           for b in answer["data"]), key=lambda b: b.t)
        except (KeyError, TypeError, ValueError):
            raise UptimeKumaError("Uptime Kuma: malformed heartbeat in getMonitorBeats' answer") from None

    def history(self, monitor_name: str, since: float, now: float) -> tuple[Monitor, list[Beat]]:
        """The named monitor and its heartbeats since `since` (unix seconds), as of `now`."""
        self.login()
        found = [m for m in self.monitors() if m.name == monitor_name]
        if not found:
            raise UptimeKumaError(f"Uptime Kuma {self.url}: no monitor named {monitor_name!r}")
        m = found[0]
        hours = max(1, int((now - since) // 3600) + 1)
        return m, [b for b in self.beats(m.id, hours) if b.t >= since]
