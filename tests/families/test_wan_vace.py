"""VACE control on a tiny Wan 2.1 VACE model: the stock ``WanVACEPipeline``'s frames for the same control video,
mask and reference images and seed; a bitwise resume; every input changing the frames; and refusals naming the
field (other size or length without fit, a grey mask, a model without VACE, an image or a video beside them)."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from t2v.errors import InvalidRequest
from t2v.export import decode_video
from t2v.export.writers import write_video
from t2v.sampling.vae import to_uint8
from tests.families.checks import assert_close_to_stock, assert_resume_after_cancel_is_bitwise, run, without_ftfy

W, H, F = 64, 32, 9  # the tiny model's defaults


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    root = tmp_path_factory.mktemp("wan-vace")
    return {kind: make_tiny_model(kind, root / kind, seed=0) for kind in ("wan-vace", "wan")}


def gradients(n, h, w, shift=0):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([np.stack([(xx * 3 + i * 10 + shift) % 256, (yy * 5) % 256, ((xx + yy) * 2 + i) % 256], -1)
                     for i in range(n)]).astype(np.uint8)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A control clip (mp4), a mask (gif: a block moving right is made, the rest kept), two reference images, and
    clips of another size, another length and a grey 'mask'."""
    root = tmp_path_factory.mktemp("vace-inputs")
    write_video(gradients(F, H, W), root / "control.mp4", "mp4", 8, crf=4)
    mask = np.zeros((F, H, W, 3), np.uint8)
    for i in range(F):  # (every frame different: a GIF writer merges equal ones)
        mask[i, 4:28, 4 * i:4 * i + 24] = 255
    write_video(mask, root / "mask.gif", "gif", 8)
    write_video(gradients(F, 48, 80), root / "big.mp4", "mp4", 8, crf=4)
    write_video(gradients(5, H, W), root / "short.mp4", "mp4", 8, crf=4)
    write_video(gradients(F, H, W), root / "grey.mp4", "mp4", 8, crf=4)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (40, 24, 3), dtype=np.uint8)).save(root / "ref1.png")
    Image.fromarray(rng.integers(0, 255, (16, 48, 3), dtype=np.uint8)).save(root / "ref2.png")
    return root


def stock(model, result, inputs, *, video=True, mask=True, refs=("ref1.png", "ref2.png"), scale=1.0):
    import torch
    import diffusers.pipelines.wan.pipeline_wan_vace as vace
    from diffusers import WanVACEPipeline

    without_ftfy(vace)
    r = result.request
    pipe = WanVACEPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    clip = lambda name: [Image.fromarray(f) for f in decode_video(inputs / name)[0]]  # noqa: E731
    masks = None
    if mask:  # t2v's binary mask, as the stock pipeline reads a mask (white: make)
        masks = [Image.fromarray(np.repeat(((f.mean(-1) >= 128) * 255).astype(np.uint8)[..., None], 3, -1))
                 for f in decode_video(inputs / "mask.gif")[0]]
    frames = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, video=clip("control.mp4") if video else None,
                  mask=masks, reference_images=[Image.open(inputs / n).convert("RGB") for n in refs] or None,
                  conditioning_scale=scale, height=r.height, width=r.width, num_frames=r.num_frames,
                  num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale, max_sequence_length=512,
                  generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np").frames[0]
    return to_uint8(frames)


def control(inputs, **fields):
    return {"control_video": str(inputs / "control.mp4"), "mask_video": str(inputs / "mask.gif"),
            "reference_images": (str(inputs / "ref1.png"), str(inputs / "ref2.png")), **fields}


def test_control_video_mask_and_references_match_the_stock_pipeline(models, inputs):
    ours, result = run(models["wan-vace"], **control(inputs))
    assert ours.shape == (F, H, W, 3)
    rec = result.record
    assert rec["control_video_sha256"] and rec["mask_video_sha256"] and len(rec["reference_images_sha256"]) == 2
    assert_close_to_stock(ours, stock(models["wan-vace"], result, inputs))


@pytest.mark.parametrize("fields, kw", [
    ({"mask_video": None, "reference_images": ()}, {"mask": False, "refs": ()}),  # a control video alone
    ({"control_video": None, "mask_video": None, "control_scale": 0.5},  # references alone, at half strength
     {"video": False, "mask": False, "scale": 0.5}),
])
def test_each_control_input_alone_matches_the_stock_pipeline(models, inputs, fields, kw):
    ours, result = run(models["wan-vace"], **control(inputs, **fields))
    assert_close_to_stock(ours, stock(models["wan-vace"], result, inputs, **kw))


