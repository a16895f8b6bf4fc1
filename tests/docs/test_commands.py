"""Every ``t2v ...`` command line in the README's and the docs' shell blocks parses with the CLI as it is (its
command, options and values, converted as a shell run would), and every model it names resolves: a registered id
or alias, or a folder path. Nothing runs: each line only goes through the command's parser."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import typer
from typer._click import Context

from t2v.cli import app
from t2v.models.registry import lookup

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*(```|~~~)\s*(\S*)")
SHELL = ("bash", "sh", "shell", "console", "")  # ```text blocks are synopses and output, not commands
# a command line: an optional prompt, environment assignments, a path to the program (.venv/bin/t2v), then t2v
LINE = re.compile(r"^\s*(?:\$ )?(?:[A-Z_][A-Z0-9_]*=\S* )*(?:\S*/)?(t2v .*)$")
MODEL_PARAMS = ("model", "base", "motion_adapter")


def command_lines() -> list[tuple[str, str]]:
    """(where, line) of every t2v command in the pages' shell blocks, continuation lines joined."""
    found = []
    for page in PAGES:
        fenced, lang, pending, start = False, "", "", 0
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            fence = FENCE.match(line)
            if fence:
                fenced, lang = not fenced, fence.group(2) if not fenced else ""
                continue
            if not fenced or lang not in SHELL:
                continue
            if pending:
                pending += " " + line.strip()
            elif match := LINE.match(line):
                pending, start = match.group(1), number
            else:
                continue
            if pending.endswith("\\"):
                pending = pending[:-1]
                continue
            found.append((f"{page.relative_to(ROOT)}:{start}", pending))
            pending = ""
    return found


def words(line: str) -> list[str]:
    """The shell words of ``line``'s first command: up to a pipe, ``&&``, ``;``, a redirection or a comment."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split, lexer.commenters = True, "#"
    out = []
    for word in lexer:
        if set(word) <= set("|&;<>"):
            break
        out.append(word)
    return out


def parse(line: str) -> Context | None:
    """``line`` through the CLI's parser, as the shell would hand it over; None for a --help or --version line."""
    args = words(line)[1:]
    command, name, parent = typer.main.get_command(app), "t2v", None
    while hasattr(command, "get_command") and args and not args[0].startswith("-"):
        parent = Context(command, info_name=name, parent=parent)
        sub = command.get_command(parent, args[0])
        assert sub is not None, f"no command {args[0]!r} under {name!r}"
        name, command, args = args[0], sub, args[1:]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            return command.make_context(name, list(args), parent=parent)
        except typer.Exit:  # --help, --version: printed, then done
            return None


LINES = command_lines()


def test_the_docs_have_their_command_lines():
    assert len(LINES) > 120, f"only {len(LINES)} command lines found: is the extraction still reading the pages?"
    assert any("--model t2v-shapes" in line for _, line in LINES)


@pytest.mark.parametrize("where, line", LINES, ids=[where for where, _ in LINES])
def test_a_command_line_of_the_docs_parses_and_names_models_that_resolve(where, line):
    ctx = parse(line)
    if ctx is None:
        return
    for param in MODEL_PARAMS:
        value = ctx.params.get(param)
        for model in value if isinstance(value, (list, tuple)) else [value]:
            if model is None or isinstance(model, Path) or str(model).startswith((".", "/", "~")):
                continue  # a folder path (an option that takes only folders parses to a Path): the page names it
            flag = "--" + param.replace("_", "-")
            assert lookup(str(model)) is not None, f"{where}: {flag} {model} is no registered id or alias"


@pytest.mark.parametrize("line, error", [
    ("t2v generate x --modle y", "No such option"),
    ("t2v generate x --frames many", "valid integer"),
    ("t2v nocommand", "no command"),
    ("t2v generate x --prompt-schedule '0: a' '16: b'", "unexpected extra argument"),
])
def test_a_broken_command_line_is_caught(line, error):
    with pytest.raises(Exception, match=error):
        parse(line)


def test_an_unregistered_model_is_caught():
    ctx = parse("t2v generate x --model wan22-a14b")
    assert lookup(ctx.params["model"]) is None and lookup("wan2.2-a14b") is not None
