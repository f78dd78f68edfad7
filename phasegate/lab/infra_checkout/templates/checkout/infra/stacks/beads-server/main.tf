variable "beadboard_image_tag" {
  type    = string
  default = "17a38e43"
}

variable "claude_agent_service_image_tag" {
  type    = string
  default = "2fd7670d"
}

resource "kubernetes_deployment" "dolt" {
  metadata {
    name      = "dolt"
    namespace = "beads-server"
  }
  spec {
    template {
      metadata {}
      spec {
        container {
          name  = "dolt"
          image = "dolthub/dolt-sql-server:2.0.3"
        }
      }
    }
  }
}

resource "kubernetes_deployment" "beadboard" {
  metadata {
    name      = "beadboard"
    namespace = "beads-server"
  }
  spec {
    template {
      metadata {}
      spec {
        image_pull_secrets {
          name = "registry-credentials"
        }
        container {
          name  = "beadboard"
          image = "{{ registry.beadboard }}/beadboard:${var.beadboard_image_tag}"
        }
      }
    }
  }
}

locals {
  claude_agent_service_image = "{{ registry.beads-agent }}/claude-agent-service:${var.claude_agent_service_image_tag}"
  beads_jobs = {
    dispatcher = "*/5 * * * *"
    reaper     = "0 * * * *"
  }
}

resource "kubernetes_cron_job_v1" "beads" {
  for_each = local.beads_jobs
  metadata {
    name      = "beads-${each.key}"
    namespace = "beads-server"
  }
  spec {
    schedule = each.value
    job_template {
      metadata {}
      spec {
        template {
          metadata {}
          spec {
            container {
              name  = each.key
              image = local.claude_agent_service_image
            }
          }
        }
      }
    }
  }
}
