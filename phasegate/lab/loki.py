"""Lab component `loki`: a stand-in for Loki's HTTP API (push and query_range of log streams).

No Loki installs here (Debian 12 has no `loki` package, PyPI and npm have no Loki server: see
docs/design.md), so this serves the documented wire format (grafana/loki
docs/sources/reference/loki-http-api.md): `POST /loki/api/v1/push` (JSON streams, as Alloy's
`loki.write` sends them), `GET /loki/api/v1/query_range` for a log query (a stream selector with
`=`, `!=`, `=~`, `!~` matchers and line filters `|=`, `!=`, `|~`, `!~`), answering
`{"status":"success","data":{"resultType":"streams","result":[...]}}` with at most `limit` entries
(oldest first for `direction=forward`), `GET /ready`. Like Loki it refuses `limit` above
`max_entries_limit_per_query` (5000) and a range whose end is before its start, with HTTP 400 and a
plain-text reason.

Pod logs reach it the way Alloy ships them in the real cluster: one stream per container with labels
`namespace`, `pod`, `container`, `app` (from the pod label app.kubernetes.io/name; absent when the pod
has none, as the cleanup Job's pods) and `job="<namespace>/<container>"`
(stacks/monitoring/modules/monitoring/alloy.yaml:53-99 @ 0cd4afb6), lines as CRI-parsed messages
with their own timestamps (`stage.cri`, bb0099b7).
"""

from __future__ import annotations

import json
import re
import threading

from phasegate.lab.loopback import Handler, LoopbackStandin, Write

NS = 1_000_000_000
MAX_ENTRIES = 5000  # Loki's limits_config.max_entries_limit_per_query default

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_FILTER = re.compile(r'\s*(\|=|!=|\|~|!~)\s*"((?:[^"\\]|\\.)*)"')


class LogQLError(ValueError):
    pass


def parse(logql: str):
    """(matchers, filters) of a log query: [(label, op, value)], [(op, value)]."""
    m = re.match(r"\s*\{(.*?)\}(.*)$", logql, re.S)
    if not m:
        raise LogQLError(f"parse error : syntax error: unexpected input, expecting {{ in {logql!r}")
    inner, rest = m.group(1), m.group(2)
    matchers, pos = [], 0
    while pos < len(inner.strip()):
        mm = _MATCHER.match(inner, pos)
        if not mm:
            raise LogQLError(f"parse error : syntax error in stream selector {{{inner}}}")
        matchers.append((mm.group(1), mm.group(2), _unquote(mm.group(3))))
        pos = mm.end()
    if not matchers:
        raise LogQLError("parse error : queries require at least one regexp or equality matcher")
    filters, pos = [], 0
    while rest[pos:].strip():
        fm = _FILTER.match(rest, pos)
        if not fm:
            raise LogQLError(f"parse error : syntax error in pipeline {rest[pos:]!r}")
        filters.append((fm.group(1), _unquote(fm.group(2))))
        pos = fm.end()
    return matchers, filters


def _unquote(s: str) -> str:
    return json.loads(f'"{s}"')


def _labels_match(labels: dict, matchers) -> bool:
    for key, op, value in matchers:
        have = labels.get(key, "")
        if op == "=" and have != value or op == "!=" and have == value:
            return False
        if op == "=~" and not re.fullmatch(value, have) or op == "!~" and re.fullmatch(value, have):
            return False
    return True


def _line_match(line: str, filters) -> bool:
    for op, value in filters:
        if op == "|=" and value not in line or op == "!=" and value in line:
            return False
        if op == "|~" and not re.search(value, line) or op == "!~" and re.search(value, line):
            return False
    return True


def _ns(value: str) -> int:
    """Loki accepts unix nanoseconds (and seconds with a fraction); the suite sends nanoseconds."""
    return int(value) if value.isdigit() and len(value) > 12 else int(float(value) * NS)


class _LokiHandler(Handler):
    def do_GET(self):
        if self.route == "/ready":
            return self.send(200, b"ready\n")
        if self.route != "/loki/api/v1/query_range":
            return self.send(404, b"404 page not found\n")
        q = self.query()
        try:
            matchers, filters = parse(q.get("query", ""))
            limit = int(q.get("limit", "100"))
            start, end = _ns(q["start"]), _ns(q["end"])
        except (LogQLError, KeyError, ValueError) as e:
            return self.send(400, f"{e}\n".encode())
        if limit > MAX_ENTRIES:
            return self.send(400, f"max entries limit per query exceeded, limit > max_entries_limit "
                                  f"({limit} > {MAX_ENTRIES})\n".encode())
        if end < start:
            return self.send(400, b"end timestamp must not be before or equal to start time\n")
        self.send_json(200, self.standin.select(matchers, filters, start, end, limit,
                                                q.get("direction", "backward")))

    def do_POST(self):
        if self.route != "/loki/api/v1/push":
            return self.send(404, b"404 page not found\n")
        try:
            doc = json.loads(self.body())
            for s in doc["streams"]:
                self.standin.append(s["stream"], [(int(ts), line) for ts, line in s["values"]])
        except (ValueError, KeyError, TypeError) as e:
            return self.send(400, f"loghttp: {e}\n".encode())
        self.send(204, b"")


class LokiStandin(LoopbackStandin):
    name = "loki"

    def __init__(self):
        self.streams: dict[tuple, list[tuple[int, str]]] = {}
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    # -- data ------------------------------------------------------------------
    def append(self, labels: dict, entries: list[tuple[int, str]]) -> None:
        key = tuple(sorted((k, v) for k, v in labels.items() if v != ""))  # Loki drops empty labels
        with self._lock:
            self.streams.setdefault(key, []).extend(entries)
            self.streams[key].sort()

    def clear(self) -> None:
        with self._lock:
            self.streams.clear()

    def select(self, matchers, filters, start: int, end: int, limit: int, direction: str) -> dict:
        found = []
        with self._lock:
            for key, entries in self.streams.items():
                labels = dict(key)
                if not _labels_match(labels, matchers):
                    continue
                for ts, line in entries:
                    if start <= ts < end and _line_match(line, filters):
                        found.append((ts, key, line))
        found.sort(key=lambda e: e[0], reverse=direction != "forward")
        found = found[:limit]
        by_stream: dict[tuple, list] = {}
        for ts, key, line in found:
            by_stream.setdefault(key, []).append([str(ts), line])
        result = [{"stream": dict(k), "values": v} for k, v in by_stream.items()]
        return {"status": "success", "data": {"resultType": "streams", "result": result,
                                              "stats": {"summary": {"totalEntriesReturned": len(found)}}}}

    # -- component protocol ----------------------------------------------------
    def start(self, lab=None) -> None:
        self.serve(_LokiHandler, "loki")

    def inventory(self) -> dict:
        return {"loki": {"url": self.url}}

    def env(self) -> dict:
        return {}

    # write evidence (tests/test_readonly_guard.py): anything but a read since a mark
    def mark(self) -> int:
        return len(self.requests)

    def writes(self, since: int = 0) -> list[Write]:
        return [Write(m, p) for m, p in self.requests[since:] if m not in ("GET", "HEAD")]
