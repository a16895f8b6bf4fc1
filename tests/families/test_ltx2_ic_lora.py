"""LTX-2 with an IC-LoRA and its reference video (``--control-video`` with the IC-LoRA as ``--lora``) on the tiny
LTX-2 model: ``LTX2InContextPipeline``'s frames and sound for the same seed (the reference at the output's size and
at half of it, as an IC-LoRA's metadata asks; with a first frame too); bitwise resume; the requests it cannot run
refused naming the field."""

from __future__ import annotations

import json

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import cancel_after, random_lora, run

SIZE = {"width": 128, "height": 64, "num_frames": 9}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("ltx2", tmp_path_factory.mktemp("ltx2-ic") / "ltx2", seed=0)


@pytest.fixture(scope="module")
def inputs(model, tmp_path_factory):
    """A reference clip (9 frames, 128x64), an IC-LoRA without metadata and one whose metadata asks for references
    at half the output's size, and a first frame."""
    import av
    from diffusers import LTX2Pipeline, LTX2VideoTransformer3DModel
    from PIL import Image
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("ic-inputs")
    rng = np.random.default_rng(3)
    clip = folder / "reference.mp4"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 128, 64, "yuv420p"
        for _ in range(9):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    lora = random_lora(LTX2VideoTransformer3DModel, model, folder / "ic", seed=7, pipeline_cls=LTX2Pipeline)
    half = folder / "ic-half.safetensors"
    save_file(load_file(str(lora)), str(half), metadata={"reference_downscale_factor": "2"})
    image = folder / "first.png"
    Image.fromarray(rng.integers(0, 255, (64, 128, 3), dtype=np.uint8)).save(image)
    from t2v.export.writers import write_video

    mask = np.zeros((9, 64, 128, 3), np.uint8)
    for i in range(9):  # the reference counts on the left, moving right (each frame different: a GIF merges equal ones)
        mask[i, :, 8 * i:8 * i + 64] = 255
    write_video(mask, folder / "mask.gif", "gif", 24)
    return {"clip": clip, "lora": lora, "half": half, "image": image, "mask": folder / "mask.gif"}


def stock(model, result, clip, lora, downscale: int, image=None, mask=None):
    """LTX2InContextPipeline with the IC-LoRA loaded and the clip's frames (as t2v reads them) as its reference."""
    import torch
    from diffusers import LTX2InContextPipeline
    from diffusers.pipelines.ltx2.pipeline_ltx2_condition import LTX2VideoCondition
    from diffusers.pipelines.ltx2.pipeline_ltx2_ic_lora import LTX2ReferenceCondition
    from PIL import Image

    from t2v.inputs import load_video

    r = result.request
    frames = load_video(clip, width=r.width, height=r.height, num_frames=r.num_frames, field="control_video").frames
    stg = json.loads((model / "t2v.json").read_text())["defaults"]["stg_blocks"]
    pipe = LTX2InContextPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_lora_weights(str(lora), adapter_name="ic")
    pipe.set_adapters("ic", 1.0)
    conditions = [LTX2VideoCondition(frames=Image.open(image).convert("RGB"), index=0)] if image else None
    attention = {}
    if r.control_scale != 1.0 or mask is not None:  # the reference's attention strength, and where (t2v's binary mask)
        attention["conditioning_attention_strength"] = r.control_scale
    if mask is not None:
        from t2v.export import decode_video

        binary = (decode_video(mask)[0].mean(-1) >= 128).astype(np.float32)
        attention["conditioning_attention_mask"] = torch.from_numpy(binary)[None, None]
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
               num_frames=r.num_frames, frame_rate=r.fps, num_inference_steps=r.num_inference_steps,
               guidance_scale=r.guidance_scale, spatio_temporal_guidance_blocks=stg, conditions=conditions,
               reference_conditions=[LTX2ReferenceCondition(frames=frames, strength=1.0)],
               reference_downscale_factor=downscale, generator=torch.Generator("cpu").manual_seed(r.seed),
               output_type="np", **attention)
    return to_uint8(out.frames[0]), out.audio[0].float().numpy()


@pytest.mark.parametrize("which,downscale,first", [("lora", 1, False), ("half", 2, False), ("lora", 1, True)],
                         ids=["full-size-reference", "half-size-reference", "with-a-first-frame"])
def test_frames_and_sound_match_the_in_context_pipeline(model, inputs, which, downscale, first):
    extra = {"image": inputs["image"]} if first else {}
    frames, result = run(model, control_video=str(inputs["clip"]), loras=[{"path": str(inputs[which])}], **SIZE,
                         **extra)
    assert frames.shape == (9, 64, 128, 3) and frames.std() > 1
    ref, sound = stock(model, result, inputs["clip"], inputs[which], downscale, inputs["image"] if first else None)
    assert np.abs(frames.astype(int) - ref.astype(int)).max() <= 1
    n = min(result.audio.samples.shape[1], sound.shape[1])
    np.testing.assert_allclose(result.audio.samples[:, :n], np.clip(sound[:, :n], -1, 1), atol=1e-5)
    assert result.record["control_video_sha256"]


@pytest.mark.parametrize("scale,masked", [(0.6, False), (1.0, True), (0.5, True)],
                         ids=["half-strength", "masked", "masked-half-strength"])
def test_the_references_attention_strength_and_mask_match_the_in_context_pipeline(model, inputs, scale, masked):
    extra = {"mask_video": str(inputs["mask"])} if masked else {}
    frames, result = run(model, control_video=str(inputs["clip"]), loras=[{"path": str(inputs["lora"])}],
                         control_scale=scale, **SIZE, **extra)
    ref, _ = stock(model, result, inputs["clip"], inputs["lora"], 1, mask=inputs["mask"] if masked else None)
    assert np.abs(frames.astype(int) - ref.astype(int)).max() <= 1
    full, _ = run(model, control_video=str(inputs["clip"]), loras=[{"path": str(inputs["lora"])}], **SIZE)
    assert np.abs(frames.astype(int) - full.astype(int)).max() > 2  # the strength and the mask count
    if masked:
        assert result.record["mask_video_sha256"]


def test_a_cancelled_run_resumes_bitwise(model, inputs, tmp_path):
    fields = dict(control_video=str(inputs["clip"]), loras=[{"path": str(inputs["lora"])}], **SIZE)
    whole, _ = run(model, **fields)
    spec = cancel_after(run, tmp_path / "ckpt.pt", 2, model, **fields)
    resumed, result = run(model, checkpoint=spec, **fields)
    assert result.record["resumed_from_step"] == 2 and np.array_equal(resumed, whole)


@pytest.mark.parametrize("fields,field,message", [
    ({}, "control_video", "give the IC-LoRA as lora"),
    ({"lora": True, "control_scale": 1.5}, "control_scale", "nearest valid: 1.0"),
])
def test_requests_it_cannot_run_are_refused(model, inputs, fields, field, message):
    fields = dict(fields)
    if fields.pop("lora", False):
        fields["loras"] = [{"path": str(inputs["lora"])}]
    with pytest.raises(InvalidRequest) as e:
        run(model, control_video=str(inputs["clip"]), **SIZE, **fields)
    assert e.value.field == field and message in str(e.value)
