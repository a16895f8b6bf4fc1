"""Weights straight into the run's dtype (no fp32 copy held beside them), and the fp8 / int8 storage variants."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from t2v.errors import DoesNotFit, InvalidRequest
from t2v.families.base import read_index, resolve_class
from t2v.models import loader
from t2v.models.loader import clear_cache, load_model
from t2v.models.source import resolve_source
from t2v.models.precision import check_weights, load_converted, load_module
from t2v.requests import GenerationRequest
from t2v.settings import get_settings
from t2v.families import family_of_folder, get_family

PEAK_SCRIPT = textwrap.dedent("""
    import json, os, sys, torch
    from pathlib import Path
    from diffusers import UNet3DConditionModel
    from t2v.models.precision import load_module

    root = Path(sys.argv[1])

    def warm_up():  # imports, code pages
        load_module(UNet3DConditionModel, root, "warmup", "diffusion_pytorch_model", torch.bfloat16, None)

    def status(key):
        return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key + ":"))

    # Each load is measured in a process of its own, forked from this one once it has imported everything (one
    # torch thread: no thread pool crosses the fork). A fork does not inherit the mapped code pages its parent
    # touched, so it warms up again before its base is read, as a fresh process does.
    warm_up()
    for cache in sys.argv[2:]:
        pid = os.fork()
        if pid == 0:
            os.environ["T2V_CONVERTED_CACHE"] = cache
            warm_up()
            base = status("VmRSS")
            open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS now
            model = load_module(UNet3DConditionModel, root, "unet", "diffusion_pytorch_model", torch.bfloat16, None)
            print(json.dumps({"peak": status("VmHWM") - base,
                              "weights": sum(t.numel() * t.element_size() for t in model.state_dict().values()),
                              "dtypes": sorted({str(p.dtype) for p in model.parameters()})}), flush=True)
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0
""")


def _unet(out, channels, seed=0):
    from diffusers import UNet3DConditionModel

    torch.manual_seed(seed)
    model = UNet3DConditionModel(block_out_channels=channels, cross_attention_dim=256, attention_head_dim=8,
                                 norm_num_groups=16, layers_per_block=1, sample_size=16)
    model.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_bf16_load_peaks_under_1_3x_the_bf16_weights(tmp_path):
    """An fp32 checkpoint loaded as bf16, measured in a fresh process: the peak RSS of the load stays under
    1.3x the bf16 weights (from_pretrained alone holds the mapped fp32 file too: about 3x). Converting into
    the on-disk cache holds no copy at all, and a later load maps what was kept and reads nothing yet."""
    params = _unet(tmp_path / "unet", (128, 256, 512, 512))
    assert params > 60e6  # big enough that the weights, not the noise, decide the peak
    _unet(tmp_path / "warmup", (16, 16, 16, 16), seed=1)
    out = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(tmp_path), "0", "1", "1"], capture_output=True,
                         text=True, check=True, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1",
                                                     "T2V_HOME": str(tmp_path / "home")})
    peaks = [json.loads(line) for line in out.stdout.strip().splitlines()[-3:]]
    for got in peaks:
        assert got["dtypes"] == ["torch.bfloat16"]
        assert got["weights"] == pytest.approx(params * 2, rel=0.01)
    got = peaks[0]  # converting into the model's tensors
    assert 0.9 * got["weights"] < got["peak"] < 1.3 * got["weights"], got
    got = peaks[1]  # converting into a file kept on disk (t2v.models.converted), then mapping it
    assert got["peak"] < 0.5 * got["weights"], got  # measured 0.26x: no copy of the weights is held
    assert len(list((tmp_path / "home" / "cache" / "converted").glob("*.safetensors"))) == 1
    got = peaks[2]  # mapped from what the last load kept: nothing is read until used
    assert got["peak"] < 0.25 * got["weights"], got  # measured 0.14x: the model's objects, code; no weights


def _modules(folder):
    """(component name, class, weight stem) of every module a tiny model's folder has."""
    index = read_index(folder)
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list) or None in entry:
            continue
        cls = resolve_class(*entry[:2])
        if hasattr(cls, "from_pretrained") and (folder / name / "config.json").is_file():
            yield name, cls, "model" if entry[0] == "transformers" else "diffusion_pytorch_model"


