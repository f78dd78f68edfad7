@phase1 @readonly @host
Feature: infra-ci break-glass tarballs on the registry VM and the NAS
  After each infra-ci build, `docker save | gzip` writes a tarball of the image to the
  registry VM and to the NAS, with a `latest` symlink beside it: if both registries are
  lost, CI can still load its own image. The checks run on those hosts over SSH.

  Scenario Outline: The <copy> break-glass copy holds the newest infra-ci build
    Given the break-glass copy "<copy>", read over SSH
    And the newest build tag of the break-glass image in Forgejo
    Then the newest tarball there is for that build tag
    And the latest symlink points to the newest tarball
    And the newest tarball passes gzip -t
    And the newest tarball's manifest.json names the image and the build tag
    And the newest tarball is no older than 192 hours

    Examples:
      | copy        | project  |
      | registry-vm | infra-ci |
      | nas         | infra-ci |
