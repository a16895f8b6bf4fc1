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


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A 20-frame clip at the tiny model's size (an mp4, as a user's would be)."""
    from t2v.export.writers import write_video

    yy, xx = np.mgrid[0:64, 0:64]
    frames = np.stack([np.stack([(xx * 3 + i * 12) % 256, (yy * 4) % 256, ((xx + yy) + 5 * i) % 256], -1)
                       for i in range(20)]).astype(np.uint8)
    path = tmp_path_factory.mktemp("far-clip") / "clip.mp4"
    write_video(frames, path, "mp4", 16, crf=4)
    return path


def test_extending_a_clip_matches_the_stock_video_to_video_call(model, clip):
    """``extend`` with one second more at 16 fps: the clip's last 13 frames (two whole chunks of latents) are the
    context; the output is the clip, then the 16 frames the stock call makes after that context."""
    import torch
    from diffusers import AnyFlowFARPipeline

    from t2v.export import decode_video
    from t2v.families.anyflow_far import partition

    steps = []
    frames, result = run(model, extend=str(clip), seconds=1.0, overlap=13,
                         on_progress=lambda e: steps.append(e.total) if e.stage == "denoise" else None)
    given = decode_video(clip)[0]
    assert frames.shape == (20 + 16, 64, 64, 3) and np.array_equal(frames[:20], given)
    r, rec = result.request, result.record
    assert (rec["num_frames"], rec["overlap"], rec["long"]["method"]) == (29, 13, "causal chunks")
    assert set(steps) == {2 * r.num_inference_steps}  # the two chunks after the context; the context is cached
    pipe = AnyFlowFARPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    video = torch.from_numpy(given[-13:]).permute(0, 3, 1, 2).float().div(255)[None]
    theirs = pipe(prompt=r.prompt, negative_prompt=r.negative_prompt, height=64, width=64, num_frames=29, video=video,
                  num_inference_steps=r.num_inference_steps, guidance_scale=r.guidance_scale,
                  chunk_partition=partition(model, 8), generator=torch.Generator("cpu").manual_seed(r.seed),
                  output_type="np").frames[0]
    assert np.abs(frames[20:].astype(int) - to_uint8(theirs)[13:].astype(int)).max() <= 1


def test_seconds_are_one_run_and_an_extension_resumes_bitwise(model, clip, tmp_path):
    frames, result = run(model, seconds=1.0)
    assert frames.shape[0] == 17 and result.record["long"]["method"] == "causal chunks"  # 16 frames, 4k+1
    whole, _ = run(model, extend=str(clip), num_frames=29)  # num_frames counts the context (37, or the clip's 13)
    spec = cancel_after(run, tmp_path / "ext.pt", 3, model, extend=str(clip), num_frames=29)
    resumed, again = run(model, extend=str(clip), num_frames=29, checkpoint=spec)
    assert again.record["resumed_from_step"] == 3 and np.array_equal(resumed, whole)


def test_extension_settings_it_cannot_run_are_refused_by_name(model, clip, first_frame):
    for fields, field in (({"overlap": 12}, "overlap"), ({"overlap": 25}, "overlap"),  # not 12k+1; more than the clip
                          ({"prompt_schedule": ((0, "a"), (8, "b"))}, "prompt_schedule"),
                          ({"image": first_frame}, "image"), ({"seconds": 30.0}, "seconds")):
        with pytest.raises(InvalidRequest) as e:
            run(model, **{"extend": str(clip), "seconds": 1.0, **fields})
        assert e.value.field == field, (fields, str(e.value))
    with pytest.raises(InvalidRequest) as e:  # overlap without a clip to continue
        run(model, seconds=1.0, overlap=13)
    assert e.value.field == "overlap"


def test_an_extension_streams_the_clip_then_each_chunk(model, clip, tmp_path, monkeypatch):
    from t2v import generate
    from t2v.export.stream import ClipStream
    from t2v.requests import GenerationRequest

    parts, real = [], ClipStream.frames
    monkeypatch.setattr(ClipStream, "frames", lambda s, given: parts.append(np.array(given)) or real(s, given))
    request = GenerationRequest(model=str(model), prompt="a fox", seed=2, extend=str(clip), seconds=1.0, overlap=13,
                                formats=())
    result = generate(request, stream=tmp_path / "live.mp4")
    assert [len(p) for p in parts] == [20 + 12, 20 + 16]  # the clip and the first new chunk (3 latent frames), the end
    assert all(np.array_equal(p, result.frames[:len(p)]) for p in parts)
