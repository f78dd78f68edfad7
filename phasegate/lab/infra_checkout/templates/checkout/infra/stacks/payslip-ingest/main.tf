variable "image_tag" {
  type        = string
  default     = "latest"
  description = "payslip-ingest image tag. CI passes the 8-hex commit SHA."
}

variable "postgresql_host" { type = string }

locals {
  namespace = "payslip-ingest"
  image     = "{{ registry.payslip-ingest }}/payslip-ingest:${var.image_tag}"
  labels = {
    app = "payslip-ingest"
  }
}

resource "kubernetes_namespace" "payslip_ingest" {
  metadata {
    name = local.namespace
  }
}

resource "kubernetes_deployment" "payslip_ingest" {
  metadata {
    name      = "payslip-ingest"
    namespace = kubernetes_namespace.payslip_ingest.metadata[0].name
    labels    = local.labels
  }
  spec {
    replicas = 1
    selector {
      match_labels = local.labels
    }
    template {
      metadata {
        labels = local.labels
      }
      spec {
        image_pull_secrets {
          name = "registry-credentials"
        }
        init_container {
          name    = "migrate"
          image   = local.image
          command = ["alembic", "upgrade", "head"]
        }
        container {
          name  = "payslip-ingest"
          image = local.image
          port {
            container_port = 8080
          }
          env {
            name  = "DB_HOST"
            value = var.postgresql_host
          }
        }
      }
    }
  }
  lifecycle {
    ignore_changes = [
      spec[0].template[0].spec[0].container[0].image, # KEEL_IGNORE_IMAGE
    ]
  }
}

resource "kubernetes_cron_job_v1" "payroll_sync" {
  metadata {
    name      = "payroll-sync"
    namespace = kubernetes_namespace.payslip_ingest.metadata[0].name
  }
  spec {
    schedule = "0 6 * * *"
    job_template {
      metadata {}
      spec {
        template {
          metadata {}
          spec {
            image_pull_secrets {
              name = "registry-credentials"
            }
            container {
              name    = "sync"
              image   = local.image
              command = ["python", "-m", "payslip_ingest.sync"]
            }
            restart_policy = "OnFailure"
          }
        }
      }
    }
  }
}
