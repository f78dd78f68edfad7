variable "image_tag" {
  type    = string
  default = "latest"
}

locals {
  namespace = "job-hunter"
  image     = "{{ registry.job-hunter }}/job-hunter:${var.image_tag}"
}

resource "kubernetes_deployment" "job_hunter" {
  metadata {
    name      = "job-hunter"
    namespace = local.namespace
  }
  spec {
    template {
      metadata {}
      spec {
        image_pull_secrets {
          name = "registry-credentials"
        }
        container {
          name  = "job-hunter"
          image = local.image
        }
      }
    }
  }
}