def test_a_vace_model_without_control_is_text_to_video_like_stock(models, inputs):
    ours, result = run(models["wan-vace"])
    assert_close_to_stock(ours, stock(models["wan-vace"], result, inputs, video=False, mask=False, refs=()))


def test_every_control_input_changes_the_frames(models, inputs):
    base = run(models["wan-vace"], **control(inputs))[0]
    for fields in ({"mask_video": None}, {"reference_images": (str(inputs / "ref1.png"),)}, {"control_scale": 0.0},
                   {"control_video": str(inputs / "grey.mp4"), "mask_video": None, "reference_images": ()}):
        other = run(models["wan-vace"], **control(inputs, **fields))[0]
        assert np.abs(other.astype(int) - base.astype(int)).max() > 2, fields


def test_a_cancelled_vace_run_resumes_bitwise_and_only_on_the_same_inputs(models, inputs, tmp_path):
    spec = assert_resume_after_cancel_is_bitwise(run, tmp_path, 2, models["wan-vace"], **control(inputs))
    other = tmp_path / "other.png"
    Image.open(inputs / "ref2.png").rotate(90, expand=True).save(other)
    fields = control(inputs, reference_images=(str(inputs / "ref1.png"), str(other)))
    assert run(models["wan-vace"], checkpoint=spec, **fields)[1].record.get("resumed_from_step") is None


def test_fit_scales_and_cuts_a_clip_of_another_size_and_length(models, inputs):
    for name, said in (("big.mp4", "80x48"), ("short.mp4", "5 frames")):
        with pytest.raises(InvalidRequest) as e:
            run(models["wan-vace"], control_video=str(inputs / name))
        assert e.value.field == "control_video" and said in str(e.value) and f"{W}x{H}, {F} frames" in str(e.value)
        frames, result = run(models["wan-vace"], control_video=str(inputs / name), fit=True)
        assert frames.shape == (F, H, W, 3) and result.request.fit


def test_control_inputs_are_refused_before_weights_load(models, inputs, tmp_path):
    grey = {"control_video": str(inputs / "control.mp4"), "mask_video": str(inputs / "grey.mp4")}
    with pytest.raises(InvalidRequest) as e:
        run(models["wan-vace"], **grey)
    assert e.value.field == "mask_video" and "black and white" in str(e.value)
    assert run(models["wan-vace"], fit=True, **grey)[0].shape == (F, H, W, 3)  # fit thresholds it at half
    for model, fields, field in (
        (models["wan"], control(inputs), "control_video"),  # no VACE in this model
        (models["wan"], {"reference_images": (str(inputs / "ref1.png"),)}, "reference_images"),
        ("t2v-shapes", control(inputs), "control_video"),
        (models["wan-vace"], {"video": str(inputs / "control.mp4")}, "video"),  # video-to-video: not on VACE
        (models["wan-vace"], control(inputs, image=str(inputs / "ref1.png")), "image"),  # VACE: no image-to-video
        (models["wan-vace"], control(inputs, reference_images=(str(tmp_path / "missing.png"),)), "reference_images"),
        (models["wan-vace"], {"control_video": str(inputs / "ref1.png")}, "control_video"),  # not a video
    ):
        with pytest.raises(InvalidRequest) as e:
            run(model, **fields)
        assert e.value.field == field, (model, fields, str(e.value))


def test_the_planner_counts_the_control_stream(models):
    from t2v.families import get_family

    family = get_family("wan")
    vace = family.measure(models["wan-vace"], F, H, W, 1, False, 1)
    plain = family.measure(models["wan"], F, H, W, 1, False, 1)
    assert vace["step_flops"] > plain["step_flops"] and vace["acts"]["vae"] >= plain["acts"]["vae"]


def test_a_run_of_334_steps_or_more_completes_where_stock_fails(models):
    """From 334 steps the flow schedule's first two timesteps are equal (999, 999): a scheduler that finds its first
    step by timestep (the stock VACE and image-to-video pipelines) starts one step late and fails on the last one
    (UniPC's ``this_order > 0``). t2v starts at step 0 as WanPipeline does."""
    from diffusers import UniPCMultistepScheduler

    s = UniPCMultistepScheduler.from_pretrained(models["wan-vace"], subfolder="scheduler")
    s.set_timesteps(334)
    assert s.timesteps[0] == s.timesteps[1]
    frames, result = run(models["wan-vace"], num_inference_steps=334, guidance_scale=1.0)
    assert frames.shape == (F, H, W, 3) and result.request.num_inference_steps == 334
