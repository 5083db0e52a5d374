"""Kubernetes remediation actions (kubernetes-asyncio)."""
