"""Revision Deployments and the stable and canary Services."""
