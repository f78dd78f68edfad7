"""The smoke image runs: a static program per platform, in one OCI index, built in code (phasegate.images)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from phasegate import images


def test_the_smoke_image_is_an_oci_index_of_amd64_and_arm64_with_a_command():
    idx = images.build_smoke("unit")
    doc = json.loads(idx.manifest)
    assert doc["mediaType"] == images.OCI_INDEX
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in doc["manifests"]] == \
        [("linux", "amd64"), ("linux", "arm64")]
    for child in idx.children:
        assert json.loads(child.config.data)["config"]["Cmd"] == [images.SMOKE_PATH]
    assert images.build_smoke("unit").digest == idx.digest != images.build_smoke("other").digest


@pytest.mark.parametrize("arch, machine", [("amd64", 62), ("arm64", 183)])
def test_each_program_is_a_static_elf_for_its_machine(arch, machine):
    elf = images.static_hello_elf(arch)
    assert elf[:4] == b"\x7fELF" and elf[4] == 2 and int.from_bytes(elf[18:20], "little") == machine
    assert elf.endswith(images.SMOKE_MESSAGE)


def _run(tmp_path, arch, runner):
    prog = tmp_path / f"hello-{arch}"
    prog.write_bytes(images.static_hello_elf(arch))
    prog.chmod(0o755)
    return subprocess.run([*runner, str(prog)], capture_output=True, timeout=20)


@pytest.mark.skipif(__import__("platform").machine() != "x86_64", reason="runs the amd64 program natively")
def test_the_amd64_program_prints_and_exits_0(tmp_path):
    r = _run(tmp_path, "amd64", [])
    assert (r.returncode, r.stdout) == (0, images.SMOKE_MESSAGE)


@pytest.mark.skipif(shutil.which("qemu-aarch64") is None, reason="qemu-user (qemu-aarch64) not installed")
def test_the_arm64_program_prints_and_exits_0_under_qemu(tmp_path):
    r = _run(tmp_path, "arm64", ["qemu-aarch64"])
    assert (r.returncode, r.stdout) == (0, images.SMOKE_MESSAGE)
