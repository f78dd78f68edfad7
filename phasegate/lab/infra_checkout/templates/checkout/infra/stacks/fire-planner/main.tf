variable "image_tag" {
  type    = string
  default = "latest"
}

locals {
  namespace = "fire-planner"
  image     = "{{ registry.fire-planner }}/fire-planner:${var.image_tag}"
  # One CronJob per job; every one runs the service image.
  jobs = {
    recompute = { schedule = "0 2 * * *", args = ["recompute"] }
    ingest    = { schedule = "30 2 * * *", args = ["ingest"] }
  }
}

resource "kubernetes_deployment" "fire_planner" {
  metadata {
    name      = "fire-planner"
    namespace = local.namespace
  }
  spec {
    template {
      metadata {}
      spec {
        container {
          name  = "fire-planner"
          image = local.image
        }
      }
    }
  }
}

resource "kubernetes_cron_job_v1" "jobs" {
  for_each = local.jobs
  metadata {
    name      = "fire-planner-${each.key}"
    namespace = local.namespace
  }
  spec {
    schedule = each.value.schedule
    job_template {
      metadata {}
      spec {
        template {
          metadata {}
          spec {
            container {
              name  = each.key
              image = local.image
              args  = each.value.args
            }
          }
        }
      }
    }
  }
}
