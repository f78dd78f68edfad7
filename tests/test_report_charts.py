"""The report's drawings (issue 21): a bake criterion's chart (phasegate.charts), the hook that
draws every "criterion-data" attachment, and the Phase 3 cutover matrix derived from the rows'
own steps (phasegate.report). What the browser shows: tests/test_report_views.py."""

from __future__ import annotations

import json

import allure
import allure_commons
import pytest

from phasegate import charts, report
from phasegate.pytest_report import CriterionCharts
from phasegate.secrets import Secret

DAY = 86400
START = 1_779_062_400  # 2026-05-18T00:00Z, the inventory's bake start
SECRET = "pgcanary-chart-0123456789"


def _data(now: float, **kw) -> charts.CriterionData:
    pts = [(START + h * 3600, 60 + (h % 24)) for h in range(int((min(now, START + 14 * DAY) - START) // 3600))
           if not 5 * 24 < h < 5 * 24 + 3]  # the hole
    base = dict(series={'working set / limit, pod forgejo-0': pts}, window_start=START, window_end=START + 14 * DAY,
                now=now, threshold=charts.Threshold(90, "near OOM: 90% of the limit"),
                offending=[(START + 3 * DAY + 72000, 93.0)], holes=[(START + 5 * DAY, START + 5 * DAY + 3 * 3600)],
                title="forgejo never near OOM", unit="% of the memory limit")
    base.update(kw)
    return charts.CriterionData(**base)


def _vlines(ax) -> list[float]:
    """x of every vertical line (window start/end, today) in matplotlib date numbers."""
    from matplotlib import dates as mdates

    return sorted(mdates.date2num(line.get_xdata()[0]) for line in ax.get_lines() if len(set(line.get_xdata())) == 1
                  and len(line.get_xdata()) == 2 and list(line.get_ydata()) == [0, 1])


def _hlines(ax) -> list[float]:
    return [line.get_ydata()[0] for line in ax.get_lines() if list(line.get_xdata()) == [0, 1]]


def _texts(fig) -> str:
    return " | ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_the_json_contract_round_trips_and_tolerates_other_shapes():
    d = _data(START + 10 * DAY)
    again = charts.CriterionData.from_json(json.dumps(d.to_json()))
    assert again == d
    loose = charts.CriterionData.from_json({
        "series": {"s": [{"t": START, "v": 1}]}, "threshold": [2, "two"], "window_start": START,
        "window_end": START + DAY, "now": START + 2 * DAY, "offending": [], "holes": [[START, START + 60]]})
    assert loose.threshold == charts.Threshold(2.0, "two") and loose.series == {"s": [(START, 1.0)]}
    assert not loose.window_open and loose.holes == [(START, START + 60)]
    assert charts.CriterionData.from_json({**d.to_json(), "threshold": None}).threshold is None
    # phasegate.bake's own dataclass (asdict): the name is "criterion", tuples, no unit
    bake_shape = {"criterion": "probe never stale", "series": {"s": [(START, 1.0)]}, "threshold": {"value": 60.0,
                  "label": "60 min"}, "window_start": START, "window_end": START + DAY, "now": START,
                  "offending": [], "holes": []}
    assert charts.CriterionData.from_json(json.dumps(bake_shape)).title == "probe never stale"


def test_holes_are_the_spans_longer_than_the_tolerance_without_a_sample():
    pts = [(100.0, 1.0), (160.0, 1.0), (400.0, 1.0)]
    assert charts.holes_in(pts, 0, 500, 60) == [(0, 100.0), (160.0, 400.0), (400.0, 500)]
    assert charts.holes_in(pts, 90, 420, 100) == [(160.0, 400.0)]
    assert charts.holes_in([], 0, 500, 60) == [(0, 500)]  # no data at all: one hole over everything


def test_the_chart_marks_threshold_window_today_offending_and_holes():
    from matplotlib import dates as mdates

    d = _data(START + 10 * DAY)
    fig = charts.draw(d)
    ax = fig.axes[0]
    start, end, today = (mdates.date2num(charts._dt(t)) for t in (d.window_start, d.window_end, d.now))
    assert _vlines(ax) == pytest.approx([start, today, end])
    assert _hlines(ax) == [90]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["working set / limit, pod forgejo-0", "near OOM: 90% of the limit", "no data (1 hole)",
                      "offending (1)", "still to come"]
    offending = ax.collections[-1].get_offsets()
    assert offending.tolist() == [[mdates.date2num(charts._dt(d.offending[0][0])), 93.0]]
    texts = _texts(fig)
    assert "window start" in texts and "window end" in texts and "today (day 10.0 of 14)" in texts
    # the series line breaks at the hole instead of drawing through it
    ys = ax.get_lines()[0].get_ydata()
    assert any(y != y for y in ys)


def test_a_closed_window_has_no_today_and_nothing_still_to_come():
    fig = charts.draw(_data(START + 15 * DAY, holes=[], offending=[]))
    ax = fig.axes[0]
    assert len(_vlines(ax)) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "still to come" not in legend and "offending (0)" not in legend and "no data (1 hole)" not in legend
    assert "today" not in _texts(fig)


def test_no_secret_is_drawn_and_the_png_is_a_small_png():
    Secret(SECRET, "canary")
    d = _data(START + 10 * DAY, series={f'up{{token="{SECRET}"}}': [(START, 1.0)]}, title=f"criterion {SECRET}")
    assert SECRET not in _texts(charts.draw(d))
    png = charts.render_png(d)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and 10_000 < len(png) < 200_000
    assert SECRET.encode() not in png and b"Software" not in png


class _Recorder:
    def __init__(self):
        self.attached: list[tuple[str, str, bytes | str]] = []

    @allure_commons.hookimpl
    def attach_data(self, body, name, attachment_type, extension):
        self.attached.append((name, attachment_type.mime_type, body))


def test_every_criterion_data_attachment_gets_its_chart_beside_it():
    recorder, hook = _Recorder(), CriterionCharts()
    allure_commons.plugin_manager.register(recorder)
    allure_commons.plugin_manager.register(hook)
    try:
        report.attach_criterion_data(_data(START + 10 * DAY))
        allure.attach("other", name="not a criterion", attachment_type=allure.attachment_type.TEXT)
        allure.attach("{not json", name=charts.ATTACHMENT_NAME, attachment_type=allure.attachment_type.JSON)
    finally:
        allure_commons.plugin_manager.unregister(hook)
        allure_commons.plugin_manager.unregister(recorder)
    names = [(n, m) for n, m, _ in recorder.attached]
    assert names == [("criterion-data", "application/json"), ("Chart: forgejo never near OOM", "image/png"),
                     ("not a criterion", "text/plain"), ("criterion-data", "application/json")]  # bad data: no chart
    assert recorder.attached[1][2][:4] == b"\x89PNG" and hook.seen == 2


def test_the_same_criterion_data_again_gets_the_same_chart_drawn_once(monkeypatch):
    """The exit verdict attaches the data each criterion's own scenario was judged with: its chart again,
    not drawn again."""
    drawn = []
    render = charts.render_png
    monkeypatch.setattr(charts, "render_png", lambda data, **kw: drawn.append(data) or render(data, **kw))
    recorder, hook = _Recorder(), CriterionCharts()
    allure_commons.plugin_manager.register(recorder)
    allure_commons.plugin_manager.register(hook)
    try:
        for at in (START + 10 * DAY, START + 10 * DAY, START + 11 * DAY):
            report.attach_criterion_data(_data(at))
    finally:
        allure_commons.plugin_manager.unregister(hook)
        allure_commons.plugin_manager.unregister(recorder)
    pngs = [body for _, mime, body in recorder.attached if mime == "image/png"]
    assert len(pngs) == 3 and pngs[0] == pngs[1] and len(drawn) == 2  # other data (another day): drawn anew
    assert hook.criteria == ["forgejo never near OOM"] * 3


# -- the Phase 3 cutover matrix ------------------------------------------------------------------

def _row(project: str, start: int, steps: list[tuple[str, str]], phase: str = "phase3") -> dict:
    status = next((s for _, s in steps if s != "passed"), "passed")
    return {"name": f"{project} is cut over to Forgejo", "status": status, "start": start,
            "labels": [{"name": "phase", "value": phase}, {"name": "project", "value": project}],
            "steps": [{"name": n, "status": s, "statusDetails": {"message": f"{n}: {s}"}} for n, s in steps]}


def test_the_matrix_is_each_rows_own_steps_mapped_by_a_tolerant_table():
    results = [
        _row("job-hunter", 2, [("Given the project \"job-hunter\" of the inventory", "passed"),
                               ("And its pod template images come from Forgejo", "passed"),
                               ("And its rollout is complete", "passed"),
                               ("And every running pod of it runs the image Forgejo serves for its tag", "passed"),
                               ("And its image passes the integrity check on Forgejo", "passed"),
                               ("Then every project before it in the cutover order is cut over", "failed")]),
        _row("payslip-ingest", 1, [("Then its pod template images come from Forgejo", "failed")]),
        _row("fire-planner", 3, [("Then each pod's imageID is the digest Forgejo serves", "broken"),
                                 ("And its pods run the image from Forgejo", "passed")]),
        _row("elsewhere", 0, [("Then its rollout is complete", "failed")], phase="phase4"),
    ]
    rows = report.cutover_matrix(results)
    assert [r.project for r in rows] == ["payslip-ingest", "job-hunter", "fire-planner"]  # the order they ran
    first, second, third = ({c: cell.status for c, cell in r.cells.items()} for r in rows)
    assert first == {"template": "failed"}  # the rest: not reached
    assert second == {"template": "passed", "rollout": "passed", "pods": "passed", "integrity": "passed",
                      "order": "failed"}
    assert third == {"digest": "broken", "pods": "passed"}
    page = report.matrix_html(rows)
    assert "0 of 3 project(s) cut over; not cut over: payslip-ingest, job-hunter, fire-planner" in page
    assert page.count(">no step<") == 5 + 1 + 4  # payslip 5, job-hunter digest, fire-planner 4
    md = report.matrix_markdown(rows)
    assert md.splitlines()[0] == "| project | template | rollout | pods | digest | integrity | order |"
    assert "| payslip-ingest | **NO** | no step | no step | no step | no step | no step |" in md
    assert "| fire-planner | no step | no step | yes | could not judge | no step | no step |" in md
    png = report.matrix_png(rows)
    assert png[:4] == b"\x89PNG"


def test_steps_after_a_red_one_show_as_not_run():
    rows = report.cutover_matrix([_row("freedify", 1, [("Then its pod template images come from Forgejo", "failed"),
                                                       ("And its rollout is complete", "skipped")])])
    assert report._cell(rows[0].cells["rollout"]) == ("none", "not run")
    rows = report.cutover_matrix([_row("infra-ci", 1, [("Then its rollout is complete", "unknown")])])
    assert report._cell(rows[0].cells["rollout"]) == ("none", "pending / not judged")
    assert report._cell(rows[0].cells.get("order")) == report.NO_STEP


def test_the_matrix_goes_into_the_report_as_global_attachments(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "a-result.json").write_text(json.dumps(_row("payslip-ingest", 1, [("Then its rollout is complete", "passed")])))
    out = report.write_cutover_matrix(res, tmp_path / "matrix")
    globals_ = json.loads(next(out.glob("*-globals.json")).read_text())
    names = [(a["name"], a["type"]) for a in globals_["attachments"]]
    assert names == [(report.MATRIX_NAME, "image/png"), (f"{report.MATRIX_NAME} (HTML)", "text/html"),
                     (f"{report.MATRIX_NAME} (Markdown)", "text/markdown")]
    assert "payslip-ingest" in (out / globals_["attachments"][1]["source"]).read_text()
    (res / "a-result.json").write_text(json.dumps(_row("x", 1, [("Then its rollout is complete", "passed")], "phase2")))
    assert report.write_cutover_matrix(res, tmp_path / "none") is None  # no Phase 3 row, no matrix


def test_the_exit_verdict_attaches_the_data_each_verdict_was_judged_with_and_none_for_an_opt_out():
    """A kept verdict's data (its own scenario's), the judge's for one judged now, nothing for one not judged."""
    from phasegate import bake
    from phasegate.verdict import NotJudged

    def opted_out():
        raise NotJudged("probe never stale: not here (inventory [bake] not_judged)")

    kept = bake.CriterionVerdicts()
    kept.judge("PVC headroom", lambda: None, lambda: bake.CriterionData("PVC headroom"))
    judged_now = {"forgejo never near OOM": bake.CriterionData("forgejo never near OOM")}
    recorder = _Recorder()
    allure_commons.plugin_manager.register(recorder)
    try:
        bake.exit_verdict({"PVC headroom": lambda: None, "forgejo never near OOM": lambda: None,
                           "probe never stale": opted_out}, kept, judged_now)  # green: an opt-out is not red
    finally:
        allure_commons.plugin_manager.unregister(recorder)
    attached = [json.loads(body)["criterion"] for name, _, body in recorder.attached if name == charts.ATTACHMENT_NAME]
    assert attached == ["PVC headroom", "forgejo never near OOM"]


@pytest.mark.parametrize("step, check", [
    # today's wording (features/phase3_cutover.feature)
    ("Then every project before it in the cutover order is cut over", "order"),
    ("And its pod template images come from Forgejo", "template"),
    ("And its rollout is complete", "rollout"),
    ("And every running pod of it runs the image Forgejo serves for its tag", "pods"),
    ("And its image passes the integrity check on Forgejo", "integrity"),
    # the wording of the rows that judge their own project first (cutover rework)
    ("Then its pod templates name Forgejo for the project's images", "template"),
    ("And its rollouts are complete", "rollout"),
    ("And every running pod of it runs its templates' images", "pods"),
    ("And every running pod of it runs the digest Forgejo serves for its tag", "digest"),
    ("And its images pass the integrity check on Forgejo", "integrity"),
    ('Given the project "payslip-ingest" of the inventory', None),
])
def test_step_wording_maps_to_its_check(step, check):
    assert report._check_of(step) == check
