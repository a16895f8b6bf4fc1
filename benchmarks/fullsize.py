"""Build the full-size ModelScope text-to-video architecture with random weights, in the real folder layout.

Shared by the benchmarks. The folder looks like ``damo-vilab/text-to-video-ms-1.7b`` (fp32 safetensors only):

- ``unet/``: ``UNet3DConditionModel()`` with its defaults, which are ModelScope's config (1.41 B parameters);
- ``vae/``: the SD 1.x ``AutoencoderKL`` (block_out_channels 128/256/512/512, 4 down/up blocks, 2 layers per
  block, 4 latent channels, scaling factor 0.18215);
- ``text_encoder/``: a CLIP ViT-H-sized ``CLIPTextModel`` (hidden 1024, 23 layers, 16 heads, MLP 4096, gelu);
- ``tokenizer/``: t2v's offline CLIP BPE tokenizer (``t2v.models.tiny.make_tokenizer``), so no download;
- ``scheduler/``: ``DDIMScheduler`` with ModelScope's config;
- ``model_index.json`` naming ``TextToVideoSDPipeline``, so ``DiffusionPipeline.from_pretrained`` works on it.

About 7.4 GB on disk; it takes a few minutes on 2 cores. The weights are random (the videos are noise) and
are never to be committed: the default location is outside the repository.

    .venv/bin/python benchmarks/fullsize.py [DIR] [--force]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

DEFAULT_DIR = Path("fullsize-ms")  # under the folder it runs in; nothing is committed
MARKER = ".t2v-fullsize-complete"  # written last: a folder without it is half-built and gets rebuilt
logger = logging.getLogger("fullsize")

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(128, 256, 512, 512),
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=512,
    scaling_factor=0.18215,
)
TEXT_CONFIG = dict(
    hidden_size=1024,
    num_hidden_layers=23,
    num_attention_heads=16,
    intermediate_size=4096,
    hidden_act="gelu",
    max_position_embeddings=77,
    vocab_size=49408,
    projection_dim=1024,
)
SCHEDULER_CONFIG = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False)


def is_built(directory: str | Path) -> bool:
    return (Path(directory) / MARKER).is_file()


def build(directory: str | Path = DEFAULT_DIR, *, seed: int = 0, force: bool = False) -> Path:
    """Build the model at ``directory`` unless it is already complete there; return its path."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from t2v.models.tiny import make_tokenizer

    out = Path(directory).expanduser().resolve()
    try:
        out.relative_to(ROOT)
        raise SystemExit(f"refusing to write multi-GB random weights inside the repository: {out}")
    except ValueError:
        pass
    if is_built(out) and not force:
        logger.info("full-size model already built at %s", out)
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    tokenizer = make_tokenizer(out / "tokenizer")
    # One component at a time, freed before the next, so building needs ~2x the largest component in RAM.
    builders = {
        "text_encoder": lambda: CLIPTextModel(
            CLIPTextConfig(**TEXT_CONFIG, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                           pad_token_id=tokenizer.pad_token_id)
        ),
        "vae": lambda: AutoencoderKL(**VAE_CONFIG),
        "unet": lambda: UNet3DConditionModel(),
    }
    for name, make in builders.items():
        model = make()
        n = sum(p.numel() for p in model.parameters())
        model.save_pretrained(out / name, safe_serialization=True)
        logger.info("%s: %.1f M parameters, saved (%.0f s)", name, n / 1e6, time.perf_counter() - t0)
        del model
        gc.collect()
    DDIMScheduler(**SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    import diffusers

    index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    (out / MARKER).write_text(json.dumps({"seed": seed, "torch": torch.__version__, "diffusers": diffusers.__version__}) + "\n")
    logger.info("built full-size ModelScope architecture at %s in %.0f s", out, time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder is complete")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(build(args.directory, seed=args.seed, force=args.force))


if __name__ == "__main__":
    main()
