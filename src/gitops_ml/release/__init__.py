"""The release part of the loop: promotion into the registry, verification, serving."""
