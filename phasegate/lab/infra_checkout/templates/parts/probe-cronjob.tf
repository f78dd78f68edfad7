resource "kubernetes_cron_job_v1" "{{ resource }}" {
  metadata {
    name      = "{{ name }}"
    namespace = "monitoring"
  }
  spec {
    schedule                      = "{{ schedule }}"
    successful_jobs_history_limit = 3
    failed_jobs_history_limit     = 3
    job_template {
      metadata {}
      spec {
        template {
          metadata {}
          spec {
            container {
              name  = "{{ name }}"
              image = "docker.io/library/alpine:3.20"
              env {
                name  = "REGISTRY_URL"
                value = "https://{{ target }}"
              }
              env {
                name  = "PUSHGATEWAY"
                value = "http://prometheus-prometheus-pushgateway.monitoring:9091/metrics/job/{{ name }}"
              }
            }
          }
        }
      }
    }
  }
}
