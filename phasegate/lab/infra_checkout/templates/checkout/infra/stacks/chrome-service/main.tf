variable "nfs_server" { type = string }

locals {
  image        = "mcr.microsoft.com/playwright:v1.48.0-noble"
  python_image = "mcr.microsoft.com/playwright/python:v1.48.0-noble"
  # Sidecars next to the browser: one container each (dynamic block below).
  sidecars = {
    novnc = {
      image = "{{ registry.chrome-novnc }}/chrome-service-novnc:v4"
      port  = 6080
    }
    snapshot = {
      image = local.python_image
      port  = 8090
    }
  }
}

resource "kubernetes_deployment" "chrome_service" {
  metadata {
    name      = "chrome-service"
    namespace = "chrome-service"
  }
  spec {
    template {
      metadata {}
      spec {
        image_pull_secrets {
          name = "registry-credentials"
        }
        container {
          name  = "chrome"
          image = local.image
        }
        dynamic "container" {
          for_each = local.sidecars
          content {
            name  = container.key
            image = container.value.image
            port {
              container_port = container.value.port
            }
          }
        }
      }
    }
  }
}
