"""Every place containerd takes registry configuration from (issue 15.4), judged without a cluster.

A fake node (files in a dict) answers the reads the gate makes through reader pods; the lab runs the same
code through real pods (tests/faults/cluster.toml, "No node's containerd registry configuration names ...").
"""

from __future__ import annotations

import posixpath

import pytest

from phasegate import containerd_config as cc
from phasegate.verdict import Broken, GateFailed

OLD = ["registry.viktorbarzin.me", "registry.viktorbarzin.me:5050", "10.0.20.10:5050"]
CFG = "/etc/containerd/config.toml"
CERTS = "/etc/containerd/certs.d"

# as cloud-init leaves it: `containerd config default` (1.6/1.7, version 2) with config_path set by sed
V2 = '''version = 2
imports = []
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
    [plugins."io.containerd.grpc.v1.cri".registry.mirrors]
'''
V3 = '''version = 3
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
'''
DOCKER_IO = ('server = "https://registry-1.docker.io"\n\n[host."http://10.0.20.10:5000"]\n'
             '  capabilities = ["pull", "resolve"]\n')  # stacks/infra/main.tf:72 @5d22b449: the cache stays
FORGEJO = 'server = "https://forgejo.viktorbarzin.me"\n\n[host."https://10.0.20.200"]\n  capabilities = ["pull", "resolve"]\n'
PRIVATE = ('server = "https://10.0.20.10:5050"\n\n[host."https://10.0.20.10:5050"]\n'
           '  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n')  # main.tf:81


class FakeNode:
    """Node files as reader pods see them: `read_node_files` (cat) and `list_node_dirs` (ls -1A)."""

    def __init__(self, files: dict[str, str], runtime: str = "containerd://1.7.27", dirs: tuple[str, ...] = ()):
        self.files = files
        self.dirs = set(dirs)  # directories without files
        self.runtime = runtime
        self.reads: list[str] = []

    def node_names(self):
        return ["k8s-node1"]

    def node_runtimes(self):
        return {"k8s-node1": self.runtime}

    def read_node_files(self, ns, node, paths):
        self.reads += paths
        return {p: self.files.get(p) for p in paths}

    def list_node_dirs(self, ns, node, dirs):
        out = {}
        for d in dirs:
            d = d.rstrip("/")
            entries = {p[len(d) + 1:].split("/", 1)[0] for p in [*self.files, *self.dirs] if p.startswith(d + "/")}
            exists = entries or d in self.dirs
            out[d] = sorted(entries) if exists else None
        return out


def read(files: dict[str, str], runtime: str = "containerd://1.7.27", dirs: tuple[str, ...] = ()) -> cc.NodeConfig:
    return cc.read_node(FakeNode(files, runtime, dirs), "ns", "k8s-node1", runtime, CFG, CERTS)


def refs(files: dict[str, str], **kw) -> list[str]:
    return [str(r) for r in cc.references(read(files, **kw), OLD)]


def clean(**extra: str) -> dict[str, str]:
    return {CFG: V2, f"{CERTS}/docker.io/hosts.toml": DOCKER_IO, f"{CERTS}/forgejo.viktorbarzin.me/hosts.toml": FORGEJO,
            **extra}


def test_config_paths_of_both_config_versions_and_imports():
    assert cc.registry_config(V2).config_paths == [CERTS]
    assert cc.registry_config(V3).config_paths == [CERTS, "/etc/docker/certs.d"]
    assert cc.registry_config('imports = ["/etc/containerd/conf.d/*.toml"]\n').imports == ["/etc/containerd/conf.d/*.toml"]
    assert cc.registry_config('version = 1\n[plugins.cri.registry]\n  config_path = "/x"\n').config_paths == ["/x"]


def test_a_later_file_with_the_cri_plugin_replaces_the_whole_section():
    """containerd's mergeConfig replaces plugin sections: an import with an inline config drops config_path."""
    imp = '[plugins."io.containerd.grpc.v1.cri".registry.configs."10.0.20.10:5050".tls]\n  insecure_skip_verify = true\n'
    merged = cc.registry_config(V2, imp)
    assert merged.config_paths == [] and merged.configs == ["10.0.20.10:5050"]


