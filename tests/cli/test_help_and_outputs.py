"""Every command's ``--help`` as a newcomer reads it (switches without a value placeholder, ``PROMPT`` in usage
lines, help on every option, ``--json`` always a switch), and the refusals made before any work: an output name
an earlier run wrote, a folder that cannot be made, an evaluation with no seeds."""

from __future__ import annotations

import re

import pytest
import typer.main
from typer.testing import CliRunner

from t2v.cli import app
from t2v.cli.run import refuse_existing
from t2v.errors import InvalidRequest
from t2v.requests import GenerationRequest

from tests.cli.test_cli_usability import t2v

runner = CliRunner()


def commands(command=None, path=("t2v",)):
    """(path, click command) of every command and group under ``command`` (the whole CLI by default)."""
    command = command or typer.main.get_command(app)
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


ALL = list(commands())


def help_text(path) -> str:
    r = runner.invoke(app, [*path[1:], "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    return r.output


def test_the_cli_has_its_commands():
    names = {" ".join(path) for path, _ in ALL}
    assert {"t2v generate", "t2v eval shapes", "t2v bench", "t2v models list", "t2v jobs show"} <= names


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=" ".join)
def test_help_shows_switches_bare_and_arguments_in_capitals(path):
    text = help_text(path)
    assert "<bool>" not in text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage and "}" not in usage, usage
    command = dict(ALL)[path]
    for param in command.params:
        if param.param_type_name == "argument":
            name = param.name.upper()
            assert re.search(rf"(^|\s|\[){re.escape(name)}(\]|\.\.\.|\s|$)", usage.split("Usage:")[1]), (name, usage)
        elif param.is_flag and not param.hidden:  # a switch's row: its names, then its help, no type between
            row = next(line for line in text.splitlines() if re.search(rf"{re.escape(param.opts[0])}(\s|,|$)", line))
            assert "<" not in row.split(param.opts[0], 1)[1].split(param.help.split()[0], 1)[0], row


def test_every_option_has_help():
    missing = [(" ".join(path), param.opts[0]) for path, command in ALL for param in command.params
               if param.param_type_name == "option" and not param.hidden and not (param.help or "").strip()]
    assert missing == []


def test_json_is_a_switch_everywhere_and_files_are_json_out():
    json_options = [(path, param) for path, command in ALL for param in command.params if "--json" in param.opts]
    assert len(json_options) > 5
    assert all(param.is_flag for _, param in json_options), [" ".join(p) for p, o in json_options if not o.is_flag]
    for path in (("t2v", "eval", "shapes"), ("t2v", "bench")):
        out = next(param for param in dict(ALL)[path].params if "--json-out" in param.opts)
        assert not out.is_flag and "--json" not in out.opts


def test_models_list_says_which_columns_a_narrow_table_leaves_out():
    narrow = t2v("models", "list", columns=160)  # the ids column alone is 57 wide (Kandinsky 5)
    assert narrow.returncode == 0, narrow.stderr
    assert "license and aliases left out to fit 160 columns" in narrow.stdout
    wide = t2v("models", "list", columns=230)
    assert "left out" not in wide.stdout and "aliases" in wide.stdout


def test_an_existing_output_is_refused_before_anything_loads(tmp_path):
    clip, record = tmp_path / "same.mp4", tmp_path / "same.json"
    clip.write_bytes(b"the first run's clip")
    r = runner.invoke(app, ["generate", "a red circle moving right", "--model", "t2v-shapes", "-o", str(clip)])
    assert r.exit_code == 2
    assert f"output: {clip} exists" in r.output and "--overwrite" in r.output
    assert clip.read_bytes() == b"the first run's clip" and not record.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.mp4"]  # nothing half-written beside it


def test_an_existing_record_alone_is_refused_too_and_overwrite_allows_both(tmp_path):
    (tmp_path / "clip.json").write_text("{}")
    request = GenerationRequest(prompt="x", model="t2v-shapes")
    with pytest.raises(InvalidRequest, match=r"clip\.json exists") as e:
        refuse_existing(request, tmp_path / "clip.mp4", overwrite=False)
    assert e.value.field == "output"
    refuse_existing(request, tmp_path / "clip.mp4", overwrite=True)
    refuse_existing(request, tmp_path, overwrite=False)  # a folder: a fresh time-stamped name inside it
    refuse_existing(request, tmp_path / "other.mp4", overwrite=False)


def test_image_and_post_refuse_an_earlier_runs_files_unless_overwrite(tmp_path):
    """``t2v image -n 2 -o pic.png`` writes pic-00/pic-01 (.png and .json) and ``t2v post -o out.mp4`` writes
    out.mp4 and out.json: any of them already there is refused before anything loads, and kept."""
    (tmp_path / "pic-01.json").write_text("{}")
    r = runner.invoke(app, ["image", "a red circle", "-n", "2", "-o", str(tmp_path / "pic.png")])
    assert r.exit_code == 2 and f"output: {tmp_path / 'pic-01.json'} exists" in r.output and "--overwrite" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pic-01.json"]
    clip, made = tmp_path / "in.mp4", tmp_path / "out.mp4"
    clip.write_bytes(b"not a video")
    made.write_bytes(b"an earlier post run")
    r = runner.invoke(app, ["post", str(clip), "--interpolate", "2", "-o", str(made)])
    assert r.exit_code == 2 and f"output: {made} exists" in r.output, r.output
    assert made.read_bytes() == b"an earlier post run"
    made.unlink()
    (tmp_path / "out.json").write_text("{}")
    assert "out.json exists" in runner.invoke(app, ["post", str(clip), "--interpolate", "2", "-o", str(made)]).output
    r = runner.invoke(app, ["post", str(clip), "--interpolate", "2", "-o", str(made), "--overwrite"])
    assert r.exit_code == 2 and "exists" not in r.output and "in.mp4" in r.output, r.output  # on to the input's check


def test_overwrite_replaces_an_earlier_clip(tmp_path):
    clip = tmp_path / "same.mp4"
    clip.write_bytes(b"old")
    r = runner.invoke(app, ["generate", "a red circle moving right", "--model", "t2v-shapes", "--frames", "8",
                            "--steps", "2", "-q", "-o", str(clip), "--overwrite"])
    assert r.exit_code == 0, r.output
    assert clip.read_bytes()[4:8] == b"ftyp" and (tmp_path / "same.json").is_file()


def test_an_output_folder_that_cannot_be_made_is_named(tmp_path):
    r = runner.invoke(app, ["generate", "a red circle", "--model", "t2v-shapes", "-o", "/proc/nope/x.mp4"])
    assert r.exit_code == 2
    assert "folder /proc/nope does not exist and cannot be made" in r.output


def test_eval_with_no_seeds_fails_before_its_progress_bar():
    r = runner.invoke(app, ["eval", "shapes", "--seeds", "0"])
    assert r.exit_code == 2
    assert "seeds: must be at least 1; nearest valid: 1" in r.output and "Evaluating" not in r.output


def test_python_error_for_an_image_on_a_text_only_model_names_no_cli_flag():
    from t2v import generate

    with pytest.raises(InvalidRequest) as e:
        generate("a red circle", model="t2v-shapes", image="first.png", formats=())
    assert e.value.field == "image" and "--" not in str(e.value)
