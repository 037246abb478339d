"""Helper for Python model servers to export the metric conventions."""