def _same(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k
    ba, bb = dict(a.named_buffers()), dict(b.named_buffers())  # non-persistent ones too
    assert ba.keys() == bb.keys()
    for k in ba:
        assert ba[k].dtype == bb[k].dtype and torch.allclose(ba[k].float(), bb[k].float()), k


@pytest.mark.parametrize("family", ["modelscope", "wan", "wan-i2v", "ltx", "cogvideox", "hunyuan", "hunyuan-i2v", "sd",
                                    "sdxl", "animatediff"])
def test_converted_load_is_the_model_from_pretrained_gives(family, tmp_path):
    """Every module of every family's tiny model, as bf16 and fp16: the same keys, dtypes (float32 where
    ``_keep_in_fp32_modules`` says), values bit for bit and buffers as ``from_pretrained(dtype=...)``,
    and tied weights stay one tensor."""
    from tests.tinymodels import make_tiny

    folder = make_tiny(tmp_path / family, family=family, seed=0, fp16_variant=False)
    streamed = 0
    for name, cls, stem in _modules(folder):
        for dtype in (torch.bfloat16, torch.float16):
            ours = load_converted(cls, folder, name, stem, dtype, None)
            theirs = cls.from_pretrained(folder, subfolder=name, dtype=dtype)
            if ours is None:  # nothing to convert: load_module is from_pretrained itself
                continue
            streamed += 1
            _same(ours, theirs)
            assert type(ours) is type(theirs) and ours.config == theirs.config
            if getattr(theirs, "_tied_weights_keys", None) and hasattr(theirs, "get_input_embeddings"):
                out_emb = theirs.get_output_embeddings() if hasattr(theirs, "get_output_embeddings") else None
                if out_emb is not None and out_emb.weight is theirs.get_input_embeddings().weight:
                    assert ours.get_output_embeddings().weight is ours.get_input_embeddings().weight
            keeps = getattr(cls, "_keep_in_fp32_modules", None) or getattr(cls, "_keep_in_fp32_modules_strict", None)
            if dtype == torch.bfloat16 and not keeps:  # the parameters: fp32 loaded, then cast (buffers may not be)
                cast = dict(cls.from_pretrained(folder, subfolder=name).to(dtype).named_parameters())
                assert all(torch.equal(p, cast[n]) and p.dtype == cast[n].dtype for n, p in ours.named_parameters())
    assert streamed >= 4  # the fp32 tiny checkpoints did go through the streaming path


def test_keep_in_fp32_modules_stay_float32(tmp_path):
    """Wan's transformer keeps its norms, time embedder and modulation table in float32 under bf16."""
    from tests.tinymodels import make_tiny

    folder = make_tiny(tmp_path / "wan", family="wan", seed=0, fp16_variant=False)
    cls = resolve_class(*read_index(folder)["transformer"][:2])
    model = load_module(cls, folder, "transformer", "diffusion_pytorch_model", torch.bfloat16, None)
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert dtypes["scale_shift_table"] == torch.float32
    assert any(d == torch.bfloat16 for d in dtypes.values())
    assert all(d == torch.float32 for n, d in dtypes.items() if "norm2" in n.split(".") or "time_embedder" in n)


def test_sharded_checkpoints_and_their_fp16_variant_convert_the_same(tmp_path):
    from diffusers import UNet3DConditionModel

    from t2v.models.precision import checkpoint_files

    torch.manual_seed(0)
    model = UNet3DConditionModel(block_out_channels=(32, 32, 32, 32), cross_attention_dim=32, attention_head_dim=8,
                                 norm_num_groups=16, layers_per_block=1)
    model.save_pretrained(tmp_path / "unet", max_shard_size="200KB")
    model.half().save_pretrained(tmp_path / "unet", max_shard_size="200KB", variant="fp16")
    stem = "diffusion_pytorch_model"
    assert len(checkpoint_files(tmp_path / "unet", stem, None)) > 1
    assert len(checkpoint_files(tmp_path / "unet", stem, "fp16")) > 1
    for variant in (None, "fp16"):
        ours = load_converted(UNet3DConditionModel, tmp_path, "unet", stem, torch.bfloat16, variant)
        assert ours is not None
        _same(ours, UNet3DConditionModel.from_pretrained(tmp_path, subfolder="unet", dtype=torch.bfloat16, variant=variant))


def test_checkpoint_already_in_the_dtype_loads_as_usual(tiny_model):
    """The fp16 variant files asked for in fp16: nothing to convert, so from_pretrained's own (mapped) load."""
    from diffusers import UNet3DConditionModel

    assert load_converted(UNet3DConditionModel, tiny_model, "unet", "diffusion_pytorch_model", torch.float16, "fp16") is None
    assert load_converted(UNet3DConditionModel, tiny_model, "unet", "diffusion_pytorch_model", torch.float32, None) is None
    model = load_module(UNet3DConditionModel, tiny_model, "unet", "diffusion_pytorch_model", torch.float16, "fp16")
    assert {p.dtype for p in model.parameters()} == {torch.float16}


def _request(model, **kw):
    return GenerationRequest(prompt="a red fox", model=str(model), seed=3, formats=(), num_inference_steps=2,
                             num_frames=4, width=64, height=64, **kw)


def test_fp8_weights_run_end_to_end_without_touching_the_cached_model(tiny_model, monkeypatch):
    """fp8 storage on CPU (compute in the run's dtype): the run works, its record says fp8 and names other
    weights than auto's; it is its own cache entry, and the cached auto model is unchanged afterwards."""
    from t2v import generate

    monkeypatch.setattr(loader.model_cache(), "budget_bytes", 2**40)  # keep both models cached
    torch.set_num_threads(1)
    clear_cache()
    try:
        before = generate(_request(tiny_model))
        auto = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), loader.DevicePlan(device="cpu", dtype="fp32"), family=family_of_folder(tiny_model))
        auto_unet = auto.unet
        auto_weights = {n: p.clone() for n, p in auto_unet.named_parameters()}
        fp8 = generate(_request(tiny_model, weights="fp8"))
        assert fp8.record["weights"] == "fp8" and before.record["weights"] == "auto"
        assert fp8.record["model_hash"] != before.record["model_hash"]
        assert fp8.record["model_hash"].startswith(before.record["model_hash"])
        stored = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), loader.DevicePlan(device="cpu", dtype="fp32"), family=family_of_folder(tiny_model),
                            weights="fp8")
        assert stored.unet is not auto_unet
        assert torch.float8_e4m3fn in {p.dtype for p in stored.unet.parameters()}
        assert fp8.frames.shape == before.frames.shape and not np.array_equal(fp8.frames, before.frames)
        assert np.abs(fp8.frames.astype(int) - before.frames.astype(int)).mean() < 8  # fp8-rounded, same video
        # The auto model: the same cached object, its weights and dtype as before, and the same frames.
        again = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), loader.DevicePlan(device="cpu", dtype="fp32"), family=family_of_folder(tiny_model))
        assert again.unet is auto_unet
        assert all(torch.equal(p, auto_weights[n]) and p.dtype == torch.float32 for n, p in auto_unet.named_parameters())
        assert np.array_equal(generate(_request(tiny_model)).frames, before.frames)
    finally:
        clear_cache()


