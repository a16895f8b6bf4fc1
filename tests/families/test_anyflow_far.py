"""AnyFlow FAR (``AnyFlowFARPipeline``) on a tiny random-weight model in its hub layout: the stock pipeline's frames
for the same seed (text with and without guidance, from an image, a length the folder's partition does not
cover); bitwise resume inside a chunk and across chunks (the key-value cache built again); the image's chunk
never denoised; the plain AnyFlow model still refusing an image."""

from __future__ import annotations

import numpy as np
import pytest

from t2v.errors import InvalidRequest
from t2v.sampling.vae import to_uint8
from tests.families.checks import cancel_after, noise_image, run


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.tinymodels import make_tiny_model

    return make_tiny_model("anyflow-far", tmp_path_factory.mktemp("anyflow-far") / "far", seed=0)


@pytest.fixture(scope="module")
def first_frame(tmp_path_factory):
    return noise_image(tmp_path_factory.mktemp("far-image"), seed=2)


def stock(model, result, image=None):
    """AnyFlowFARPipeline's frames for the request ``result`` ran, the image given as its one-frame ``video``
    (frames in [0, 1]) and the chunks t2v used."""
    import torch
    from diffusers import AnyFlowFARPipeline
    from PIL import Image

    from t2v.families.anyflow_far import partition

    r = result.request
    pipe = AnyFlowFARPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    extra = {}
    if image is not None:
        pixels = np.asarray(Image.open(image).convert("RGB"))
        extra["video"] = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)[None, None]
    out = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=r.height, width=r.width,
               num_frames=r.num_frames, num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
               chunk_partition=partition(model, (r.num_frames - 1) // 4 + 1),
               generator=torch.Generator("cpu").manual_seed(r.seed), output_type="np", **extra)
    return to_uint8(out.frames[0])


@pytest.mark.parametrize("fields", [{}, {"guidance_scale": 3.0}, {"num_frames": 29}], ids=["text", "guided", "29-frames"])
def test_frames_match_the_stock_pipeline(model, fields):
    frames, result = run(model, **fields)
    r = result.request
    assert frames.shape == (r.num_frames, r.height, r.width, 3) and frames.std() > 1
    assert np.abs(frames.astype(int) - stock(model, result).astype(int)).max() <= 1


def test_image_to_video_matches_the_stock_pipeline_and_denoises_no_context_chunk(model, first_frame):
    steps = []
    frames, result = run(model, image=first_frame, on_progress=lambda e: steps.append(e.total)
                         if e.stage == "denoise" else None)
    assert np.abs(frames.astype(int) - stock(model, result, image=first_frame).astype(int)).max() <= 1
    assert set(steps) == {2 * result.request.num_inference_steps}  # chunks 2 and 3; the image's chunk is context
    text_only, _ = run(model)
    assert not np.array_equal(frames, text_only)


@pytest.mark.parametrize("at,fields", [(2, {}), (4, {}), (5, {"guidance_scale": 3.0}), (6, {"image": True})],
                         ids=["first-chunk", "chunk-boundary", "guided-second-chunk", "image"])
def test_a_cancelled_run_resumes_bitwise(model, first_frame, tmp_path, at, fields):
    if fields.pop("image", False):
        fields["image"] = first_frame
    whole, _ = run(model, **fields)
    spec = cancel_after(run, tmp_path / "ckpt.pt", at, model, **fields)
    resumed, result = run(model, checkpoint=spec, **fields)
    assert result.record["resumed_from_step"] == at and np.array_equal(resumed, whole)


def test_the_bidirectional_model_still_refuses_an_image(tmp_path_factory, first_frame):
    from tests.tinymodels import make_tiny_model

    plain = make_tiny_model("anyflow", tmp_path_factory.mktemp("anyflow-plain") / "anyflow", seed=0)
    with pytest.raises(InvalidRequest) as e:
        run(plain, image=first_frame)
    assert e.value.field == "image"


def test_the_planner_measures_a_chunk_attending_to_its_cache(model):
    from t2v.families import get_family

    m = get_family("anyflow").measure(model, 17, 64, 64, 1, False, 17)
    assert m["step_flops"] > 0 and m["acts"]["transformer"] > 0 and m["params"]["transformer"] > 0
    longer = get_family("anyflow").measure(model, 29, 64, 64, 1, False, 29)
    assert longer["acts"]["transformer"] > m["acts"]["transformer"]  # a longer cache to attend to
