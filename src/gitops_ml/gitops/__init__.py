"""The GitOps machinery behind the `gitops-ml` command (reports, gate, promotion, drift)."""