def test_checkpoint_fingerprint_differs_for_fp8(tiny_model):
    """A checkpoint of an fp8 run is never resumed by an auto one: both the hash and the request differ."""
    from t2v.sampling.checkpoint import fingerprint

    plan = loader.DevicePlan(device="cpu", dtype="fp32")
    source = resolve_source(str(tiny_model), get_settings(), families=get_family)
    clear_cache()
    try:
        auto, fp8 = load_model(source, plan, family=family_of_folder(source.path)), load_model(source, plan, family=family_of_folder(source.path), weights="fp8")
        assert auto.content_hash != fp8.content_hash
        request = _request(tiny_model)
        assert fingerprint(auto, request) != fingerprint(fp8, request)
        assert fingerprint(auto, request) != fingerprint(auto, request.model_copy(update={"weights": "fp8"}))
    finally:
        clear_cache()


def test_int8_without_torchao_is_refused_naming_the_install(tiny_model):
    try:
        import torchao.quantization  # noqa: F401
    except Exception:
        with pytest.raises(InvalidRequest, match="pip install torchao") as e:
            load_model(resolve_source(str(tiny_model), get_settings(), families=get_family), loader.DevicePlan(device="cpu", dtype="fp32"), family=family_of_folder(tiny_model),
                       weights="int8")
        assert e.value.field == "weights" and "auto" in str(e.value)
    else:
        from t2v import generate

        clear_cache()
        try:
            result = generate(_request(tiny_model, weights="int8"))
            assert result.record["weights"] == "int8" and result.record["model_hash"].endswith("+weights:int8")
            stored = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family),
                                loader.DevicePlan(device="cpu", dtype="fp32"), family=family_of_folder(tiny_model), weights="int8")
            assert any("Int8" in type(p).__name__ for p in stored.unet.parameters())
        finally:
            clear_cache()


TORCHAO_SITE = Path(__file__).resolve().parents[2] / ".venv" / "torchao-site"  # scripts/setup.sh puts it there


