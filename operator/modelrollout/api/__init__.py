"""Pydantic models of the ModelRollout spec and status: the single source of truth of the CRD."""
