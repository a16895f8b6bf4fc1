"""A component's weights from one downloaded file over a base model (``--transformer FILE``, ``--vae FILE``):
the original, ComfyUI and diffusers key layouts, float8 with per-tensor scales, GGUF Q8_0 and Q4_0; every bad
file refused naming it before any weight loads; a server takes files only from its model roots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from t2v import GenerationRequest, generate
from t2v.errors import InvalidRequest
from t2v.models.tiny import singlefile as sf
from tests.tinymodels import built

pytest.importorskip("gguf")


def _run(model, **files):
    return generate(GenerationRequest(prompt="a red circle", model=str(model), seed=3, formats=(), dtype="fp32", **files))


def assert_same_weights_frames(ours, folders) -> None:
    """The frames of the same weights read from a file and from the folder: equal, or 1/255 apart in a few
    pixels (the two loads leave the tensors at different memory addresses, and on some CPUs, AVX-512 ones
    among them, the kernels then sum in another order)."""
    diff = np.abs(ours.astype(int) - folders.astype(int))
    assert ours.shape == folders.shape and diff.max() <= 1 and (diff > 0).mean() < 0.001, (diff.max(), (diff > 0).mean())


@pytest.fixture(scope="module")
def wan(tmp_path_factory):
    """The tiny Wan 2.1 folder, its frames, and its transformer and VAE as single files of every kind."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    folder = built("wan")
    out = tmp_path_factory.mktemp("weightfiles")
    state = WanTransformer3DModel.from_pretrained(folder, subfolder="transformer").state_dict()
    files = {
        "original": sf.write_safetensors(sf.wan_original(state), out / "wan_t2v_original.safetensors"),
        "comfy": sf.write_safetensors(sf.wan_original(state, comfy=True), out / "wan_t2v_comfy.safetensors"),
        "diffusers": sf.write_safetensors(state, out / "wan_t2v_diffusers.safetensors"),
        "bf16": sf.write_safetensors({k: v.to(torch.bfloat16) for k, v in sf.wan_original(state).items()},
                                     out / "wan_t2v_bf16.safetensors"),
        "fp8_scaled": sf.write_safetensors(sf.fp8_scaled(sf.wan_original(state, comfy=True)),
                                           out / "wan_t2v_fp8_e4m3fn_scaled.safetensors"),
        "q8_0": sf.write_gguf(sf.wan_original(state), out / "wan_t2v-Q8_0.gguf", "Q8_0"),
        "q4_0": sf.write_gguf(sf.wan_original(state), out / "wan_t2v-Q4_0.gguf", "Q4_0"),
        "q4_k": sf.write_gguf(sf.wan_original(state), out / "wan_t2v-Q4_K.gguf", "Q4_K"),
    }
    vae = AutoencoderKLWan.from_pretrained(folder, subfolder="vae").state_dict()
    files["vae"] = sf.write_safetensors(vae, out / "wan_vae.safetensors")
    return folder, _run(folder).frames, files, out


@pytest.mark.parametrize("layout", ["original", "comfy", "diffusers"])
def test_a_transformer_file_in_any_key_layout_gives_the_folders_frames(wan, layout):
    folder, frames, files, _ = wan
    r = _run(folder, transformer=str(files[layout]))
    assert_same_weights_frames(r.frames, frames)
    assert r.record["transformer"] == str(files[layout])
    assert r.record["model_hash"].startswith(_run(folder).record["model_hash"] + "+transformer:")


def test_a_vae_file_gives_the_folders_frames(wan):
    folder, frames, files, _ = wan
    assert_same_weights_frames(_run(folder, vae=str(files["vae"])).frames, frames)


# Tolerances: the mean absolute difference of the 8-bit frames from the fp32 folder's (0-255). Measured on the tiny
# random-weight model: bf16 0.0003, float8 with scales 0.24, Q8_0 0.00004, Q4_0 0.025. (Only the layers whose
# rows the block size divides are quantized: all but the 24-wide ones for Q8_0 and Q4_0, the 256-wide time
# embedding for Q4_K.)
@pytest.mark.parametrize(("kind", "tolerance"), [("bf16", 0.05), ("fp8_scaled", 1.0), ("q8_0", 0.05), ("q4_0", 0.5),
                                                 ("q4_k", 0.5)])
