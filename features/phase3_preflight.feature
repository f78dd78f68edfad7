@phase3 @preflight @registry @static @readonly
Feature: Phase 3 pre-flight - what each flipped stack will pull is on Forgejo before its cutover
  The real migration copied only `:latest` (and novnc's `:v4`) to Forgejo while the stacks pin other
  tags (claude-agent-service:2fd7670d, beadboard:17a38e43, payslip-ingest:4f70681d, job-hunter:92afc38d):
  a flip would have pulled tags Forgejo never had. Every image reference a cutover stack resolves to
  (terragrunt inputs, variable defaults, locals, for_each maps, dynamic blocks, read from the infra
  checkout, inventory infra_repo.path) is mapped to Forgejo, `<forgejo host>/<owner>/<name>:<tag>`,
  and must be there with the digest registry-private serves for the same reference (what the pods
  run today) and pass the integrity check. A stack that already names Forgejo is judged as written.
  Read-only; run it before the flip: `pytest -m "phase3 and preflight"` before the Phase 3 session
  (the plan cuts every project over in one session), and `pytest -m preflight --project <project>`
  just before that project's flip.

  Background:
    Given the infra repository checkout

  @project
  Scenario Outline: Before its cutover, every image <project>'s flipped stack pulls is on Forgejo with registry-private's digest and intact
    Then every image the stack of "<project>" pulls after its flip is on Forgejo with registry-private's digest and intact

    Examples:
      | project              |
      | payslip-ingest       |
      | job-hunter           |
      | claude-agent-service |
      | fire-planner         |
      | wealthfolio-sync     |
      | freedify             |
      | chrome-service       |
      | beads-server         |

  Scenario: Before Phase 3, every image every cutover stack pulls is on Forgejo with registry-private's digest and intact
    Then every image every cutover stack pulls after its flip is on Forgejo with registry-private's digest and intact
