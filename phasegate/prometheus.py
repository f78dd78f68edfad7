"""Prometheus' HTTP API (and the Pushgateway's), through phasegate.http.

Three kinds of answer are kept apart, because a gate must never pass on the
wrong one:
- an error (the query is wrong, Prometheus answers 4xx/5xx): `PromQLError` /
  `Broken`, the gate could not judge;
- an empty result: `Result.series == []`, which a gate that needs the metric
  turns into a "no data" failure (a metric Prometheus never had proves nothing);
- data: series with their samples, each sample with its timestamp.

Only GET is used: the daily bake job never writes to Prometheus.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from dataclasses import dataclass, field

import httpx

from phasegate import http
from phasegate.verdict import Broken, ServerError

UTC = dt.UTC


class PromQLError(Broken):
    """Prometheus refused the query (bad PromQL, bad range): the gate cannot judge."""


class MalformedAnswer(Broken):
    """A 200 whose JSON is not what the API documents: the gate cannot judge (never "no data")."""


def iso(ts: float | dt.datetime) -> str:
    """A timestamp as people read it in a verdict: 2026-06-01T10:15:00Z."""
    if isinstance(ts, dt.datetime):
        ts = ts.timestamp()
    return dt.datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration(seconds: float) -> str:
    """A PromQL duration in whole seconds (`1209600s`)."""
    return f"{int(math.ceil(seconds))}s"


@dataclass(frozen=True)
class Sample:
    t: float  # unix seconds
    v: float

    def __str__(self) -> str:
        return f"{_num(self.v)} @ {iso(self.t)}"


def _num(v: float) -> str:
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else f"{v:.4g}"


@dataclass(frozen=True)
class Series:
    labels: dict
    samples: list[Sample] = field(default_factory=list)

    @property
    def name(self) -> str:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{self.labels.get('__name__', '')}{{{inner}}}"

    def label(self, key: str, default: str = "") -> str:
        return self.labels.get(key, default)


@dataclass(frozen=True)
class Result:
    promql: str
    at: float | None  # evaluation time of an instant query
    result_type: str  # vector, matrix, scalar, string
    series: list[Series]

    @property
    def empty(self) -> bool:
        return not self.series

    def samples(self) -> list[tuple[Series, Sample]]:
        return [(s, x) for s in self.series for x in s.samples]


@dataclass(frozen=True)
class AlertRule:
    name: str
    query: str
    duration: float
    labels: dict
    annotations: dict
    group: str
    file: str


class Prometheus:
    """A read-only client of one Prometheus server."""

    def __init__(self, url: str, settings: http.HttpSettings, *, ca_bundle: str = ""):
        self.url = url.rstrip("/")
        self._http = http.client(settings, base_url=self.url, ca_bundle=ca_bundle)

    @classmethod
    def from_inventory(cls, inventory, settings: http.HttpSettings) -> Prometheus:
        m = inventory.metrics
        return cls(m.prometheus_url, settings, ca_bundle=m.ca_bundle)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Prometheus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- raw API -----------------------------------------------------------
    def _get(self, path: str, params: dict) -> dict:
        what = f"Prometheus {path}"
        try:
            r = self._http.get(path, params=params)
        except httpx.HTTPError as e:  # anything the transport did not map
            raise Broken(f"{what}: {type(e).__name__}: {e}") from None
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code in (400, 422) and isinstance(body, dict):
            raise PromQLError(f"{what} refused {params.get('query', '')!r}: {body.get('errorType')}: {body.get('error')}")
        if r.status_code >= 500:
            raise ServerError(f"{what}: HTTP {r.status_code}" + (f": {body.get('error')}" if isinstance(body, dict) else ""))
        if r.status_code != 200 or not isinstance(body, dict):
            raise Broken(f"{what}: unexpected HTTP {r.status_code} from {self.url} (is this a Prometheus?)")
        if body.get("status") != "success":
            raise PromQLError(f"{what}: {body.get('errorType')}: {body.get('error')}")
        if not isinstance(body.get("data"), dict):
            raise MalformedAnswer(f"{what}: answer without a data object from {self.url} (is this a Prometheus?)")
        return body["data"]

    def query(self, promql: str, at: float | dt.datetime | None = None) -> Result:
        """An instant query (`/api/v1/query`), evaluated at `at` (default: Prometheus' now)."""
        params = {"query": promql}
        ts = at.timestamp() if isinstance(at, dt.datetime) else at
        if ts is not None:
            params["time"] = f"{ts:.3f}"
        data = self._get("/api/v1/query", params)
        return _result(promql, ts, data)

    def query_range(self, promql: str, start: float | dt.datetime, end: float | dt.datetime, step: float) -> Result:
        """A range query (`/api/v1/query_range`), one point per `step` seconds."""
        s = start.timestamp() if isinstance(start, dt.datetime) else start
        e = end.timestamp() if isinstance(end, dt.datetime) else end
        data = self._get("/api/v1/query_range",
                         {"query": promql, "start": f"{s:.3f}", "end": f"{e:.3f}", "step": f"{step:g}"})
        return _result(promql, None, data)

    def raw_samples(self, selector: str, start: float | dt.datetime, end: float | dt.datetime) -> Result:
        """Every stored sample of a series selector in (start, end], as Prometheus holds them.

        A range-vector selector evaluated at `end` returns raw samples (no
        interpolation, no lookback), so a verdict can name the exact offending
        sample and its timestamp.
        """
        s = start.timestamp() if isinstance(start, dt.datetime) else start
        e = end.timestamp() if isinstance(end, dt.datetime) else end
        return self.query(f"{selector}[{duration(e - s)}]", at=e)

    def now(self) -> float:
        """Prometheus' own clock (`time()`): the bake is judged against it, lab or not."""
        r = self.query("time()")
        if not r.series or not r.series[0].samples:
            raise Broken("Prometheus answered time() without a value")
        return r.series[0].samples[0].v

    def alert_rules(self) -> list[AlertRule]:
        """Every alerting rule loaded (`/api/v1/rules?type=alert`)."""
        data = self._get("/api/v1/rules", {"type": "alert"})
        try:
            return _alert_rules(data)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedAnswer(f"Prometheus /api/v1/rules: malformed rule groups ({type(e).__name__})") from None


def _alert_rules(data: dict) -> list[AlertRule]:
    out = []
    for g in data["groups"]:
        for r in g.get("rules", []):
            if r.get("type") != "alerting":
                continue
            out.append(AlertRule(
                name=r.get("name", ""), query=r.get("query", ""), duration=float(r.get("duration", 0) or 0),
                labels=r.get("labels") or {}, annotations=r.get("annotations") or {},
                group=g.get("name", ""), file=g.get("file", ""),
            ))
    return out


def _result(promql: str, at: float | None, data: dict) -> Result:
    try:
        return _parse_result(promql, at, data)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise MalformedAnswer(f"Prometheus answered a malformed {str(data.get('resultType'))[:20]!r} result for "
                              f"{promql!r} ({type(e).__name__})") from None


def _parse_result(promql: str, at: float | None, data: dict) -> Result:
    rtype = data.get("resultType", "")
    raw = data.get("result")
    if raw is None:
        raise MalformedAnswer(f"Prometheus answered a {str(rtype)[:20]!r} result without its data for {promql!r}")
    series: list[Series] = []
    if rtype == "scalar" or rtype == "string":
        t, v = raw
        series = [Series({}, [Sample(float(t), float(v) if rtype == "scalar" else math.nan)])]
    elif rtype == "vector":
        series = [Series(r["metric"], [Sample(float(r["value"][0]), float(r["value"][1]))]) for r in raw]
    elif rtype == "matrix":
        series = [Series(r["metric"], [Sample(float(t), float(v)) for t, v in r.get("values", [])]) for r in raw]
    else:
        raise Broken(f"Prometheus answered an unknown result type {rtype!r} for {promql!r}")
    return Result(promql, at, rtype, series)


class Pushgateway:
    """A Pushgateway: what the last pushes left there (`/api/v1/metrics`), and a push that replaces
    one group (PUT `/metrics/job/.../<label>/<value>`)."""

    def __init__(self, url: str, settings: http.HttpSettings, *, ca_bundle: str = ""):
        self.url = url.rstrip("/")
        self._http = http.client(settings, base_url=self.url, ca_bundle=ca_bundle)

    @classmethod
    def from_inventory(cls, inventory, settings: http.HttpSettings) -> Pushgateway:
        m = inventory.metrics
        return cls(m.pushgateway_url, settings, ca_bundle=m.ca_bundle)

    def close(self) -> None:
        self._http.close()

    def groups(self) -> list[dict]:
        """One entry per pushed group: {"labels": {...}, "metrics": {name: [(labels, value)]}, "push_time": ts}."""
        r = self._http.get("/api/v1/metrics")
        if r.status_code >= 500:
            raise http.status_error(r, "Pushgateway metrics")
        if r.status_code != 200:
            raise Broken(f"Pushgateway /api/v1/metrics: unexpected HTTP {r.status_code} from {self.url}")
        try:
            return _groups(r.json())
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise MalformedAnswer(f"Pushgateway /api/v1/metrics: malformed answer from {self.url} "
                                  f"({type(e).__name__})") from None


    def replace_group(self, job: str, labels: dict[str, str], body: str, *, what: str) -> None:
        """PUT `body` (text exposition format) as the group {job, **labels}: every metric of the group
        is replaced. Values go base64 (URL-safe) in the path: gate names have spaces and slashes; the
        empty value is "=" (Pushgateway README, "URL")."""
        path = f"/metrics/job@base64/{_b64(job)}" + "".join(f"/{k}@base64/{_b64(v)}" for k, v in labels.items())
        r = self._http.put(path, content=body.encode(), headers={"Content-Type": "text/plain; version=0.0.4"})
        if r.status_code >= 300:
            raise http.status_error(r, what)


def _b64(v: str) -> str:
    return base64.urlsafe_b64encode(v.encode()).decode() if v else "="


def _groups(doc: dict) -> list[dict]:
    out = []
    for g in doc.get("data", []):
        metrics: dict[str, list[tuple[dict, float]]] = {}
        push_time = None
        for name, fam in g.items():
            if name == "labels" or not isinstance(fam, dict):
                continue
            for m in fam.get("metrics", []):
                value = float(m.get("value", "nan"))
                metrics.setdefault(name, []).append((m.get("labels", {}), value))
            if name == "push_time_seconds":
                push_time = value
        out.append({"labels": g.get("labels", {}), "metrics": metrics, "push_time": push_time})
    return out
