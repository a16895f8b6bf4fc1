"""The shapes world: deterministic, captions match the clips, held-out split, folder round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.train import shapes
from t2v.train.data import folder_clips, shapes_clips
from t2v.train.detect import FLICKER_NOISE, detect, frame_scores
from t2v.train.evaluate import default_cases, parse_prompt, score, summarize


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


def test_every_rendered_clip_passes_the_per_frame_scores():
    """The per-frame thresholds are the detector's noise: every rendered clip, all colours, passes all four."""
    for s in shapes.iterate(7, 300, split="all", colors=tuple(shapes.ALL_COLORS)):
        d = detect(s.frames, shapes.ALL_COLORS)
        f = frame_scores(d, *s.label.combo)
        assert len(d.frame_colors) == len(d.track) == len(d.brightness) == s.frames.shape[0]
        assert (f["color_stable"], f["shape_stable"], f["track_ok"], f["flicker_ok"]) == (True,) * 4, (s.label, f)
        assert f["flicker"] <= FLICKER_NOISE


def _clip(color="red", shape="circle", direction="right", **kw):
    lab = shapes.Label(color, shape, direction, x0=kw.get("x0", 16.0), y0=32.0, radius=9.0, travel=28.0)
    return lab, shapes.render(lab)


def test_per_frame_scores_catch_a_colour_flip_a_shape_flip_a_jump_a_reversal_and_flicker():
    lab, clip = _clip()
    ok = frame_scores(detect(clip), "red", "circle", "right")
    assert ok["color_stable"] and ok["shape_stable"] and ok["track_ok"] and ok["flicker_ok"]

    flipped = clip.copy()
    flipped[3] = shapes.render(lab, rgb=shapes.COLORS["yellow"])[3]  # one frame drawn yellow: the clip still reads red
    d = detect(flipped)
    f = frame_scores(d, "red", "circle", "right")
    assert d.color == "red" and d.frame_colors[3] == "yellow" and not f["color_stable"] and not f["flicker_ok"]
    assert f["track_ok"] and f["shape_stable"]

    squared = clip.copy()
    squared[5] = _clip(shape="square")[1][5]
    f = frame_scores(detect(squared), "red", "circle", "right")
    assert not f["shape_stable"] and f["color_stable"]

    jumped = clip.copy()
    jumped[4] = _clip(x0=30.0)[1][4]  # 14 px further along than it should be: still moving right, but a jump
    f = frame_scores(detect(jumped), "red", "circle", "right")
    assert not f["track_ok"] and f["color_stable"]

    reversed_step = clip[[0, 1, 2, 4, 3, 5, 6, 7]]  # one step backwards
    assert not frame_scores(detect(reversed_step), "red", "circle", "right")["track_ok"]
    assert not frame_scores(detect(clip), "red", "circle", "left")["track_ok"]

    dimmed = clip.copy()
    dimmed[2] = (10 + (dimmed[2].astype(float) - 10) * 0.75).astype(np.uint8)  # a frame 25% darker, same hue
    f = frame_scores(detect(dimmed), "red", "circle", "right")
    assert f["color_stable"] and not f["flicker_ok"] and f["flicker"] > FLICKER_NOISE

    empty = clip.copy()
    empty[6] = shapes.BACKGROUND  # the object vanishes for a frame
    f = frame_scores(detect(empty), "red", "circle", "right")
    assert not (f["color_stable"] or f["shape_stable"] or f["track_ok"] or f["flicker_ok"])


def test_eval_rows_and_summary_carry_the_per_frame_rates():
    case = parse_prompt("a red circle moving right")
    lab, clip = _clip()
    flipped = clip.copy()
    flipped[3] = shapes.render(lab, rgb=shapes.COLORS["yellow"])[3]
    rows = [score(clip, case, shapes.COLORS), score(flipped, case, shapes.COLORS)]
    assert rows[0]["color_ok"] and rows[1]["color_ok"] and rows[0]["color_stable"] and not rows[1]["color_stable"]
    assert rows[1]["got"]["frame_colors"][3] == "yellow" and len(rows[1]["got"]["track"]) == 8
    s = summarize(rows)["overall"]
    assert s["color"] == 1.0 and s["color_stable"] == 0.5 and s["track_ok"] == 1.0 and s["flicker_ok"] == 0.5
    assert s["flicker_median"] > FLICKER_NOISE  # the flipped clip's jump in luma is the larger of the two