def test_the_clean_node_of_the_infra_repository_names_no_old_host():
    nc = read(clean())
    assert cc.references(nc, OLD) == []
    assert nc.config_paths == [CERTS] and nc.problems == []
    assert nc.roots == {CERTS: ["docker.io", "forgejo.viktorbarzin.me"]}
    cc.judge_named_nowhere([nc], OLD)  # passes


def test_host_directories_in_every_form_containerd_looks_up():
    """hostPaths: `<host>`, `<host with :port as _port_>`; a directory without hosts.toml counts too."""
    found = refs(clean(**{f"{CERTS}/10.0.20.10:5050/hosts.toml": PRIVATE}),
                 dirs=(f"{CERTS}/registry.viktorbarzin.me_5050_",))
    assert f"{CERTS}/10.0.20.10:5050/hosts.toml: a host directory for 10.0.20.10:5050: containerd configures " \
           "10.0.20.10:5050 from it" in found
    assert f'{CERTS}/10.0.20.10:5050/hosts.toml:1: server = "https://10.0.20.10:5050"' in found
    assert f'{CERTS}/10.0.20.10:5050/hosts.toml:3: [host."https://10.0.20.10:5050"]' in found
    assert any(r.startswith(f"{CERTS}/registry.viktorbarzin.me_5050_/ (no hosts.toml: its certificate files): "
                            "a host directory for registry.viktorbarzin.me:5050") for r in found)


def test_default_hosts_toml_and_other_hosts_pointing_at_the_old_registry():
    found = refs(clean(**{
        f"{CERTS}/_default/hosts.toml": '[host."https://10.0.20.10:5050"]\n  capabilities = ["pull"]\n',
        f"{CERTS}/ghcr.io/hosts.toml": 'server = "https://ghcr.io"\n[host."https://registry.viktorbarzin.me/v2/ghcr"]\n'
                                       '  override_path = true\n'}))
    assert found == [f'{CERTS}/_default/hosts.toml:1: [host."https://10.0.20.10:5050"]',
                     f'{CERTS}/ghcr.io/hosts.toml:2: [host."https://registry.viktorbarzin.me/v2/ghcr"]']


def test_inline_mirrors_configs_and_auths_in_config_toml_with_their_lines():
    text = V2 + ('\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.viktorbarzin.me"]\n'
                 '  endpoint = ["https://10.0.20.10:5050"]\n'
                 '[plugins."io.containerd.grpc.v1.cri".registry.configs."10.0.20.10:5050".tls]\n'
                 '  insecure_skip_verify = true\n'
                 '[plugins."io.containerd.grpc.v1.cri".registry.auths."https://registry.viktorbarzin.me"]\n'
                 '  username = "viktor"\n')
    nc = read(clean(**{CFG: text}))
    assert "containerd refuses to load its CRI plugin" in nc.config_paths_why
    found = [str(r) for r in cc.references(nc, OLD)]
    assert found == [
        f'{CFG}:9: [plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.viktorbarzin.me"] (inline mirror, '
        'deprecated)',
        f'{CFG}:10: plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.viktorbarzin.me".endpoint = '
        '["https://10.0.20.10:5050"]',
        f'{CFG}:11: [plugins."io.containerd.grpc.v1.cri".registry.configs."10.0.20.10:5050"] (inline registry config, '
        'deprecated)',
        f'{CFG}:13: [plugins."io.containerd.grpc.v1.cri".registry.auths."https://registry.viktorbarzin.me"] '
        '(inline auths, deprecated)',
    ]


def test_any_other_key_naming_the_old_registry_counts_and_comments_do_not():
    text = V2.replace('"registry.k8s.io/pause:3.6"', '"registry.viktorbarzin.me/pause:3.6" # was registry.k8s.io')
    text += "# registry.viktorbarzin.me removed 2026-05-07\n"
    assert refs(clean(**{CFG: text})) == [
        f'{CFG}:4: plugins."io.containerd.grpc.v1.cri".sandbox_image = "registry.viktorbarzin.me/pause:3.6"']


