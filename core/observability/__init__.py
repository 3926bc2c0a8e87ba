"""What operators see: request ids in JSON logs, Prometheus metrics, the readiness check (README, Operations)."""
