variable "tls_secret_name" {}
variable "name" {}
variable "tag" {
  default = "latest"
}

resource "kubernetes_deployment" "freedify" {
  metadata {
    name      = var.name
    namespace = "freedify"
  }
  spec {
    template {
      metadata {}
      spec {
        image_pull_secrets {
          name = "registry-credentials"
        }
        container {
          image = "{{ registry.freedify }}/freedify:${var.tag}"
          name  = "freedify"
        }
      }
    }
  }
}