def test_a_glob_import_is_listed_and_each_match_read_in_order_relative_imports_from_the_importer():
    files = clean(**{
        CFG: V2.replace("imports = []", 'imports = ["/etc/containerd/conf.d/*.toml", "extra.toml"]'),
        "/etc/containerd/conf.d/10-gc.toml": '[plugins."io.containerd.gc.v1.scheduler"]\n  pause_threshold = 0.02\n',
        "/etc/containerd/conf.d/20-private.toml": 'imports = ["../nested.toml"]\n',
        "/etc/containerd/conf.d/README": "registry.viktorbarzin.me",  # not *.toml: containerd never reads it
        "/etc/containerd/extra.toml": "",
        "/etc/containerd/nested.toml": '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."10.0.20.10:5050"]\n'
                            '  endpoint = ["https://10.0.20.10:5050"]\n',
    })
    nc = read(files)
    assert list(nc.files) == [CFG, "/etc/containerd/conf.d/10-gc.toml", "/etc/containerd/conf.d/20-private.toml",
                              "/etc/containerd/extra.toml", "/etc/containerd/nested.toml"]
    found = [str(r) for r in cc.references(nc, OLD)]
    assert found[0] == '/etc/containerd/nested.toml:1: [plugins."io.containerd.grpc.v1.cri".registry.mirrors."10.0.20.10:5050"] ' \
                       '(inline mirror, deprecated)'
    assert len(found) == 2
    # the import replaced the CRI section: containerd now reads no hosts directory (1.7, inline mirrors)
    assert nc.config_paths == [] and "inline mirrors" in nc.config_paths_why


def test_certs_d_is_read_even_when_containerd_does_not_read_it_and_says_so():
    no_path = V2.replace('config_path = "/etc/containerd/certs.d"', 'config_path = ""')
    found = refs(clean(**{CFG: no_path, f"{CERTS}/10.0.20.10:5050/hosts.toml": PRIVATE}))
    assert found and all("containerd does not read /etc/containerd/certs.d now: no config_path: containerd 1.7.27 reads "
                         "no hosts directory" in r for r in found)


@pytest.mark.parametrize("runtime, dirs", [
    ("containerd://1.6.22", [CERTS]),  # 1.x: no config_path, no hosts directory; certs.d still listed (inventory)
    ("containerd://2.1.4", [CERTS]),
    ("containerd://2.2.4", [CERTS, "/etc/docker/certs.d"]),  # 2.2: the default config_path on Linux
])
def test_an_absent_config_toml_is_judged_as_containerd_s_defaults(runtime, dirs):
    files = {f"{CERTS}/forgejo.viktorbarzin.me/hosts.toml": FORGEJO,
             "/etc/docker/certs.d/10.0.20.10:5050/ca.crt": "PEM"}
    nc = read(files, runtime=runtime)
    assert nc.files == {CFG: None} and nc.problems == []
    assert list(nc.roots) == dirs
    assert f"{CFG} absent, containerd runs on its defaults" in nc.config_paths_why
    found = [str(r) for r in cc.references(nc, OLD)]
    if runtime.endswith("2.2.4"):  # /etc/docker/certs.d/10.0.20.10:5050/ configures the host from its ca.crt
        assert found == ["/etc/docker/certs.d/10.0.20.10:5050/ (no hosts.toml: its certificate files): a host "
                         "directory for 10.0.20.10:5050: containerd configures 10.0.20.10:5050 from it"]
    else:
        assert found == []


def test_containerd_2_2_defaults_config_path_also_when_config_toml_leaves_it_empty():
    """containerd 2.x writes config_path = '' (k8s-node-containerd-setup.sh:16-22 @8ed427a7): from 2.2 that is
    the default /etc/containerd/certs.d:/etc/docker/certs.d, not "no hosts directory"."""
    nc = read({CFG: V3.replace('"/etc/containerd/certs.d:/etc/docker/certs.d"', "''")}, runtime="containerd://2.2.4")
    assert nc.config_paths == [CERTS, "/etc/docker/certs.d"]


