"""Command line groups: every module in this package exposes `group` (a Flask AppGroup):
`flask portal …`, `flask billing …`, `flask payments …`, `flask dunning …`, `flask services …`."""
from __future__ import annotations

import importlib
import pkgutil

from flask import Flask


def register_cli(app: Flask) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue  # shared helpers, not a command group
        module = importlib.import_module(f"{__name__}.{info.name}")
        app.cli.add_command(module.group)
