  # {{ private_host }} / {{ private_alias }} entries removed in Phase 4: registry-private is gone.
