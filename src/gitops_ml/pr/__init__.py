"""The pull-request part of the loop: what a PR changes, the gate, the report and its comment."""