def test_lower_precision_files_stay_close_to_the_full_precision_frames(wan, kind, tolerance):
    folder, frames, files, _ = wan
    got = _run(folder, transformer=str(files[kind])).frames
    diff = np.abs(got.astype(np.float64) - frames.astype(np.float64)).mean()
    assert got.shape == frames.shape and diff <= tolerance, (kind, diff)
    if kind.startswith("q"):
        assert diff > 0, "a quantized file is not the same weights"


def test_q4_k_blocks_packed_here_read_back_through_gguf_within_half_a_step():
    import gguf

    rng = np.random.default_rng(0)
    x = (rng.standard_normal((3, 512)) * 0.05).astype(np.float32)
    y = gguf.quants.dequantize(sf.quantize_q4_k(x), gguf.GGMLQuantizationType.Q4_K)
    sub = x.reshape(3, 16, 32)
    step = (sub.max(axis=2) - np.minimum(sub.min(axis=2), 0)) / 15  # each sub-block's 4-bit step
    err = np.abs(y - x).reshape(3, 16, 32).max(axis=2)
    # half a step, plus what rounding each sub-block's scale and min to 6 bits of the block's adds
    assert y.shape == x.shape and (err <= 0.55 * step + 1e-3).all(), (err / step).max()
    assert not gguf.quants.dequantize(sf.quantize_q4_k(np.zeros((1, 256), np.float32)), gguf.GGMLQuantizationType.Q4_K).any()


def test_scales_are_applied(wan, tmp_path):
    """The same float8 file with its scales dropped makes other frames: the scales are not ignored."""
    from safetensors.torch import load_file, save_file

    folder, frames, files, _ = wan
    bare = {k: v for k, v in load_file(files["fp8_scaled"]).items() if not k.endswith("scale_weight")}
    save_file(bare, tmp_path / "unscaled.safetensors")
    scaled = np.abs(_run(folder, transformer=str(files["fp8_scaled"])).frames.astype(float) - frames).mean()
    unscaled = np.abs(_run(folder, transformer=str(tmp_path / "unscaled.safetensors")).frames.astype(float) - frames).mean()
    assert unscaled > 4 * max(scaled, 0.25), (scaled, unscaled)


