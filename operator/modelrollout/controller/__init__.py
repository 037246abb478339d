"""kopf wiring only: settings, handlers and the per-rollout ticker daemon."""
