"""Kubernetes client wiring: get-modify-put with retry on conflict, owner references."""
