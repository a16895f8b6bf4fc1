"""The ``t2v`` command line (Typer + Rich). Thin: parse, call the library, translate errors."""

from t2v.cli.app import app, entry, main

__all__ = ["app", "entry", "main"]
