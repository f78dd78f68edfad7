#!/usr/bin/env bash
# One-shot deployment of the {{ forgejo_host }} containerd hosts.toml entry across every k8s node.
set -euo pipefail

CERTS_DIR=/etc/containerd/certs.d/{{ forgejo_host }}
HOSTS_TOML='server = "https://{{ forgejo_host }}"

{{ mirror_host }}'

for n in $(kubectl get nodes -o name | sed 's|^node/||'); do
  kubectl drain "$n" --ignore-daemonsets --delete-emptydir-data --force --grace-period=60
  ssh "wizard@$n" sudo bash -c "mkdir -p $CERTS_DIR && printf '%s' '$HOSTS_TOML' > $CERTS_DIR/hosts.toml && systemctl restart containerd"
  kubectl uncordon "$n"
done