def test_what_cannot_be_judged_is_broken():
    nc = read({f"{CERTS}/forgejo.viktorbarzin.me/hosts.toml": FORGEJO}, runtime="cri-o://1.30.0")
    assert "whether containerd reads /etc/containerd/certs.d:/etc/docker/certs.d" in nc.problems[0]
    with pytest.raises(Broken, match="node k8s-node1: no config_path"):
        cc.judge_named_nowhere([nc], OLD)
    nc = read(clean(**{CFG: V2.replace("imports = []", 'imports = ["/etc/containerd/missing.toml"]')}))
    assert nc.problems == ["/etc/containerd/missing.toml, imported by the configuration, is absent: containerd refuses "
                           "to start (failed to load TOML)"]
    nc = read(clean(**{CFG: V2 + '[plugins."io.containerd.grpc.v1.cri"]\n'}))
    assert "is not valid TOML" in nc.problems[0]
    with pytest.raises(Broken, match="containerd refuses to start with it"):
        cc.judge_named_nowhere([nc], OLD)


def test_an_invalid_config_naming_the_old_host_fails_by_its_lines():
    text = V2 + '[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "10.0.20.10:5050/pause:3.6"\n'
    with pytest.raises(GateFailed) as e:
        cc.judge_named_nowhere([read(clean(**{CFG: text}))], OLD)
    assert f'node k8s-node1: {CFG}:9: sandbox_image = "10.0.20.10:5050/pause:3.6" (the file is not valid TOML' \
           in e.value.seen


def test_the_verdict_names_node_file_line_and_key_and_what_was_read():
    with pytest.raises(GateFailed) as e:
        cc.judge_named_nowhere([read(clean(**{f"{CERTS}/_default/hosts.toml": 'server = "https://10.0.20.10:5050"\n'}))],
                               OLD)
    assert e.value.seen == f'node k8s-node1: {CERTS}/_default/hosts.toml:1: server = "https://10.0.20.10:5050"'
    assert "registry.viktorbarzin.me, registry.viktorbarzin.me:5050, 10.0.20.10:5050" in e.value.expected
    assert "node k8s-node1 (containerd://1.7.27): read /etc/containerd/config.toml; hosts directories containerd " \
           "reads: /etc/containerd/certs.d (config_path); listed /etc/containerd/certs.d: _default, docker.io, " \
           "forgejo.viktorbarzin.me" in e.value.evidence
    with pytest.raises(GateFailed, match="the API lists no node"):
        cc.judge_named_nowhere([], OLD)


def test_names_is_exact_per_segment():
    assert cc.names("http://10.0.20.10:5000", OLD) is None  # the docker.io cache on the registry VM
    assert cc.names("10.0.20.10", OLD) is None
    assert cc.names("https://Registry.Viktorbarzin.me/v2/", OLD) == "registry.viktorbarzin.me"
    assert cc.names("registry.viktorbarzin.me:5050/x@sha256:ab", OLD) == "registry.viktorbarzin.me:5050"
    assert cc.names("10.0.20.10_5050_", OLD) == "10.0.20.10:5050"
    assert cc.names("/etc/containerd/certs.d/10.0.20.10:5050/ca.crt", OLD) == "10.0.20.10:5050"
    assert cc.names("forgejo.viktorbarzin.me", OLD) is None
    assert cc.runtime_version("containerd://v2.2.4") == (2, 2) and cc.runtime_version("docker://24.0") is None


def test_read_nodes_uses_the_inventory_paths_and_each_nodes_runtime():
    from phasegate import config

    fake = FakeNode(clean())
    (nc,) = cc.read_nodes(fake, "ns", config.Cluster())
    assert nc.runtime == "containerd://1.7.27" and nc.config_toml == CFG
    assert fake.reads[0] == CFG and posixpath.basename(fake.reads[-1]) == "hosts.toml"
