"""MkDocs hook: ``reference/cli.md``, the command-line reference, made at build time from the Typer app itself.

The app (``t2v.cli.app.app``) is turned into its Click command with Typer's own ``typer.main.get_command``, and
every command and group is walked through Click's attributes (``commands``, ``params``, ``opts``, ``help``,
``envvar``, ``default``), so the page always says what ``t2v COMMAND --help`` says. Nothing generated is kept in
the repository. ``python scripts/docs/cli_reference.py`` prints the page.
"""

from __future__ import annotations

import enum
import typing
from pathlib import Path

from mdtext import add_page, cell, first_sentence, paragraphs  # scripts/docs/mdtext.py (MkDocs puts a hook's folder on sys.path)

PAGE = "reference/cli.md"
NAMES = {str: "text", int: "integer", float: "number", bool: "flag", Path: "path"}
INTRO = """# Command-line reference

Every `t2v` command with its arguments and options, made from the command line itself when this site is built
(the same text as `t2v COMMAND --help`). Options that set a request field (`--frames`, `--steps`, ...) take their
range, default and help from the request's declaration, so the CLI, the REST API and the library accept the same
values. An option with an *env* entry reads that environment variable when it is not given.

Exit codes: `0` ok, `2` bad input (one line naming the problem and the nearest valid value), `1` a runtime
failure, `130` interrupted (Ctrl-C).
"""


def root_command():
    """The ``t2v`` program as a Click command (Typer's own conversion)."""
    import typer

    from t2v.cli.app import app

    return typer.main.get_command(app)


def walk(command, path: tuple[str, ...] = ("t2v",)):
    """(path, command) for ``command`` and every command under it, depth first, in the order ``--help`` lists."""
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        if not getattr(sub, "hidden", False):
            yield from walk(sub, (*path, name))


def usage(path: tuple[str, ...], command) -> str:
    pieces = [*path]
    if any(p.param_type_name == "option" for p in command.params):
        pieces.append("[OPTIONS]")
    if getattr(command, "commands", None):
        pieces.append("COMMAND [ARGS]...")
    for p in command.params:
        if p.param_type_name == "argument":
            name = (p.metavar or p.name).upper()
            name += "..." if p.nargs == -1 else ""
            pieces.append(name if p.required else f"[{name}]")
    return " ".join(pieces)


def type_name(param) -> str:
    """The value an option takes, in words (from Typer's annotation, or a Click type's name)."""
    if getattr(param, "is_flag", False) and not param.secondary_opts:
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    click_type = getattr(param, "type", None)
    choices = getattr(click_type, "choices", None) or [m.value for m in annotation] if isinstance(annotation, type) \
        and issubclass(annotation, enum.Enum) else getattr(click_type, "choices", None)
    if choices:
        return " \\| ".join(f"`{c}`" for c in choices)
    args = typing.get_args(annotation)
    inner = args[0] if args and typing.get_origin(annotation) in (list, tuple) else annotation
    name = NAMES.get(inner) or cell(getattr(click_type, "name", "") or "text")
    if getattr(param, "multiple", False) or inner is not annotation:
        name += " (repeatable)"
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None or high is not None:
        name += f", {'' if low is None else low}..{'' if high is None else high}"
    return name


def default_text(param) -> str:
    default = param.default
    if callable(default) or default is None or repr(default).startswith("Sentinel") or default == ():
        return ""
    if getattr(param, "is_flag", False) and default is False:
        return ""
    if isinstance(default, (list, tuple)):
        return ", ".join(code(d) for d in default)
    return code(default)


def code(value) -> str:
    return "`" + str(value).replace("|", "\\|") + "`"


def options_table(command) -> list[str]:
    rows = []
    for p in command.params:
        if getattr(p, "hidden", False) or p.name == "help":
            continue
        if p.param_type_name == "argument":
            names = f"`{(p.metavar or p.name).upper()}`"
        else:
            names = " ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
        help_text = cell(getattr(p, "help", None) or "")
        if p.param_type_name == "argument" and p.required:
            help_text = f"{help_text} (required)".strip()
        envvar = getattr(p, "envvar", None)
        if envvar:
            envs = [envvar] if isinstance(envvar, str) else list(envvar)
            help_text += " Env: " + ", ".join(f"`{e}`" for e in envs) + "."
        rows.append(f"| {names} | {type_name(p)} | {default_text(p)} | {help_text} |")
    if not rows:
        return []
    return ["| argument / option | type | default | what it does |", "|---|---|---|---|", *rows, ""]


def anchor(path: tuple[str, ...]) -> str:
    return "-".join(path)


def markdown(root=None) -> str:
    """The whole reference page."""
    root = root or root_command()
    lines = [INTRO]
    commands = list(walk(root))
    lines += ["## Commands", ""]
    for path, command in commands[1:]:
        summary = first_sentence(command.short_help or command.help or "")
        lines.append(f"- [`{' '.join(path)}`](#{anchor(path)}): {summary}")
    lines.append("")
    for path, command in commands:
        level = "#" * min(len(path) + 1, 4)
        lines += [f"{level} `{' '.join(path)}` {{ #{anchor(path)} }}", ""]
        if command.help:
            lines += [paragraphs(command.help), ""]
        lines += ["```text", usage(path, command), "```", ""]
        lines += options_table(command)
    return "\n".join(lines).rstrip() + "\n"


def on_files(files, config, **kwargs):
    return add_page(files, config, PAGE, markdown())


if __name__ == "__main__":
    print(markdown(), end="")