def test_int8_runs_with_torchao(tiny_model, tmp_path):
    """`--weights int8` for real: torchao (beside the venv, see scripts/setup.sh) quantizes the denoiser, the
    record says so, and the frames stay close to fp32's."""
    if not (TORCHAO_SITE / "torchao").is_dir():
        pytest.skip(f"torchao is not installed at {TORCHAO_SITE} (scripts/setup.sh installs it there)")
    code = f"""
import json, sys
import numpy as np
import t2v
from t2v.models.loader import model_cache
from t2v.runtime import current
plain = t2v.generate("a red square", model={str(tiny_model)!r}, seed=1, num_frames=4, num_inference_steps=2,
                     progress=False)
int8 = t2v.generate("a red square", model={str(tiny_model)!r}, seed=1, num_frames=4, num_inference_steps=2,
                    weights="int8", progress=False)
types = sorted({{type(p).__name__ for m in model_cache(current()).entries.values() if m.content_hash.endswith("+weights:int8")
                for p in m.unet.parameters()}})
text = t2v.generate("a red square", model={str(tiny_model)!r}, seed=1, num_frames=4, num_inference_steps=2,
                    text_encoder_weights="int8", progress=False)
text_types = sorted({{type(p).__name__ for m in model_cache(current()).entries.values()
                     if m.content_hash.endswith("text_encoder_weights:int8")
                     for p in m.components["text_encoder"].parameters()}})
text_diff = int(np.abs(plain.frames.astype(int) - text.frames.astype(int)).max())
diff = int(np.abs(plain.frames.astype(int) - int8.frames.astype(int)).max())
print(json.dumps({{"weights": int8.record["weights"], "hash": int8.record["model_hash"], "types": types, "diff": diff,
                  "text": text.record["text_encoder_weights"], "text_types": text_types, "text_diff": text_diff}}))
"""
    env = {**os.environ, "PYTHONPATH": str(TORCHAO_SITE), "T2V_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["weights"] == "int8" and out["hash"].endswith("+weights:int8")
    assert any("Int8" in t for t in out["types"]), out["types"]
    assert 0 < out["diff"] <= 64, out  # quantized: not the fp32 frames, but the same picture
    # --text-encoder-weights int8: the CLIP text encoder quantized the same way
    assert out["text"] == "int8" and any("Int8" in t for t in out["text_types"]), out
    assert out["text_diff"] <= 64, out


@pytest.mark.parametrize("kind", ["modelscope", "wan"])
def test_fp8_text_encoder_stays_close_and_is_recorded(kind, tmp_path):
    """``--text-encoder-weights fp8``: the text encoder's linear layers stored in float8 (T5's ``wo``, kept in
    fp32 by the model itself, and the embeddings and norms stay), the frames within rounding of the plain run."""
    import numpy as np
    import torch

    from t2v import generate
    from tests.tinymodels import built

    folder = built(kind)
    req = dict(prompt="a red square", model=str(folder), seed=1, num_frames=5, num_inference_steps=2, formats=(),
               dtype="fp32")
    clear_cache()
    try:
        plain = generate(GenerationRequest(**req))
        fp8 = generate(GenerationRequest(**req, text_encoder_weights="fp8"))
        assert fp8.record["text_encoder_weights"] == "fp8"
        assert fp8.record["model_hash"] == plain.record["model_hash"] + "+text_encoder_weights:fp8"
        diff = np.abs(plain.frames.astype(float) - fp8.frames.astype(float))
        assert 0 < diff.mean() and diff.max() <= 64, (diff.mean(), diff.max())
        stored = load_model(resolve_source(str(folder), get_settings(), families=get_family),
                            loader.DevicePlan(device="cpu", dtype="fp32"), family=family_of_folder(folder),
                            text_weights="fp8")
        dtypes = {n: p.dtype for n, p in stored.components["text_encoder"].named_parameters()}
        linear = [n for n in dtypes if n.endswith(("q.weight", "q_proj.weight", "fc1.weight", "wi_0.weight", "wi.weight"))]
        assert linear and all(dtypes[n] == torch.float8_e4m3fn for n in linear), dtypes
        assert all(dtypes[n] == torch.float32 for n in dtypes if "norm" in n or ".wo." in n)
        again = generate(GenerationRequest(**req))  # the plain model, loaded or cached, was never changed
        assert np.array_equal(again.frames, plain.frames) and again.record["model_hash"] == plain.record["model_hash"]
    finally:
        clear_cache()


def test_storage_checks_name_the_field_and_auto():
    check_weights("auto", "mps", "fp16", lora="x")  # nothing to check
    check_weights("fp8", "cpu", "fp32")
    check_weights("fp8", "cuda", "bf16")
    for args, kw, words in ((("fp8", "mps", "fp16"), {}, "mps"), (("fp8", "cuda", "bf16"), {"lora": "/a"}, "LoRA"),
                            (("fp4", "cuda", "bf16"), {}, "unknown")):
        with pytest.raises(InvalidRequest, match=words) as e:
            check_weights(*args, **kw)
        assert e.value.field == "weights" and "nearest valid: auto" in str(e.value)


@pytest.mark.gpu
@pytest.mark.parametrize("memory", ["speed", "low"])
def test_fp8_storage_on_a_gpu(tiny_model, memory):
    """On CUDA: the UNet is stored in float8 and computes in bf16, with and without model offload; the clip is
    the bf16 clip within fp8 rounding, and the fp8 weights take less GPU memory."""
    from t2v import generate

    clear_cache()
    try:
        bf16 = generate(_request(tiny_model, device="cuda", dtype="bf16", memory=memory))
        torch.cuda.reset_peak_memory_stats()
        fp8 = generate(_request(tiny_model, device="cuda", dtype="bf16", memory=memory, weights="fp8"))
        assert fp8.record["weights"] == "fp8" and fp8.record["device"].startswith("cuda")
        stored = load_model(resolve_source(str(tiny_model), get_settings(), families=get_family, want_fp16=True),
                            loader.DevicePlan(device="cuda", dtype="bf16"), family=family_of_folder(tiny_model), weights="fp8", offload=memory == "low")
        dtypes = {p.dtype for p in stored.unet.parameters()}
        assert torch.float8_e4m3fn in dtypes
        fp8_bytes = sum(p.numel() * p.element_size() for p in stored.unet.parameters())
        bf16_bytes = sum(p.numel() * 2 for p in stored.unet.parameters())
        assert fp8_bytes < 0.75 * bf16_bytes
        assert np.abs(fp8.frames.astype(int) - bf16.frames.astype(int)).mean() < 8
    finally:
        clear_cache()


def test_the_planner_counts_a_text_encoder_stored_in_one_byte(tiny_model):
    from t2v.planner import memory

    def predicted(**kw):
        req = GenerationRequest(prompt="a cat", model=str(tiny_model), seed=1, num_frames=8, width=64, height=64,
                                num_inference_steps=2, guidance_scale=9.0, formats=(), **kw)
        return memory.estimate(tiny_model, req, family=family_of_folder(tiny_model), plan="speed", device="cuda",
                               dtype="bf16")

    plain, fp8 = predicted(), predicted(text_encoder_weights="fp8")
    assert fp8.weights_bytes["text_encoder"] * 2 == plain.weights_bytes["text_encoder"]
    assert fp8.weights_bytes["unet"] == plain.weights_bytes["unet"]
    assert predicted(text_encoder_weights="int8", weights="fp8").weights_bytes["unet"] * 2 == plain.weights_bytes["unet"]


def test_auto_stores_the_weights_in_8_bits_when_nothing_else_fits(tiny_model, monkeypatch):
    """With a budget under every plan's peak in the run's dtype, ``auto`` takes the first plan that fits with the
    denoiser (then the text encoder too) in float8, and the run loads and records that storage; with a memory
    plan named, the weights stay as asked."""
    from t2v import generate
    from t2v.planner import memory
    from t2v.runner import plan as run_plan

    req = GenerationRequest(prompt="a red square", model=str(tiny_model), seed=1, num_frames=8, width=64, height=64,
                            num_inference_steps=2, guidance_scale=9.0, formats=())
    family = family_of_folder(tiny_model)

    def est(plan, **storage):
        return memory.estimate(tiny_model, req.model_copy(update=storage), family=family, plan=plan, device="cpu",
                               dtype="fp32")

    plain_low = est("low")
    budget = plain_low.peak_bytes - 1  # no plan fits in fp32 weights
    first = next((name, storage) for name, storage in memory.STORED_IN_8_BITS if est(name, **storage).peak_bytes <= budget)
    monkeypatch.setattr(run_plan, "memory_budget", lambda device, gb=None: budget)
    clear_cache()
    try:
        planned = run_plan.plan_run(req, get_settings(), memory=True)
        assert (planned.memory.name, planned.request.weights) == (first[0], "fp8")
        assert planned.chosen().weights == "fp8" and planned.chosen().fits
        assert planned.request.text_encoder_weights == first[1].get("text_encoder_weights", "auto")
        result = generate(req)
        assert result.record["weights"] == "fp8" and result.record["model_hash"].split("+")[1] == "weights:fp8"
        with pytest.raises(DoesNotFit):  # a memory plan named: the weights stay as asked, and nothing fits
            run_plan.plan_run(req.model_copy(update={"memory": "low"}), get_settings(), memory=True)
    finally:
        clear_cache()
