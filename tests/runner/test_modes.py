"""The runner's modes: each kind of request is a registered Mode whose attributes say what it takes, in step with
the request contract's own declaration of which modes take which fields; and nothing that runs or admits requests
branches on a mode's, an image method's or a family's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from t2v.errors import InvalidRequest
from t2v.models.catalog import CATALOG
from t2v.requests import METHODS
from t2v.requests import MODES as REQUEST_MODES
from t2v.requests import REQUEST_TYPES, GenerationRequest, ImageRequest, SequenceRequest, applies
from t2v.runner.mode import MODES, mode_of
from t2v.runner.modes import RUNS
from t2v.settings import Settings

KEYS = ["0: a red circle", "3: a blue square"]


def test_every_request_mode_has_one_mode_and_one_run():
    assert tuple(MODES) == REQUEST_MODES
    assert list(RUNS) == list(MODES) and all(RUNS[name].mode is MODES[name] for name in MODES)
    with pytest.raises(InvalidRequest, match="mode: unknown 'gif'") as e:
        mode_of(type("Odd", (), {"mode": "gif"})())
    assert e.value.field == "mode"


@pytest.mark.parametrize("name", REQUEST_MODES)
def test_what_a_mode_takes_is_what_the_contract_declares_for_it(name):
    """The flags agree with the fields' ``only`` (the one declaration of which modes use a field)."""
    mode, cls = MODES[name], REQUEST_TYPES[name]

    def takes(field: str) -> bool:
        return field in cls.model_fields and applies(cls, field, name)

    assert mode.takes_inputs == takes("image") == takes("motion_adapter")
    assert mode.takes_long == takes("seconds") == takes("extend")
    assert mode.takes_speed_options == takes("cache") == takes("attention")
    assert mode.takes_family_settings == takes("extras") == takes("preset")
    assert mode.takes_post == takes("post")
    assert mode.plans_memory == takes("memory")
    assert mode.takes_source == takes("job") == takes("asset")
    assert mode.takes_source or mode.count_field in cls.model_fields


def test_default_models_come_from_the_modes_setting():
    settings = Settings(default_model="video/model", default_image_model="image/model")
    assert MODES["video"].default_model_of(settings) == "video/model"
    assert MODES["sequence"].default_model_of(settings) == MODES["image"].default_model_of(settings) == "image/model"
    assert MODES["post"].default_model_of(settings) is None


@pytest.mark.parametrize("request_, field", [
    (ImageRequest.create(prompt="a cat", image="cat.png"), "image"),
    (SequenceRequest.create(keyframes=KEYS, seconds=4.0), "seconds"),
    (SequenceRequest.create(keyframes=KEYS, cache="fbc"), "cache"),
    (ImageRequest.create(prompt="a cat", compile=True), "compile"),
    (ImageRequest.create(prompt="a cat", post={"deflicker": True}), "post"),
])
def test_a_mode_refuses_what_it_does_not_take(request_, field):
    with pytest.raises(InvalidRequest) as e:
        mode_of(request_).check(request_)
    assert e.value.field == field
    with pytest.raises(InvalidRequest, match="motion_adapter: a motion adapter makes videos") as e:
        mode_of(request_).check_adapter("guoyww/animatediff-motion-adapter-v1-5-3")
    assert e.value.field == "motion_adapter"


def test_what_a_mode_takes_passes_its_check():
    video = GenerationRequest.create(prompt="a cat", image="cat.png", seconds=4.0, cache="fbc", post={"deflicker": True})
    mode_of(video).check(video)
    mode_of(video).check_adapter("guoyww/animatediff-motion-adapter-v1-5-3")
    sequence = SequenceRequest.create(keyframes=KEYS, post={"deflicker": True})
    mode_of(sequence).check(sequence)


SRC = Path(__file__).resolve().parents[2] / "src" / "t2v"
#: Where requests are run and admitted: they read a Mode's (a Method's, a Family's) attributes, never its name.
NO_NAME_BRANCHES = ("runner", "image", "post", "service", "bench", "cli/bench.py")
#: What a name is compared through: ``request.mode``, ``req["family"]``, ``method``, ``kind`` ...
NAMED_BY = {"mode", "method", "family", "kind"}


def _named_by(node: ast.AST) -> str | None:
    """The attribute, variable or key a compared value is read from (``x.mode``, ``mode``, ``x["mode"]``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
        return node.slice.value
    return None


def _strings(node: ast.AST) -> set[str]:
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return {i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)}


def name_branches(source: str, names: set[str]) -> list[str]:
    """The comparisons in ``source`` of a mode, method or family (``NAMED_BY``) with one of ``names``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        if any(_named_by(side) in NAMED_BY for side in sides) and any(_strings(side) & names for side in sides):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def known_names() -> set[str]:
    return set(REQUEST_MODES) | set(METHODS) | set(CATALOG.all_cards())


def test_the_branch_finder_finds_names_and_passes_attributes():
    names = known_names()
    found = name_branches('if request.mode == "post": pass\nif req["family"] in ("wan", "ltx"): pass\n'
                          'x = "count" if mode != "image" else 1\nif kind == "modelscope": pass', names)
    assert sorted(f.split(":")[0] for f in found) == ["1", "2", "3", "4"]
    assert name_branches('if mode_of(r).takes_source: pass\nif field == "image": pass\n'
                         'if asset_kind(row) != "video": pass\nif request.mode == "gif": pass', names) == []


def test_nothing_that_runs_or_admits_requests_branches_on_a_name():
    names = known_names()
    bad = [f"{path.relative_to(SRC)}:{hit}" for package in NO_NAME_BRANCHES
           for path in sorted((SRC / package).rglob("*.py") if (SRC / package).is_dir() else [SRC / package])
           for hit in name_branches(path.read_text(), names)]
    assert not bad, ("read the request's Mode (t2v.runner.mode), Method or Family attributes instead of comparing "
                     "names:\n" + "\n".join(bad))
