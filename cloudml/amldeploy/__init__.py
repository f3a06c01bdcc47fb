"""Deployment of the scoring service to Azure ML (used by cloudml/deploy.py)."""
