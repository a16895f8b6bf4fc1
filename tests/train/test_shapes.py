"""The shapes world: deterministic, captions match the clips, held-out split, folder round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.train import shapes
from t2v.train.data import folder_clips, shapes_clips
from t2v.train.detect import detect
from t2v.train.evaluate import default_cases, parse_prompt, summarize


def test_same_seed_same_clips_and_different_seed_differs():
    a = [s.frames for s in shapes.iterate(3, 5)]
    b = [s.frames for s in shapes.iterate(3, 5)]
    c = [s.frames for s in shapes.iterate(4, 5)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_clip_geometry_and_motion_range():
    cfg = shapes.WorldConfig()
    for s in shapes.iterate(0, 40, split="all"):
        assert s.frames.shape == (cfg.frames, cfg.size, cfg.size, 3) and s.frames.dtype == np.uint8
        assert s.label.travel >= cfg.size / 4  # at least a quarter of the frame over the clip
        assert s.label.combo in shapes.combos(split="all")


def test_variety_frames_cover_many_colours_deterministically():
    a = shapes.variety_frames(2, 40, shapes.WorldConfig(size=32))
    assert a.shape == (80, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, shapes.variety_frames(2, 40, shapes.WorldConfig(size=32)))
    bg = np.array(shapes.BACKGROUND)
    objects = [f[np.abs(f.astype(int) - bg).sum(-1) > 60].mean(0) for f in a[::2]]  # mean object colour per clip
    base = np.array(list(shapes.COLORS.values()))
    off_palette = [o for o in objects if np.abs(base - o).sum(-1).min() > 60]
    assert len(off_palette) > 30  # nearly all are colours the five base ones are not


def test_detector_agrees_with_labels_on_generated_data():
    samples = list(shapes.iterate(7, 300, split="all", colors=tuple(shapes.ALL_COLORS)))
    hits = {"color": 0, "shape": 0, "direction": 0}
    for s in samples:
        d = detect(s.frames, shapes.ALL_COLORS)
        hits["color"] += d.color == s.label.color
        hits["shape"] += d.shape == s.label.shape
        hits["direction"] += d.direction == s.label.direction
    assert {k: v / len(samples) for k, v in hits.items()} == {"color": 1.0, "shape": 1.0, "direction": 1.0}


def test_detector_finds_nothing_on_a_blank_clip():
    blank = np.full((8, 64, 64, 3), shapes.BACKGROUND, dtype=np.uint8)
    d = detect(blank)
    assert d.color is None and d.direction is None and d.visible_frames == 0


def test_captions_name_the_label_in_every_template():
    for variant in range(len(shapes.TEMPLATES)):
        for combo in shapes.combos(split="all"):
            case = parse_prompt(shapes.caption(*combo, variant=variant))
            assert (case.color, case.shape, case.direction) == combo


def test_heldout_split_is_at_least_15_percent_and_covers_every_value_in_training():
    every, train, held = shapes.combos(split="all"), shapes.combos(split="train"), shapes.combos(split="heldout")
    assert len(held) / len(every) >= 0.15 and not set(train) & set(held)
    for i, values in enumerate((shapes.COLORS, shapes.SHAPES, shapes.DIRECTIONS)):
        assert {c[i] for c in train} == set(values)
    assert not any(s.label.combo in shapes.HELDOUT for s in shapes.iterate(0, 200, split="train"))


def test_shapes_clips_keep_all_paraphrases():
    clips = shapes_clips(3, size=32, frames=4, seed=1)
    assert clips.pixels.shape == (3, 4, 32, 32, 3)
    assert all(len(set(c)) == len(shapes.TEMPLATES) for c in clips.captions)


def test_folder_round_trip(tmp_path):
    shapes.write_dir(tmp_path / "d", 4, seed=2, colors=("purple",))
    rows = [json.loads(line) for line in (tmp_path / "d" / "captions.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("purple" in r["caption"] for r in rows)
    clips = folder_clips(tmp_path / "d", size=64, frames=8)
    assert clips.pixels.shape == (4, 8, 64, 64, 3) and clips.fps == 8
    for px, row in zip(clips.pixels, rows):  # survives MP4 encoding well enough to detect
        d = detect(px, shapes.ALL_COLORS)
        assert (d.color, d.shape, d.direction) == (row["label"]["color"], row["label"]["shape"], row["label"]["direction"])


@pytest.mark.parametrize("content, message", [
    (None, "no captions.jsonl"),
    ("not json\n", "line 1 is not a JSON object"),
    ('{"file": "missing.mp4", "caption": "x"}\n', "missing.mp4, which does not exist"),
    ('{"file": "a.mp4", "caption": "  "}\n', "empty caption"),
    ("\n", "lists no clips"),
])
def test_bad_folders_name_the_problem(tmp_path, content, message):
    if content is not None:
        (tmp_path / "captions.jsonl").write_text(content)
    with pytest.raises(InvalidRequest, match=message) as e:
        folder_clips(tmp_path, size=32, frames=4)
    assert e.value.field == "data"


def test_too_short_clips_are_refused(tmp_path):
    shapes.write_dir(tmp_path, 1, seed=0)
    with pytest.raises(InvalidRequest, match="has 8 frames; training needs at least 12"):
        folder_clips(tmp_path, size=32, frames=12)


def test_prompt_parsing_and_summary():
    with pytest.raises(InvalidRequest, match="does not name a colour"):
        parse_prompt("a dog running")
    cases = default_cases(split="heldout")
    assert len(cases) == len(shapes.HELDOUT) and all(c.heldout for c in cases)
    rows = [{"want": {"color": "red"}, "heldout": h, "color_ok": ok, "direction_ok": True, "shape_ok": False, "all_ok": False}
            for h, ok in ((True, True), (True, False), (False, True))]
    s = summarize(rows)
    assert s["overall"]["color"] == pytest.approx(2 / 3, abs=1e-3) and s["heldout"]["color"] == 0.5
    assert s["trained"]["clips"] == 1 and s["overall"]["shape"] == 0.0


def test_balanced_sets_cycle_through_every_combination_and_default_sets_do_not_change():
    from collections import Counter

    pool = shapes.combos(None, "train")
    labels = [s.label for s in shapes.iterate(12, 2 * len(pool), split="train", balanced=True)]
    combos = Counter((lab.color, lab.shape, lab.direction) for lab in labels)
    assert set(combos) == set(pool) and set(combos.values()) == {2}
    assert set(Counter(lab.color for lab in labels).values()) == {2 * len(pool) // len(shapes.COLORS)}
    # the default draw is untouched (the shipped model's data set): the same random stream, combination included
    plain = [s.label for s in shapes.iterate(12, 6, split="train")]
    rng = [np.random.default_rng([12, i]) for i in range(6)]
    assert [(lab.color, lab.shape, lab.direction) for lab in plain] == [pool[int(r.integers(len(pool)))] for r in rng]
