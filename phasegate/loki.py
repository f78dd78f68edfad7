"""Loki's HTTP API (read side), through phasegate.http: the log lines of a stream selector over a window.

`GET /loki/api/v1/query_range` with a LogQL log query answers
`{"status": "success", "data": {"resultType": "streams", "result": [{"stream": {labels},
"values": [["<unix ns>", "<line>"], ...]}]}}` (grafana/loki docs/sources/reference/loki-http-api.md,
"Query logs within a range of time"). At most `limit` entries come back per call, so the window is
walked forward: the next call starts one nanosecond after the newest entry seen. Only GET is used.

The real Loki (stacks/monitoring/modules/monitoring/loki.yaml @ 0560d81f) runs `auth_enabled: false`
(:44) with `retention_period: 720h` (:25): older lines are gone, which a gate reports as "no data".
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from phasegate import http
from phasegate.verdict import Broken

NS = 1_000_000_000
PAGE = 1000  # entries per call; Loki's max_entries_limit_per_query defaults to 5000


class LokiError(Broken):
    """Loki refused the query or answered something that is not Loki's JSON: the gate cannot judge."""


@dataclass(frozen=True)
class LogLine:
    t: float  # unix seconds (Loki's nanoseconds / 1e9)
    line: str
    labels: dict

    def label(self, key: str, default: str = "") -> str:
        return self.labels.get(key, default)


class Loki:
    def __init__(self, url: str, settings: http.HttpSettings, *, ca_bundle: str = ""):
        self.url = url.rstrip("/")
        self._http = http.client(settings, base_url=self.url, ca_bundle=ca_bundle)

    @classmethod
    def from_inventory(cls, inventory, settings: http.HttpSettings) -> Loki:
        return cls(inventory.loki.url, settings, ca_bundle=inventory.loki.ca_bundle)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Loki:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lines(self, logql: str, start: float, end: float, *, page: int = PAGE) -> list[LogLine]:
        """Every line the log query selects in [start, end), oldest first."""
        out: list[LogLine] = []
        cursor = int(start * NS)
        stop = int(end * NS)
        while cursor < stop:
            batch = self._query(logql, cursor, stop, page)
            out += batch
            if len(batch) < page:
                break
            cursor = int(round(batch[-1].t * NS)) + 1
        return out

    def _query(self, logql: str, start_ns: int, end_ns: int, limit: int) -> list[LogLine]:
        what = f"Loki query_range {logql!r}"
        try:
            r = self._http.get("/loki/api/v1/query_range", params={
                "query": logql, "start": str(start_ns), "end": str(end_ns), "limit": str(limit),
                "direction": "forward"})
        except httpx.HTTPError as e:
            raise Broken(f"{what}: {type(e).__name__}: {e}") from None
        if r.status_code >= 500:
            raise http.status_error(r, what)
        if r.status_code != 200:
            raise LokiError(f"{what}: HTTP {r.status_code}: {r.text[:300]}")
        try:
            body = r.json()
            if body.get("status") != "success" or body["data"]["resultType"] != "streams":
                raise ValueError(body.get("status"))
            lines = [LogLine(int(ts) / NS, str(line), dict(s["stream"]))
                     for s in body["data"]["result"] for ts, line in s["values"]]
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise LokiError(f"{what}: not a Loki streams answer from {self.url} ({type(e).__name__})") from None
        return sorted(lines, key=lambda x: x.t)
