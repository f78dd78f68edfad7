"""Phase 2 "no image= line changes" (phasegate.bake_images): the judge over synthetic cAdvisor / kube-state-metrics
series answered by a fake Prometheus that applies the real selectors (label matchers, anchored regexes,
the (start, end] range), at the bake era's 2-minute scrapes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from phasegate import bake, bake_images, config
from phasegate.prometheus import Result, Sample, Series
from phasegate.verdict import GateFailed, NotJudged, Pending

INV = config.load(config.DEFAULT_INVENTORY)
T0 = dt.datetime.combine(INV.bake.start, dt.time(0), dt.UTC).timestamp()
DAY, STEP = 86400, 120
END = T0 + INV.bake.days * DAY
PRIVATE, FORGEJO = INV.private_registry.host, f"{INV.forgejo.host}/{INV.forgejo.owner}"
MATCHER = re.compile(r'\s*([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


class FakeProm:
    """Answers `raw_samples(selector, start, end)` from a list of series, as Prometheus would."""

    def __init__(self, series: list[Series], now: float):
        self.series, self._now, self.queries = series, now, []

    def now(self) -> float:
        return self._now

    def raw_samples(self, selector: str, start: float, end: float) -> Result:
        self.queries.append(selector)
        name, _, rest = selector.partition("{")
        matchers = MATCHER.findall(rest.rstrip("}"))
        out = []
        for s in self.series:
            if s.labels.get("__name__") != name or not all(_match(s.labels.get(k, ""), op, v) for k, op, v in matchers):
                continue
            samples = [x for x in s.samples if start < x.t <= end]
            if samples:
                out.append(Series(s.labels, samples))
        return Result(selector, end, "matrix", out)


def _match(value: str, op: str, want: str) -> bool:
    if op == "=":
        return value == want
    if op == "!=":
        return value != want
    hit = re.fullmatch(want, value) is not None
    return hit if op == "=~" else not hit


def scrapes(a: float, b: float, offset: float = 40) -> list[float]:
    """The scrape times of one node's cAdvisor in [a, b): every 2 minutes at the target's offset."""
    first = (a - offset) // STEP * STEP + offset
    first = first if first >= a else first + STEP
    return [first + i * STEP for i in range(int((b - first) // STEP) + 1) if first + i * STEP < b]


def container(ns: str, pod: str, name: str, image: str, a: float, b: float, node: str = "k8s-node1") -> Series:
    labels = {"__name__": "container_start_time_seconds", "job": "kubernetes-nodes-cadvisor", "instance": node,
              "namespace": ns, "pod": pod, "container": name, "image": image, "name": f"{pod}-{name}",
              "id": f"/kubepods/burstable/pod-{pod}/{name}"}
    return Series(labels, [Sample(t, a) for t in scrapes(a, b)])


def ksm(name: str, value: float, a: float, b: float, **labels) -> Series:
    return Series({"__name__": name, "job": "kubernetes-service-endpoints", **labels},
                  [Sample(t, value) for t in scrapes(a, b, offset=0)])


def workloads():
    for p in INV.projects:
        for w in p.workloads:
            yield p, w, p.workload_namespace(w)


def green(until: float = END + 3600, skip: str = "") -> list[Series]:
    """Every Deployment on its registry-private image all along; beads-dispatcher's runs every 2 hours seen
    by cAdvisor; the other CronJobs did not run in the window (their last success before it)."""
    out = []
    for p, w, ns in workloads():
        if w.name == skip:
            continue
        if w.kind == "Deployment":
            out.append(container(ns, f"{w.name}-7d9cbf5c8b-x2b4q", w.name, f"{PRIVATE}/{p.image}:4f70681d",
                                 T0 - 3 * DAY, until))
        elif w.name == "beads-dispatcher":
            for t in range(int(T0 - DAY), int(until), 2 * 3600):
                job = f"{w.name}-{t // 60}"
                out.append(container(ns, f"{job}-zq4xk", "dispatcher", f"{PRIVATE}/{p.image}:2fd7670d", t + 3, t + 150))
                out.append(ksm("kube_job_status_start_time", t + 3, t, t + 900, namespace=ns, job_name=job))
        else:
            out.append(ksm("kube_cronjob_status_last_successful_time", T0 - 5 * DAY, T0 - 3600, until,
                           namespace=ns, cronjob=w.name))
    return out


def judge(series: list[Series], now: float = END + 7200, inv: config.Inventory = INV) -> bake.BakeJudge:
    return bake.BakeJudge.connect(FakeProm(series, now), inv)  # type: ignore[arg-type]


def test_pod_names_of_a_workload_as_kubernetes_makes_them():
    dep, cj = bake_images.pod_regex("Deployment", "music-viktor"), bake_images.pod_regex("CronJob", "beads-reaper")
    assert re.fullmatch(dep, "music-viktor-7d9cbf5c8b-x2b4q") and re.fullmatch(dep, "music-viktor-5b7f-q8x2m")
    assert not re.fullmatch(dep, "music-viktor-extra-7d9cbf5c8b-x2b4q")  # another Deployment's pods
    assert not re.fullmatch(dep, "music-emo-7d9cbf5c8b-x2b4q") and not re.fullmatch(dep, "music-viktor-29650000-x2b4q" + "z")
    assert re.fullmatch(cj, "beads-reaper-29650560-x2b4q") and not re.fullmatch(cj, "beads-reaper-7d9cbf5c8b-x2b4q")
    assert not re.fullmatch(cj, "beads-dispatcher-29650560-x2b4q")


def test_the_query_reads_a_series_the_real_scrape_config_keeps_and_not_the_dropped_one():
    from phasegate.lab import scrape_config

    name = INV.metrics.queries.workload_containers.split("{", 1)[0]
    assert scrape_config.kept("kubernetes-nodes-cadvisor", name)
    # the series that would name the image directly is dropped (PCV:464 @5d22b449)
    assert not scrape_config.kept("kubernetes-service-endpoints", "kube_pod_container_info")


def test_registries_by_host_alias_and_forgejo():
    reg = bake_images.Registries(INV)
    assert reg.of("registry.viktorbarzin.me/payslip-ingest:4f70681d") == "registry-private"
    assert reg.of("registry.viktorbarzin.me:5050/beadboard:17a38e43") == "registry-private"
    assert reg.of("forgejo.viktorbarzin.me/viktor/job-hunter:92afc38d") == "Forgejo"
    assert reg.of("docker.io/viktorbarzin/claude-memory-mcp:17") == "docker.io"
    assert reg.of("viktorbarzin/claude-memory-mcp:17") == "docker.io"
    # containerd's sort puts a Forgejo name first among the names of the same bytes (docs/inventory.md)
    assert sorted(["registry.viktorbarzin.me/x:1", "registry.viktorbarzin.me:5050/x:1",
                   "forgejo.viktorbarzin.me/viktor/x:1"])[0].startswith("forgejo.")


def test_a_bake_on_registry_private_all_along_passes():
    j = judge(green())
    j.no_forgejo_images()
    data = j.data[bake.NO_FORGEJO_IMAGE]
    assert data.offending == [] and data.holes == []
    series = next(v for k, v in data.series.items() if k.startswith("Deployment job-hunter/job-hunter"))
    assert series[0][1] == 0 and len(series) == 2  # kept to its changes


def test_a_premature_flip_on_day_6_is_red_with_the_pod_the_image_and_the_time():
    flip = T0 + 6 * DAY + 10 * 3600
    series = [s for s in green() if s.labels.get("namespace") != "job-hunter"]
    series += [container("job-hunter", "job-hunter-7d9cbf5c8b-x2b4q", "job-hunter", f"{PRIVATE}/job-hunter:92afc38d",
                         T0 - 3 * DAY, flip + 45),
               container("job-hunter", "job-hunter-5f6d7c9b4d-q8x2m", "job-hunter", f"{FORGEJO}/job-hunter:92afc38d",
                         flip + 15, END + 3600)]
    with pytest.raises(GateFailed) as e:
        judge(series).no_forgejo_images(max_gap_minutes=10)
    msg = str(e.value)
    day6 = dt.datetime.fromtimestamp(flip, dt.UTC).date().isoformat()
    assert "1 container(s) of 1 workload(s) ran an image from forgejo.viktorbarzin.me" in msg
    assert f"image {FORGEJO}/job-hunter:92afc38d" in msg and "pod job-hunter-5f6d7c9b4d-q8x2m" in msg
    assert f"started {day6}T10:00:15Z" in msg and f"first scraped {day6}T10:00:40Z (day 6 ({day6}))" in msg
    assert "Deployment job-hunter/job-hunter" in msg and 'pod=~"job-hunter-[' in msg
    assert "[registry-private]" in msg  # what the other workloads ran, judged


def test_a_workload_cadvisor_never_saw_is_no_data():
    with pytest.raises(GateFailed, match=r"no data for 1 workload\(s\); first: Deployment job-hunter/job-hunter: "
                                         "cAdvisor holds no container"):
        judge(green(skip="job-hunter")).no_forgejo_images()


def test_a_deployment_unseen_longer_than_the_scenarios_gap_is_no_data_and_a_shorter_gap_passes():
    a, b = T0 + 4 * DAY, T0 + 4 * DAY + 1800  # 30 minutes without a sample
    series = [s for s in green() if s.labels.get("namespace") != "freedify" or s.labels["pod"].startswith("music-emo")]
    series += [Series(s.labels, [x for x in s.samples if not a <= x.t < b])
               for s in green() if s.labels.get("pod", "").startswith("music-viktor")]
    j = judge(series)
    with pytest.raises(GateFailed) as e:
        j.no_forgejo_images(max_gap_minutes=10)
    assert "Deployment freedify/music-viktor: its containers unseen for 1 stretch(es) longer than 10 min" in str(e.value)
    (hole,) = j.data[bake.NO_FORGEJO_IMAGE].holes
    assert hole[1] - hole[0] >= 1800
    judge(series).no_forgejo_images(max_gap_minutes=60)


def test_cronjob_runs_none_of_which_cadvisor_saw_are_no_data():
    series = [s for s in green() if s.labels["__name__"] != "container_start_time_seconds"
              or not s.labels["pod"].startswith("beads-dispatcher")]
    with pytest.raises(GateFailed, match=r"CronJob beads-server/beads-dispatcher: \d+ run\(s\) started in the window"):
        judge(series).no_forgejo_images()


def test_a_cronjob_without_a_run_needs_its_last_success_across_the_window():
    series = [s for s in green() if s.labels.get("cronjob") != "wealthfolio-sync"]
    with pytest.raises(GateFailed, match="CronJob wealthfolio/wealthfolio-sync: no run of it started in the window"):
        judge(series).no_forgejo_images()


def test_a_cronjob_run_on_a_forgejo_image_is_red():
    t = T0 + 9 * DAY + 8 * 3600
    job = f"wealthfolio-sync-{int(t) // 60}"
    series = green() + [container("wealthfolio", f"{job}-b2k9x", "sync", f"{FORGEJO}/wealthfolio-sync:latest",
                                  t + 3, t + 200)]
    with pytest.raises(GateFailed, match=r"CronJob wealthfolio/wealthfolio-sync: pod wealthfolio-sync-\d+-b2k9x"):
        judge(series).no_forgejo_images()


def test_an_open_window_is_pending_and_a_flip_so_far_is_red_at_once():
    now = T0 + 5 * DAY + 3600
    with pytest.raises(Pending, match="day 5 of 14"):
        judge(green(until=now), now=now).no_forgejo_images()
    flip = T0 + 2 * DAY
    series = green(until=now) + [container("claude-memory", "claude-memory-8d5f7b9c6d-k2x9z", "claude-memory",
                                           f"{FORGEJO}/claude-memory-mcp:17", flip, now)]
    with pytest.raises(GateFailed, match="first scraped .*T00:00:40Z"):
        judge(series, now=now).no_forgejo_images()


def test_an_inventory_opt_out_is_not_judged():
    inv = dataclasses.replace(INV, bake=dataclasses.replace(INV.bake, not_judged={bake.NO_FORGEJO_IMAGE: "why"}))
    with pytest.raises(NotJudged, match="why"):
        judge(green(), inv=inv).no_forgejo_images()
    assert bake.NO_FORGEJO_IMAGE == bake_images.CRITERION and bake.NO_FORGEJO_IMAGE in judge(green()).criteria()
