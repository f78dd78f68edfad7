"""Every place containerd takes registry configuration from (issue 15.4)."""

from __future__ import annotations

from phasegate import containerd_config as cc

OLD = ["registry.viktorbarzin.me", "registry.viktorbarzin.me:5050", "10.0.20.10:5050"]

V2 = '''
version = 2
imports = ["/etc/containerd/conf.d/*.toml"]
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
'''
V2_INLINE = '''
version = 2
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.viktorbarzin.me"]
  endpoint = ["https://10.0.20.10:5050"]
[plugins."io.containerd.grpc.v1.cri".registry.configs."10.0.20.10:5050".tls]
  insecure_skip_verify = true
'''
V3 = '''
version = 3
[plugins."io.containerd.cri.v1.images".registry]
  config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
'''


def test_config_paths_of_both_config_versions_and_imports():
    assert cc.registry_config(V2).config_paths == ["/etc/containerd/certs.d"]
    assert cc.registry_config(V2).imports == ["/etc/containerd/conf.d/*.toml"]
    v3 = cc.registry_config(V3)
    assert v3.config_paths == ["/etc/containerd/certs.d", "/etc/docker/certs.d"]
    assert "/etc/docker/certs.d/10.0.20.10:5050/hosts.toml" in cc.hosts_toml_paths(v3, OLD)
    assert "/etc/containerd/certs.d/_default/hosts.toml" in cc.hosts_toml_paths(v3, OLD)


def test_every_place_that_names_the_old_registry():
    cfg = cc.registry_config(V2, V2_INLINE)  # an import that brings back inline mirrors
    files = {
        "/etc/containerd/certs.d/registry.viktorbarzin.me/hosts.toml": None,  # removed: fine
        "/etc/containerd/certs.d/10.0.20.10:5050/hosts.toml": 'server = "https://10.0.20.10:5050"\n',
        "/etc/containerd/certs.d/_default/hosts.toml": '[host."https://10.0.20.10:5050"]\n  capabilities = ["pull"]\n',
        "/etc/containerd/certs.d/docker.io/hosts.toml":
            'server = "https://registry-1.docker.io"\n[host."http://10.0.20.10:5000"]\n  capabilities = ["pull", "resolve"]\n',
    }
    refs = cc.references(cfg, files, OLD)
    assert 'config.toml mirrors."registry.viktorbarzin.me" (inline, deprecated)' in refs
    assert 'config.toml mirrors."registry.viktorbarzin.me" endpoint https://10.0.20.10:5050' in refs
    assert 'config.toml configs."10.0.20.10:5050" (inline tls/auth)' in refs
    assert "/etc/containerd/certs.d/10.0.20.10:5050/hosts.toml (a hosts.toml for 10.0.20.10:5050)" in refs
    assert '/etc/containerd/certs.d/_default/hosts.toml: [host."https://10.0.20.10:5050"]' in refs
    assert not [r for r in refs if "docker.io" in r]  # the pull-through cache on :5000 stays


def test_a_clean_node_has_no_reference():
    cfg = cc.registry_config(V2)
    files = {p: None for p in cc.hosts_toml_paths(cfg, OLD)}
    assert cc.references(cfg, files, OLD) == []
