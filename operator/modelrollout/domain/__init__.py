"""Pure decision logic: the step machine, judging, statistics.

Imports no kopf, no Kubernetes client and no HTTP client (an import-linter contract).
"""
