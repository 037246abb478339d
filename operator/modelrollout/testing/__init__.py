"""Test harness: a real local Kubernetes control plane and Prometheus, for tests, demo and bench.

Not part of the operator: import-linter forbids the product layers from importing it.
"""
