"""Measuring signals behind a metrics-source protocol (evaluate.py; Prometheus in prometheus.py,
pure series arithmetic in series.py), and webhook delivery; judging is the domain's."""
