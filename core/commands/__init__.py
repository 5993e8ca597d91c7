"""CLI sub-commands, one module each (see core/cli.py)."""
