variable "proxmox_host" { type = string }

locals {
  k8s_cloud_init_snippet_name = "k8s_cloud_init.yaml"
}

module "k8s-node-template" {
  source          = "../../modules/create-template-vm"
  proxmox_host    = var.proxmox_host
  is_k8s_template = true
  snippet_name    = local.k8s_cloud_init_snippet_name
  containerd_config_update_command = <<-EOF
  sed -i 's|config_path = ""|config_path = "/etc/containerd/certs.d"|' /etc/containerd/config.toml

  mkdir -p /etc/containerd/certs.d/docker.io
  printf 'server = "https://registry-1.docker.io"\n\n[host."http://10.0.20.10:5000"]\n  capabilities = ["pull", "resolve"]\n' > /etc/containerd/certs.d/docker.io/hosts.toml

{{ registry_private_hosts }}  # Forgejo OCI registry: redirect to the in-cluster Traefik LB.
  mkdir -p /etc/containerd/certs.d/{{ forgejo_host }}
  printf 'server = "https://{{ forgejo_host }}"\n\n[host."{{ mirror }}"]\n  capabilities = ["pull", "resolve"]\n' > /etc/containerd/certs.d/{{ forgejo_host }}/hosts.toml
  EOF
}
