module "freedify" {
  source          = "./factory"
  name            = "freedify"
  tls_secret_name = var.tls_secret_name
}