def test_a_world_without_modifiers_draws_the_clips_it_always_did():
    # sha256 of clips 0-39 of seed 11 (frames + captions) as the world drew them before size and speed words
    import hashlib

    digest = hashlib.sha256()
    for s in shapes.iterate(11, 40, split="all"):
        digest.update(s.frames.tobytes()), digest.update(s.caption.encode())
    assert digest.hexdigest() == "41e200894955b6513255a864bfeb3aa9218c8e6f6b56d45440340cb7a79b1ba8"


def test_size_and_speed_words_pick_their_ranges_and_the_detector_reads_them():
    cfg = shapes.WorldConfig(modifiers=1.0)
    samples = list(shapes.iterate(5, 420, split="all", config=cfg))
    pairs = {(s.label.size_word, s.label.speed_word) for s in samples}
    assert pairs == set(shapes.MODIFIER_PAIRS)  # every pair, and never a big object moving quickly
    hits = {"size": 0, "speed": 0, "direction": 0, "shape": 0}
    for s in samples:
        lab, side = s.label, cfg.size
        if lab.size_word:
            lo, hi = shapes.SIZE_RADIUS[lab.size_word]
            assert lo * side <= lab.radius <= hi * side
        if lab.speed_word:
            lo, hi = shapes.SPEED_TRAVEL[lab.speed_word]
            assert lo * side <= lab.travel <= hi * side
        mask = np.abs(s.frames.astype(int) - np.array(shapes.BACKGROUND)).sum(-1) > 30
        assert not mask[:, 0].any() and not mask[:, -1].any() and not mask[:, :, 0].any() and not mask[:, :, -1].any()
        case = parse_prompt(s.caption)
        assert (case.size, case.speed) == (lab.size_word, lab.speed_word)
        d = detect(s.frames)
        hits["size"] += d.size == (lab.size_word or "normal")
        hits["speed"] += d.speed == (lab.speed_word or "normal")
        hits["direction"] += d.direction == lab.direction
        hits["shape"] += d.shape == lab.shape
    assert hits["size"] == hits["speed"] == hits["direction"] == len(samples)
    assert hits["shape"] >= 0.99 * len(samples)  # an 8-pixel circle can read as a square


def test_unmodified_clips_read_normal_size_and_speed():
    for s in shapes.iterate(2, 200, split="all"):
        d = detect(s.frames)
        assert (d.size, d.speed) == ("normal", "normal"), s.label


def test_modifier_prompts_are_scored_only_on_what_they_ask():
    cases = default_cases(split="all", modifiers=True)
    assert len(cases) == len(shapes.combos(split="all"))
    assert {(c.size, c.speed) for c in cases} == set(shapes.MODIFIER_PAIRS)
    case = parse_prompt("a big red circle moving right slowly")
    assert (case.size, case.speed) == ("big", "slowly")
    label = shapes.Label("red", "circle", "right", 20.0, 32.0, 0.21 * 64, 0.15 * 64, "big", "slowly")
    row = score(shapes.render(label), case, shapes.COLORS)
    assert row["size_ok"] and row["speed_ok"] and row["all_ok"]
    plain = score(shapes.render(label), parse_prompt("a red circle moving right"), shapes.COLORS)
    assert "size_ok" not in plain and "speed_ok" not in plain and plain["all_ok"]
    wrong = score(shapes.render(label), parse_prompt("a small red circle moving right quickly"), shapes.COLORS)
    assert not wrong["size_ok"] and not wrong["speed_ok"] and not wrong["all_ok"]
    summary = summarize([row, plain, wrong])["overall"]
    assert summary["size"] == summary["speed"] == 0.5 and summary["clips"] == 3
    assert summarize([plain])["overall"]["size"] is None


def test_shapes_clips_with_modifiers_caption_every_paraphrase_with_the_words():
    clips = shapes_clips(40, size=64, frames=8, seed=3, modifiers=1.0)
    for caps in clips.captions:
        cases = {(parse_prompt(c).size, parse_prompt(c).speed) for c in caps}
        assert len(cases) == 1 and cases.pop() != (None, None)
