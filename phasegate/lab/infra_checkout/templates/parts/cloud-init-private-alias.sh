  # IP-based entry: direct access, skip TLS verify
  mkdir -p /etc/containerd/certs.d/{{ private_alias }}
  printf 'server = "https://{{ private_alias }}"\n\n[host."https://{{ private_alias }}"]\n  capabilities = ["pull", "resolve", "push"]\n  skip_verify = true\n' > /etc/containerd/certs.d/{{ private_alias }}/hosts.toml
