"""infra-ci's next push applies cleanly (issue 15.7): success, failure, pending, nothing."""

from __future__ import annotations

import datetime as dt

import pytest

from phasegate import infra_ci
from phasegate.forgejo_repos import Commit
from phasegate.verdict import GateFailed, Pending

CTX = "ci/woodpecker/push/default"


class Repos:
    def __init__(self, states):
        self.states = states  # newest first: (sha, {context: state})

    def commits(self, repo, limit=10):
        return [Commit(sha, dt.datetime(2026, 5, 7, 19, i, tzinfo=dt.UTC), f"commit {i}")
                for i, (sha, _) in enumerate(self.states)][:limit]

    def status(self, repo, sha, context=""):
        return dict(self.states)[sha].get(context, "")


def test_the_newest_apply_decides():
    ok = Repos([("a" * 40, {"ci/woodpecker/push/build-cli": "success"}), ("b" * 40, {CTX: "success"}),
                ("c" * 40, {CTX: "failure"})])
    assert infra_ci.judge_next_apply(ok, "viktor/infra", CTX, 10).endswith("success")
    with pytest.raises(GateFailed, match="failure"):
        infra_ci.judge_next_apply(Repos([("a" * 40, {CTX: "failure"}), ("b" * 40, {CTX: "success"})]), "viktor/infra", CTX, 10)
    with pytest.raises(Pending, match="still running"):
        infra_ci.judge_next_apply(Repos([("a" * 40, {CTX: "pending"})]), "viktor/infra", CTX, 10)
    with pytest.raises(GateFailed, match="none of"):
        infra_ci.judge_next_apply(Repos([("a" * 40, {})]), "viktor/infra", CTX, 10)
