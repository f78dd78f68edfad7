locals {
  namespace = "claude-agent"
  image     = "{{ registry.claude-agent-service }}/claude-agent-service"
  image_tag = "2fd7670d"
  labels = {
    app = "claude-agent-service"
  }
}

resource "kubernetes_deployment" "claude_agent_service" {
  metadata {
    name      = "claude-agent-service"
    namespace = local.namespace
  }
  spec {
    template {
      metadata {
        labels = local.labels
      }
      spec {
        image_pull_secrets {
          name = "registry-credentials"
        }
        init_container {
          name    = "seed"
          image   = "busybox:1.37"
          command = ["sh", "-c", "cp -r /seed/. /work/"]
        }
        container {
          name  = "agent"
          image = "${local.image}:${local.image_tag}"
        }
        container {
          name  = "vault-agent"
          image = "${local.image}:${local.image_tag}"
        }
      }
    }
  }
}
