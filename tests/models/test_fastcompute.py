"""--weights fp8-fast / int8-fast: which layers compute in 8 bits, the refusals, and int8-fast for real on the CPU.

fp8-fast needs an Ada or Hopper GPU: on the CPU its refusal is checked here, its frames in the GPU benchmark
(benchmarks/gpu.py, plan ``fp8``) and the GPU-marked test below."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from t2v.errors import InvalidRequest
from t2v.models import fastcompute
from t2v.models.precision import check_weights

TORCHAO_SITE = Path(__file__).resolve().parents[2] / ".venv" / "torchao-site"  # scripts/setup.sh puts it there
WAN_13B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
               text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, eps=1e-6)


def test_the_block_layers_of_wan_13b_compute_in_8_bits_and_the_rest_stays():
    """Wan 2.1 1.3B's real architecture (on the meta device): the 300 linear layers of its 30 blocks (self- and
    cross-attention, feed-forward) are quantised; the timestep and text embedders and the final projection are not."""
    from diffusers import WanTransformer3DModel

    with torch.device("meta"):
        model = WanTransformer3DModel(**WAN_13B)
    chosen = fastcompute.quantised_layers(model)
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len(chosen) == 300 and all(n.startswith("blocks.") for n in chosen)
    assert {n.split(".", 2)[2] for n in chosen} == {
        "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_k", "attn2.to_v",
        "attn2.to_out.0", "ffn.net.0.proj", "ffn.net.2"}
    assert sorted(set(linear) - set(chosen)) == [
        "condition_embedder.text_embedder.linear_1", "condition_embedder.text_embedder.linear_2",
        "condition_embedder.time_embedder.linear_1", "condition_embedder.time_embedder.linear_2",
        "condition_embedder.time_proj", "proj_out"]


def test_layers_the_kernels_cannot_tile_and_named_kinds_stay():
    block = torch.nn.Module()
    block.to_q, block.odd, block.norm_k, block.ada_modulation = (torch.nn.Linear(32, 32), torch.nn.Linear(24, 32),
                                                                 torch.nn.Linear(32, 32), torch.nn.Linear(32, 64))
    assert fastcompute.quantised_layers(block) == ["to_q"]


def refused(weights: str, device: str, **kw) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        check_weights(weights, device, "bf16", **kw)
    return info.value


def test_fp8_fast_is_refused_off_ada_and_hopper(monkeypatch):
    e = refused("fp8-fast", "cpu")
    assert e.field == "weights" and "this run is on cpu" in str(e) and "nearest valid: int8-fast" in str(e)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=0: (8, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA A100-SXM4-80GB")
    e = refused("fp8-fast", "cuda")
    assert "this NVIDIA A100-SXM4-80GB is 8.0" in str(e) and "nearest valid: int8-fast" in str(e)


def test_compute_formats_are_for_the_denoiser_and_take_no_lora():
    e = refused("int8-fast", "cpu", field="text_encoder_weights")
    assert e.field == "text_encoder_weights" and "nearest valid: int8" in str(e)
    e = refused("fp8-fast", "cuda", field="text_encoder_weights")
    assert "nearest valid: fp8" in str(e)
    assert "LoRA" in str(refused("int8-fast", "cpu", lora=True))


def test_the_vocabulary_takes_the_compute_formats():
    from t2v.requests import GenerationRequest

    assert GenerationRequest.create(prompt="p", weights="INT8-fast").weights == "int8-fast"
    with pytest.raises(Exception, match="fp8-fast, int8-fast"):
        GenerationRequest.create(prompt="p", weights="fp4")


def test_int8_fast_without_torchao_names_the_install():
    try:
        import torchao.quantization  # noqa: F401
    except Exception:
        assert "pip install torchao" in str(refused("int8-fast", "cpu"))
    else:
        check_weights("int8-fast", "cpu", "fp32")  # installed: accepted


def test_int8_fast_runs_with_torchao(tmp_path):
    """`--weights int8-fast` for real on the CPU (torchao beside the venv, see scripts/setup.sh): a tiny Wan whose
    block layers tile (heads of 16 channels), quantised layer by layer as chosen, the record says so, the
    frames stay close to the fp32 run's."""
    if not (TORCHAO_SITE / "torchao").is_dir():
        pytest.fail(f"torchao is not installed at {TORCHAO_SITE} (scripts/setup.sh installs it there)")
    code = f"""
import json
import numpy as np
import t2v
from t2v.families import make_tiny_model
from t2v.models import fastcompute
from t2v.models.loader import model_cache
from t2v.models.tiny import wan as tiny_wan
from t2v.runtime import current
tiny_wan.HEADS, tiny_wan.HEAD_DIM = 2, 16  # inner width 32: every block layer a multiple of 16
model = str(make_tiny_model("wan", {str(tmp_path / "wan")!r}, seed=0))
kw = dict(model=model, seed=1, num_frames=5, width=32, height=32, num_inference_steps=2, progress=False)
plain = t2v.generate("a red square", **kw)
fast = t2v.generate("a red square", weights="int8-fast", **kw)
entry = next(m for m in model_cache(current()).entries.values() if m.content_hash.endswith("+weights:int8-fast"))
chosen = set(fastcompute.quantised_layers(entry.transformer))
kinds = {{n: type(m.weight).__name__ for n, m in entry.transformer.named_modules() if hasattr(m, "weight")
         and m.weight is not None and type(m).__name__ == "Linear"}}
print(json.dumps({{"weights": fast.record["weights"], "hash": fast.record["model_hash"], "chosen": sorted(chosen),
                  "kinds": kinds, "diff": int(np.abs(plain.frames.astype(int) - fast.frames.astype(int)).max()),
                  "std": float(plain.frames.std())}}))
"""
    env = {**os.environ, "PYTHONPATH": str(TORCHAO_SITE), "T2V_HOME": str(tmp_path / "home")}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["weights"] == "int8-fast" and out["hash"].endswith("+weights:int8-fast")
    assert len(out["chosen"]) == 20  # 2 blocks x 10 layers
    assert all(("Int8" in kind) == (name in out["chosen"]) for name, kind in out["kinds"].items()), out["kinds"]
    assert out["std"] > 1 and 0 < out["diff"] <= 64, out  # 8-bit products: not the fp32 frames, the same picture


@pytest.mark.gpu
def test_gpu_fp8_fast_stays_close_to_bf16(tmp_path):
    """On an Ada or Hopper GPU: fp8-fast frames of a tiny Wan (heads of 16 channels) within 32/255 of bf16's."""
    import numpy as np

    import t2v
    from t2v.families import make_tiny_model
    from t2v.models.tiny import wan as tiny_wan

    if torch.cuda.get_device_capability() < fastcompute.FP8_CAPABILITY:
        pytest.skip("needs compute capability 8.9 or later")
    heads = tiny_wan.HEADS, tiny_wan.HEAD_DIM
    tiny_wan.HEADS, tiny_wan.HEAD_DIM = 2, 16
    try:
        model = str(make_tiny_model("wan", tmp_path / "wan", seed=0))
    finally:
        tiny_wan.HEADS, tiny_wan.HEAD_DIM = heads
    kw = dict(model=model, seed=1, num_frames=5, width=64, height=64, num_inference_steps=2, device="cuda",
              dtype="bf16", progress=False)
    plain = t2v.generate("a red square", **kw)
    fast = t2v.generate("a red square", weights="fp8-fast", **kw)
    assert fast.record["weights"] == "fp8-fast"
    assert np.abs(plain.frames.astype(int) - fast.frames.astype(int)).max() <= 32
