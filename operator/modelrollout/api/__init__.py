"""The ModelRollout API: pydantic models with their cross-field rules (the single source of the
CRD, which crd.py generates), each vocabulary once, and the operator's settings."""
