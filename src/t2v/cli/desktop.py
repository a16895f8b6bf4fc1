"""``t2v desktop``: the Tk app, against a t2v server or a private one it starts on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from t2v.cli.common import cli_errors
from t2v.errors import InvalidRequest


def desktop(
    server: Optional[str] = typer.Option(None, "--server", help="A t2v server's URL (default: start a private "
                                         "`t2v serve` on a free loopback port, stopped when the window closes).",
                                         envvar="T2V_SERVER"),
    key: Optional[str] = typer.Option(None, "--key", help="API key for the server.", envvar="T2V_API_KEY"),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Default model of the private server."),
    downloads: Optional[Path] = typer.Option(None, "--downloads", help="Where finished clips are saved "
                                             "(default ~/Videos/t2v, or $T2V_DESKTOP_DIR)."),
) -> None:
    """Open the desktop app (Tk): generate, watch, play, and browse the history."""
    with cli_errors():
        if server is not None and not server.startswith(("http://", "https://")):
            raise InvalidRequest(f"--server: {server!r} is not an http(s) URL; e.g. http://127.0.0.1:8000",
                                 field="server")
        if model is not None and server is not None:
            raise InvalidRequest("--model: only for the private server; a remote server has its own default model "
                                 "(drop --model, or drop --server)", field="model")
        try:
            import tkinter

            tkinter.Tk  # noqa: B018 - the import fails on Pythons built without Tk
        except ImportError:
            raise InvalidRequest("this Python has no Tk (tkinter): install python3-tk, or use `t2v ui` "
                                 "(the web page)", field="desktop") from None
        from t2v.desktop.app import run  # deferred: imports tkinter

        try:
            run(server.rstrip("/") if server else None, key, model=model, downloads=downloads)
        except tkinter.TclError as e:  # no display
            raise InvalidRequest(f"cannot open a window ({e}); set DISPLAY, or use `t2v ui`", field="display") from None
