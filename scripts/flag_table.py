"""Print the table of `t2v generate`'s options in docs/usage.md, made from the command itself (so from the request
contract): python scripts/flag_table.py [--write] (--write replaces the table in docs/usage.md)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import typer

PAGE = Path(__file__).resolve().parent.parent / "docs" / "usage.md"
START, END = "<!-- flags:generate -->", "<!-- /flags:generate -->"


def table() -> str:
    from t2v.cli.app import app

    command = typer.main.get_command(app).commands["generate"]
    rows = ["| option | what it sets |", "|---|---|"]
    for param in command.params:
        if not param.opts or param.name == "help" or not param.opts[0].startswith("-"):
            continue
        names = " ".join(f"`{o}`" for o in param.opts)
        text = re.sub(r"\s+", " ", (param.help or "").replace("|", "\\|")).strip()
        env = f" Env: `{param.envvar}`." if param.envvar else ""
        rows.append(f"| {names} | {text}{env} |")
    return "\n".join(rows)


def block() -> str:
    return f"{START}\n{table()}\n{END}"


def main() -> None:
    if "--write" in sys.argv[1:]:
        text = PAGE.read_text(encoding="utf-8")
        start, end = text.index(START), text.index(END) + len(END)
        PAGE.write_text(text[:start] + block() + text[end:], encoding="utf-8")
    else:
        print(block())


if __name__ == "__main__":
    main()