def _bad_files(out, folder):
    from diffusers import UNet3DConditionModel, WanTransformer3DModel
    from safetensors.torch import save_file

    save_file({"blocks.0.self_attn.q.lora_A.weight": torch.zeros(4, 24),
               "blocks.0.self_attn.q.lora_B.weight": torch.zeros(24, 4)}, out / "lora.safetensors")
    bigger = WanTransformer3DModel.from_config({**WanTransformer3DModel.load_config(folder, subfolder="transformer"),
                                                "attention_head_dim": 16})
    sf.write_safetensors(sf.wan_original(bigger.state_dict()), out / "wan_bigger.safetensors")
    unet = UNet3DConditionModel.from_pretrained(built("modelscope"), subfolder="unet")
    save_file(unet.state_dict(), out / "unet.safetensors")
    q8 = (out / "wan_t2v-Q8_0.gguf").read_bytes()
    (out / "truncated.gguf").write_bytes(q8[: len(q8) // 2])
    (out / "weights.bin").write_bytes(b"not weights")


@pytest.mark.parametrize(("name", "field", "says"), [
    ("lora.safetensors", "transformer", "a LoRA adapter, not a transformer's weights; give it with --lora"),
    ("wan_bigger.safetensors", "transformer", "a WanTransformer3DModel of another size"),
    ("unet.safetensors", "transformer", "not a WanTransformer3DModel (transformer) of this model"),
    ("truncated.gguf", "transformer", "truncated or damaged"),
    ("weights.bin", "transformer", "expected one of: .safetensors, .gguf"),
    ("missing.safetensors", "transformer", "no such file"),
    ("wan_t2v_original.safetensors", "vae", "not a AutoencoderKLWan (vae) of this model"),
    ("wan_t2v_original.safetensors", "transformer_2", "has no transformer_2 to take from a file; it has: transformer"),
])
def test_bad_files_are_refused_naming_the_file_before_anything_loads(wan, name, field, says, monkeypatch):
    from t2v.models import weightfiles

    folder, _, files, out = wan
    if not (out / "lora.safetensors").exists():
        _bad_files(out, folder)
    loads = []
    monkeypatch.setattr(weightfiles, "load", lambda *a, **k: loads.append(a))
    with pytest.raises(InvalidRequest) as e:
        _run(folder, **{field: str(out / name)})
    assert e.value.field == field and says in str(e.value), str(e.value)
    if field != "transformer_2":
        assert str(out / name) in str(e.value)
    assert loads == []


def test_other_families_refuse_a_file_they_cannot_read(tmp_path):
    """HunyuanVideo 1.5's transformer has no key converter: refused by name, not loaded wrongly."""
    folder = built("hunyuan15")
    file = sf.write_safetensors({"x.weight": torch.zeros(2, 2)}, tmp_path / "hunyuan15.safetensors")
    with pytest.raises(InvalidRequest, match="cannot read a HunyuanVideo15Transformer3DModel .transformer. from a "
                                             "single file; give a diffusers folder instead"):
        _run(folder, transformer=str(file))


@pytest.mark.parametrize(("kind", "original"), [("skyreels-v2", True), ("wan22-a14b", True), ("ltx", False),
                                              ("hunyuan", False)])
def test_other_families_read_their_transformer_files(kind, original, tmp_path):
    """SkyReels-V2 (Wan's layout), both experts of Wan 2.2 A14B, LTX-Video and HunyuanVideo: the folder's frames."""
    import diffusers

    from t2v.models.catalog import read_index

    folder = built(kind)
    index = read_index(folder)
    files = {}
    for name in ("transformer", "transformer_2"):
        if name in index and index[name][0]:
            state = getattr(diffusers, index[name][1]).from_pretrained(folder, subfolder=name).state_dict()
            files[name] = str(sf.write_safetensors(sf.wan_original(state) if original else state,
                                                   tmp_path / f"{kind}-{name}.safetensors"))
    assert len(files) == (2 if kind == "wan22-a14b" else 1)
    assert_same_weights_frames(_run(folder, **files).frames, _run(folder).frames)


def test_ltx2_reads_a_transformer_file_and_a_gguf(tmp_path):
    from diffusers import LTX2VideoTransformer3DModel

    folder = built("ltx2")
    base = _run(folder)
    state = LTX2VideoTransformer3DModel.from_pretrained(folder, subfolder="transformer").state_dict()
    file = sf.write_safetensors(state, tmp_path / "ltx2.safetensors")
    assert_same_weights_frames(_run(folder, transformer=str(file)).frames, base.frames)
    q8 = _run(folder, transformer=str(sf.write_gguf(state, tmp_path / "ltx2-Q8_0.gguf", "Q8_0", arch="ltx2"))).frames
    assert 0 < np.abs(q8.astype(float) - base.frames).mean() <= 0.5  # measured: 0.02


def test_a_server_takes_weight_files_only_from_its_model_roots(wan, tmp_path):
    from t2v.service.limits import check_weight_file_allowed
    from t2v.settings import Settings

    _, _, files, out = wan
    inside = Settings(home=tmp_path / "home", model_roots=str(out))
    check_weight_file_allowed(str(files["q8_0"]), inside, field="transformer")
    outside = Settings(home=tmp_path / "home", model_roots=str(tmp_path))
    for path in (str(files["q8_0"]), str(tmp_path / "missing.gguf"), "/etc/passwd", f"{tmp_path}/../{out.name}/x.gguf"):
        with pytest.raises(InvalidRequest) as e:
            check_weight_file_allowed(path, outside, field="transformer")
        assert str(e.value) == ("transformer: not available on this server; name a .safetensors or .gguf file under its "
                                "model roots (T2V_MODEL_ROOTS)")


def test_the_planner_counts_a_gguf_files_real_size(wan):
    """A GGUF transformer holds its quantized bytes, not its parameters in the run's dtype."""
    from t2v.families import family_of_folder
    from t2v.planner import memory

    folder, _, files, _ = wan
    family = family_of_folder(folder)

    def predicted(**file):
        req = GenerationRequest(prompt="a cat", model=str(folder), seed=1, num_frames=5, width=64, height=32,
                                num_inference_steps=2, guidance_scale=5.0, formats=(), **file)
        return memory.estimate(folder, req, family=family, plan="speed", device="cuda", dtype="bf16")

    plain, q4 = predicted(), predicted(transformer=str(files["q4_0"]))
    assert q4.weights_bytes["transformer"] == files["q4_0"].stat().st_size
    assert q4.weights_bytes["vae"] == plain.weights_bytes["vae"]
    assert plain.peak_bytes - q4.peak_bytes == plain.weights_bytes["transformer"] - q4.weights_bytes["transformer"]
    # an fp8 safetensors file loads into the run's dtype: counted as the folder's
    assert predicted(transformer=str(files["fp8_scaled"])).weights_bytes == plain.weights_bytes


def test_models_show_lists_the_weight_files_and_the_gpu_memory_each_needs(wan):
    """``t2v models show FOLDER``: every format, its file's size counted as the files are written (the Q8_0 file
    the tests wrote holds exactly those bytes of tensor data), and the planner's GPU memory at the model's
    defaults with it, all on the GPU and streamed; a GGUF row is what ``t2v plan`` predicts with such a file."""
    import json

    import gguf
    from typer.testing import CliRunner

    from t2v.cli import app
    from t2v.families import family_of_folder
    from t2v.planner import memory
    from t2v.runner.weightchoices import FORMATS

    folder, _, files, _ = wan
    r = CliRunner().invoke(app, ["models", "show", str(folder), "--json"])
    assert r.exit_code == 0, r.output
    rows = {c["format"]: c for c in json.loads(r.stdout)["weight_files"]}
    assert list(rows) == [f.name for f in FORMATS]
    assert rows["Q8_0"]["file_bytes"] == sum(int(t.n_bytes) for t in gguf.GGUFReader(files["q8_0"]).tensors)
    assert rows["bf16"]["file_bytes"] > rows["fp8 e4m3fn"]["file_bytes"]
    assert all(c["low_bytes"] < c["speed_bytes"] for c in rows.values()), rows
    defaults = json.loads(r.stdout)["defaults"]
    req = GenerationRequest(prompt="a", model=str(folder), transformer=str(files["q8_0"]),
                            **{k: defaults[k] for k in ("width", "height", "num_frames", "guidance_scale")})
    planned = memory.estimate(folder, req, family=family_of_folder(folder), plan="speed", device="cuda", dtype="bf16")
    header = files["q8_0"].stat().st_size - rows["Q8_0"]["file_bytes"]
    assert planned.peak_bytes - rows["Q8_0"]["speed_bytes"] == header, "the file's bytes, less its header"
    text = CliRunner().invoke(app, ["models", "show", str(folder)]).stdout
    assert "weight files" in text and "Q4_K_M .gguf" in text


def test_the_file_sizes_of_wan_14b_are_the_published_files_sizes(tmp_path):
    """Wan 2.1 14B's transformer from its configs (meta device): the bf16, Q8_0, Q4_K_M and Q2_K files
    people download are 28.6, 15.9, 10.1 and 7.0 GB; counted within 6%."""
    import json
    import shutil

    from t2v.families.meta import meta_modules
    from t2v.runner.weightchoices import FORMATS, file_bytes

    folder = shutil.copytree(Path(__file__).parents[1] / "planner" / "data" / "wan21-1.3b-configs", tmp_path / "wan14")
    config = folder / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "num_attention_heads": 40, "ffn_dim": 13824,
                                  "num_layers": 40}))
    tr = meta_modules(str(folder), ("transformer",))["transformer"]
    sizes = {f.name: file_bytes(tr, f) / 1e9 for f in FORMATS}
    for name, published in {"bf16": 28.6, "Q8_0": 15.9, "Q4_K_M": 10.1, "Q2_K": 7.0}.items():
        assert abs(sizes[name] / published - 1) < 0.06, (name, sizes[name], published)
    gguf_sizes = [sizes[f.name] for f in FORMATS if f.ext == ".gguf"]
    assert sizes["bf16"] > sizes["Q8_0"] > sizes["fp8 e4m3fn"] and gguf_sizes == sorted(gguf_sizes, reverse=True)
