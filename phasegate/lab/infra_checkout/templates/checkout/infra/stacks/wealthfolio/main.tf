variable "tls_secret_name" {
  type      = string
  sensitive = true
}

resource "kubernetes_deployment" "wealthfolio" {
  metadata {
    name      = "wealthfolio"
    namespace = "wealthfolio"
  }
  spec {
    template {
      metadata {}
      spec {
        container {
          name  = "wealthfolio"
          image = "afadil/wealthfolio:3.2"
        }
        container {
          name  = "backup"
          image = "alpine:3.20"
        }
      }
    }
  }
}

resource "kubernetes_cron_job_v1" "wealthfolio_sync" {
  metadata {
    name      = "wealthfolio-sync"
    namespace = "wealthfolio"
  }
  spec {
    schedule = "0 */6 * * *"
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
              name  = "sync"
              image = "{{ registry.wealthfolio-sync }}/wealthfolio-sync:latest"
            }
          }
        }
      }
    }
  }
}
