"""Integration tests: against a real Kubernetes API (the substrate, or kind)."""
