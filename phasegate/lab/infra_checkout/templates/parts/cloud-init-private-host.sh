  # Hostname-based entry: redirects to the LAN IP
  mkdir -p /etc/containerd/certs.d/{{ private_host }}
  printf 'server = "https://{{ private_host }}"\n\n[host."https://{{ private_alias }}"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n' > /etc/containerd/certs.d/{{ private_host }}/hosts.toml
