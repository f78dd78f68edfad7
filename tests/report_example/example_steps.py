"""Steps of the report example (copied as steps/test_example.py into a temporary project)."""

import os

import httpx
from pytest_bdd import given, parsers, scenarios, then, when

from phasegate import http, report
from phasegate.secrets import Secret
from phasegate.verdict import check

scenarios("example.feature")


@given("the example registry", target_fixture="registry")
def example_registry(example_server):
    return example_server


@given("a registry that does not listen", target_fixture="registry")
def dead_registry(dead_url):
    return dead_url


@when(parsers.parse('the gate reads "{path}" with its token'), target_fixture="answer")
def read(registry, path, http_settings):
    token = Secret(os.environ["EXAMPLE_TOKEN"], name="example_token")
    with http.client(http_settings, base_url=registry) as c:
        return c.get(path, headers={"Authorization": f"Bearer {token.reveal()}"})


@then(parsers.parse("the answer is HTTP {status:d}"))
def answer_is(answer: httpx.Response, status):
    # a careless step that prints what it should not: the report's scrub must catch it
    print("debug:", os.environ["EXAMPLE_TOKEN"])
    check(answer.status_code == status, expected=f"HTTP {status}", seen=f"HTTP {answer.status_code}",
          where=str(answer.request.url),
          evidence=f"the registry answered {answer.status_code} with body {answer.text[:200]!r}")


@then("the evidence of the bake is attached")
def bake_evidence():
    report.attach_promql(
        'registry_manifest_integrity_failures{instance="forgejo.lab.test"}',
        {"resultType": "matrix", "result": [{"metric": {"instance": "forgejo.lab.test"},
                                              "values": [[1779100000 + 900 * i, "0"] for i in range(10)]}]},
        window="2026-05-18 .. 2026-06-01 (14d)",
    )
    report.attach_integrity(
        [{"repository": "viktor/app", "tag": "1", "digest": "sha256:" + "ab" * 32, "kind": "index-child",
          "status": 404, "path": ["viktor/app:1", "sha256:" + "cd" * 32]}],
        summary="3 repositories, 5 tags, 1 broken",
    )


@then(parsers.parse("the cutover matrix of {project} is attached on node {node}"))
def cutover(project, node):
    report.label("registry", "forgejo.lab.test")
    report.attach_pulls([{"node": node, "image": f"forgejo.lab.test/viktor/{project}:1", "ok": True,
                          "digest": "sha256:" + "ef" * 32}])
    report.attach_cutover_matrix([
        {"project": project, "stack_flipped": True, "rollout_complete": True, "image_id_from_forgejo": True,
         "digest_matches": (False, "pod runs sha256:0000"), "integrity": True},
    ])


@then("the unbuildable client answers")
def unbuildable(unbuildable_client):
    pass
