"""One package per algorithm image; each declares its spec in ``<name>/spec.py``."""
