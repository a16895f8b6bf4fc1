"""``t2v eval shapes``: generate clips for labelled prompts and score them with the shapes detector."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from t2v.errors import InvalidRequest
from t2v.train import shapes
from t2v.train.detect import FLICKER_NOISE, detect, frame_scores, palette_for
from t2v.requests import GenerationRequest, canonical_cache
from t2v import generate

_DIR_WORDS = {"left": "left", "leftwards": "left", "right": "right", "rightwards": "right", "up": "up",
              "upwards": "up", "down": "down", "downwards": "down"}


@dataclass(frozen=True)
class Case:
    prompt: str
    color: str
    shape: str
    direction: str
    size: str | None = None  # "small" / "big" when the prompt asks for one
    speed: str | None = None  # "slowly" / "quickly"

    @property
    def heldout(self) -> bool:
        return (self.color, self.shape, self.direction) in shapes.HELDOUT


def parse_prompt(prompt: str) -> Case:
    """The colour, shape and direction a shapes prompt asks for (InvalidRequest when one is missing), and the
    size and speed words if it has them."""
    words = re.findall(r"[a-z]+", prompt.lower())
    color = next((w for w in words if w in shapes.ALL_COLORS), None)
    shape = next((w for w in words if w in shapes.SHAPES), None)
    direction = next((_DIR_WORDS[w] for w in words if w in _DIR_WORDS), None)
    if not (color and shape and direction):
        raise InvalidRequest(f"prompts: {prompt!r} does not name a colour, a shape and a direction", field="prompts")
    size = next((w for w in words if w in shapes.SIZES), None)
    speed = next((w for w in words if w in shapes.SPEEDS), None)
    return Case(prompt, color, shape, direction, size, speed)


def default_cases(colors: tuple[str, ...] | None = None, split: str = "all", modifiers: bool = False) -> list[Case]:
    """One prompt per combination of ``split``; with ``modifiers``, each also asks for a size and/or a speed, the
    pairs of shapes.MODIFIER_PAIRS in turn."""
    pairs = shapes.MODIFIER_PAIRS if modifiers else ((None, None),)
    return [Case(shapes.caption(*c, size=z, speed=v), *c, z, v)
            for i, c in enumerate(shapes.combos(colors, split)) for z, v in [pairs[i % len(pairs)]]]


def read_cases(path: str | Path) -> list[Case]:
    """A prompts file: one prompt per line (``#`` comments and blank lines skipped)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InvalidRequest(f"prompts: {path} is not a file", field="prompts")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    cases = [parse_prompt(ln) for ln in lines if ln and not ln.startswith("#")]
    if not cases:
        raise InvalidRequest(f"prompts: {path} has no prompts", field="prompts")
    return cases


FRAME_KEYS = ("color_stable", "shape_stable", "track_ok", "flicker_ok")  # per-frame rates (detect.frame_scores)


def _rate(rows: list[dict], key: str) -> float | None:
    return round(sum(bool(r.get(key)) for r in rows) / len(rows), 4) if rows else None


def _asked_rate(rows: list[dict], key: str) -> float | None:
    """The rate over the rows whose prompt asked for it (size, speed); None when none did."""
    return _rate([r for r in rows if key in r], key)


def score(frames, case: Case, palette: dict) -> dict:
    """One clip's row: what was asked, what the detector read (clip and per frame), and what was right."""
    d = detect(frames, palette)
    ok = {"color_ok": d.color == case.color, "direction_ok": d.direction == case.direction, "shape_ok": d.shape == case.shape}
    asked = {f"{k}_ok": getattr(d, k) == getattr(case, k) for k in ("size", "speed") if getattr(case, k)}
    return {"prompt": case.prompt, "heldout": case.heldout,
            "want": {"color": case.color, "shape": case.shape, "direction": case.direction, "size": case.size,
                     "speed": case.speed},
            "got": d.to_dict(), **ok, **asked, "all_ok": all(ok.values()) and all(asked.values()),
            **frame_scores(d, case.color, case.shape, case.direction)}


def summarize(rows: list[dict]) -> dict:
    def block(sel: list[dict]) -> dict:
        flicker = sorted(r["flicker"] for r in sel if r.get("flicker") is not None)
        return {"clips": len(sel), "color": _rate(sel, "color_ok"), "direction": _rate(sel, "direction_ok"),
                "shape": _rate(sel, "shape_ok"), "size": _asked_rate(sel, "size_ok"),
                "speed": _asked_rate(sel, "speed_ok"), "all": _rate(sel, "all_ok"),
                **{k: _rate(sel, k) for k in FRAME_KEYS},
                "flicker_median": flicker[len(flicker) // 2] if flicker else None}

    by_color = {c: block([r for r in rows if r["want"]["color"] == c]) for c in sorted({r["want"]["color"] for r in rows})}
    return {"overall": block(rows), "heldout": block([r for r in rows if r["heldout"]]),
            "trained": block([r for r in rows if not r["heldout"]]), "by_color": by_color}


def check_options(*, seeds: int, first_seed: int, cache: str | None) -> str | None:
    """Refuse bad evaluation options before any clip (or progress bar); returns the cache spec, canonical."""
    if seeds < 1:
        raise InvalidRequest("seeds: must be at least 1; nearest valid: 1", field="seeds")
    if first_seed < 0:
        raise InvalidRequest("first_seed: must be 0 or more; nearest valid: 0", field="first_seed")
    return canonical_cache(cache)  # a bad spelling fails here, before any clip


def evaluate(model: str, cases: list[Case], *, seeds: int = 4, first_seed: int = 0, lora: str | None = None, lora_scale: float = 1.0,
             steps: int | None = None, guidance: float | None = None, cache: str | None = None, frames: int | None = None,
             post: dict | None = None, on_clip: Callable[[int, int], None] | None = None) -> dict:
    """Generate ``seeds`` clips per case (seeds first_seed..first_seed+N-1; ``frames`` frames, the model's default
    without it) and score them; returns rows + summary. ``cache``: a
    step cache (``--cache``) to measure what it costs in accuracy; ``post``: post-processing (a request's
    ``post`` block, e.g. ``{"interpolate": 2}``) scored after it runs."""
    cache = check_options(seeds=seeds, first_seed=first_seed, cache=cache)
    palette = palette_for(tuple({c.color for c in cases}))
    rows, total = [], len(cases) * seeds
    for i, case in enumerate(cases):
        for seed in range(first_seed, first_seed + seeds):
            req = GenerationRequest(prompt=case.prompt, model=model, seed=seed, formats=(), lora=lora, lora_scale=lora_scale,
                                    num_inference_steps=steps, guidance_scale=guidance, cache=cache, post=post,
                                    num_frames=frames)
            result = generate(req)
            rows.append({**score(result.frames, case, palette), "seed": seed})
            if on_clip:
                on_clip(len(rows), total)
    return {"model": model, "lora": lora, "lora_scale": lora_scale, "cache": cache, "post": post, "seeds": seeds, "frames": frames,
            "first_seed": first_seed,
            "summary": summarize(rows), "rows": rows}


BESIDE = ("color", "direction", "color_stable")  # what an adapter's figures are read beside the base's by


def beside(base: dict, adapted: dict) -> list[tuple[str, int, dict]]:
    """An adapter's summary beside the base model's on the same prompts and seeds: per set (overall, then each
    colour) its name, its clips and {key: (base rate, adapter rate)} for :data:`BESIDE`."""
    b, a = base["summary"], adapted["summary"]
    sets = [("overall", b["overall"], a["overall"])]
    sets += [(c, b["by_color"].get(c), a["by_color"][c]) for c in a["by_color"]]
    return [(name, theirs["clips"], {k: (None if ours is None else ours[k], theirs[k]) for k in BESIDE})
            for name, ours, theirs in sets if theirs["clips"]]


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
