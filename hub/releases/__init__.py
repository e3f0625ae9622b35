"""Model releases: the registry of models the hub can push, staged rollout to cameras, rollback."""
