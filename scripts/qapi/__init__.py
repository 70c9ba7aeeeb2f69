"""QAPI schema parser and code generators (see scripts/qapi-gen.py)."""
