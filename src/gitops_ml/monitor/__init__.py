"""The monitoring part of the loop: drift checks, demo batches and the retraining pull request."""
