"""The lineage every part of the loop stands on: which artifact a commit declares, and how to
obtain it so that nothing unverified is ever deserialised."""
