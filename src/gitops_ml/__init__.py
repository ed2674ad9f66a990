"""gitops-ml: a DVC pipeline whose pull requests carry a report and a quality gate."""

__version__ = "0.1.0"
