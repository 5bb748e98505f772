"""The worker processes this repository ships (deployments of the examples)."""
