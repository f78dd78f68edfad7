"""Steps about the infra repository checkout (thin: phasegate.infra_repo judges)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then

from phasegate import infra_ci, infra_repo, preflight


@given("the infra repository checkout", target_fixture="infra_checkout")
def infra_checkout(inventory):
    return infra_repo.InfraCheckout.from_inventory(inventory)


@then(parsers.parse('the cutover stack of "{project}" resolves its images to the Forgejo registry'))
def stack_on_forgejo(infra_checkout, inventory, project):
    infra_repo.gate_stack_on_forgejo(infra_checkout, infra_repo.stack_spec(inventory, project))


@then(parsers.parse('every image the stack of "{project}" pulls after its flip is on Forgejo with '
                    "registry-private's digest and intact"))
def preflight_stack(infra_checkout, inventory, dual_push_registries, project):
    regs = dual_push_registries
    print("\n".join(preflight.gate_stack(infra_checkout, infra_repo.stack_spec(inventory, project), regs.forgejo, regs.private)))


@then("every image every cutover stack pulls after its flip is on Forgejo with registry-private's digest and intact")
def preflight_every_stack(infra_checkout, inventory, dual_push_registries):
    regs = dual_push_registries
    print("\n".join(preflight.gate_every_stack(infra_checkout, inventory.infra_repo.stacks, regs.forgejo, regs.private)))


@then("the infra pipelines use the infra-ci image from the Forgejo registry")
def infra_ci_pipelines(infra_checkout, inventory):
    spec = inventory.infra_repo
    infra_repo.gate_infra_ci_pipelines(infra_checkout, spec.infra_ci_pipelines, spec.infra_ci_image)


@then("the monorepo CLAUDE.md installs claude-memory-mcp from Forgejo")
def claude_md(infra_checkout, inventory):
    spec = inventory.infra_repo
    infra_repo.gate_claude_md(infra_checkout, spec.claude_md, spec.claude_memory_install_url, spec.claude_memory_old_install)


@then("the cloud-init template writes no hosts.toml entry for registry-private")
def cloud_init(infra_checkout, inventory):
    infra_repo.gate_cloud_init(infra_checkout, inventory.infra_repo.cloud_init)


@then("the registry-credentials Terraform has only the Forgejo auths entry")
def registry_credentials(infra_checkout, inventory):
    spec = inventory.infra_repo
    infra_repo.gate_registry_credentials(infra_checkout, spec.registry_credentials, spec.registry_credentials_secret)


@then("the monitoring stack no longer defines the old integrity probe CronJob")
def old_probe_gone(infra_checkout, inventory):
    spec = inventory.infra_repo
    infra_repo.gate_old_probe_gone(infra_checkout, spec.monitoring_module, spec.old_probe_cronjob)


@then(parsers.parse('the document "{doc}" says what it must now say and mentions registry-private only as history'))
def doc_history_only(infra_checkout, inventory, doc):
    infra_repo.gate_doc_named(infra_checkout, inventory.infra_repo, doc)


@then(parsers.parse('the Forgejo PVC in the infra repository autoresizes up to "{cap}"'))
def pvc_autoresize_cap(infra_checkout, inventory, cap):
    infra_repo.gate_pvc_autoresize_cap(infra_checkout, inventory.infra_repo.forgejo_stack,
                                       inventory.cluster.forgejo_pvc, inventory.said("bake.pvc_storage_limit", cap))


@then(parsers.parse('the monitoring stack\'s CronJob "{name}" runs on schedule "{schedule}"'))
def cronjob_schedule(infra_checkout, inventory, name, schedule):
    infra_repo.gate_cronjob_schedule(infra_checkout, inventory.infra_repo.monitoring_module, name, schedule)


@then("the cloud-init template and the mirror script write the Forgejo hosts.toml with the inventory's mirror")
def forgejo_hosts_toml_written(infra_checkout, inventory):
    spec = inventory.infra_repo
    infra_repo.gate_writes_forgejo_hosts_toml(infra_checkout, [spec.cloud_init, spec.mirror_script],
                                              inventory.forgejo.host, inventory.cluster.forgejo_mirrors)


@then("the registry VM's compose template in the infra repository runs no registry-private service")
def compose_template(infra_checkout, inventory):
    infra_repo.gate_compose_template_without(infra_checkout, inventory.infra_repo.vm_compose_template,
                                             inventory.private_registry.container)


@then(parsers.parse('the newest apply of the repository of "{project}" succeeded'))
def newest_apply(repos, inventory, project):
    infra_ci.judge_next_apply(repos, inventory.project(project).repo, inventory.infra_repo.apply_context,
                              inventory.dual_push.commit_window)
