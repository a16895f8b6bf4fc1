"""The card of Kandinsky 5.0 Video: what t2v knows of the family without importing its code
(:mod:`t2v.families.kandinsky5`).

The diffusers-format repos of ``kandinskylab`` (``*-Diffusers``, as diffusers' docs use them). Lite is a 2B
transformer, Pro 19B; both read the prompt through Qwen2.5-VL-7B (its last hidden states, the system prompt's
tokens cropped) and CLIP ViT-L/14 (pooled), and decode with HunyuanVideo's VAE (8x spatial, 4x temporal).
The image-to-video Pro model (``Kandinsky5I2VPipeline``) starts from ``--image``. Defaults are the
pipelines': 768x512 (Pro text-to-video 1024x768), 121 frames at 24 fps (the 10 s models 241), 50 steps,
guidance 5 with the pipeline's negative prompt. The ``nocfg`` models run without guidance (scale 1). The
``Lite-distilled16steps`` repos are not registered (their ids are longer than a listing's narrowest line); they
run as any hub id does, with ``--steps 16 --guidance 1``. Licence: MIT.
"""

from __future__ import annotations

from t2v.models.spec import DISPATCHED, FamilyCard, ModelSpec

PIPELINE, I2V_PIPELINE = "Kandinsky5T2VPipeline", "Kandinsky5I2VPipeline"
LICENSE = "MIT"
# Kandinsky5T2VPipeline's negative prompt when guidance is on and none is given.
NEGATIVE = ("Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, ugly, deformed, "
            "walking backwards")
_LITE = {"width": 768, "height": 512, "num_frames": 121, "fps": 24, "guidance_scale": 5.0, "num_inference_steps": 50,
         "scheduler": "model", "negative_prompt": NEGATIVE}
_NOTES = ("Sizes approximate (the transformer and Qwen2.5-VL-7B in bf16; GPU memory without offload). The 10 s "
          "models' sparse (NABLA) attention runs with the flex kernel, which auto picks for them.")


def _spec(name: str, description: str, defaults: dict, *, pro: bool = False, aliases: tuple[str, ...] = (),
          task: str = "T2V") -> ModelSpec:
    repo = f"kandinskylab/Kandinsky-5.0-{task}-{name}-Diffusers"
    return ModelSpec(id=repo, family="kandinsky5", description=description, defaults=defaults, license=LICENSE,
                     license_url=f"https://huggingface.co/{repo}", download_gb=55.0 if pro else 21.5,
                     vram_gb=60.0 if pro else 24.0, has_fp16_variant=False, notes=_NOTES, aliases=aliases,
                     tasks=(task.lower(),))


CARD = FamilyCard(
    name="kandinsky5",
    ref="t2v.families.kandinsky5:Kandinsky5Family",
    description="Kandinsky 5.0 Video text- and image-to-video (Qwen2.5-VL + CLIP, 2B Lite / 19B Pro transformer, "
                "HunyuanVideo VAE)",
    pipelines=(PIPELINE, I2V_PIPELINE),
    kernels=DISPATCHED,  # diffusers' attention dispatcher, no mask
    modes=("video", "i2v"),
    defaults=dict(_LITE),
    tiny={"kandinsky5": "t2v.models.tiny.kandinsky5:make_kandinsky5",
          "kandinsky5-i2v": "t2v.models.tiny.kandinsky5:make_kandinsky5_i2v",
          "kandinsky5-nabla": "t2v.models.tiny.kandinsky5:make_kandinsky5_nabla"},
    order=56,
    models=(
        _spec("Lite-sft-5s", "Kandinsky 5.0 Video Lite (2B), the supervised fine-tune: 5 s at 768x512, 24 fps.",
              dict(_LITE), aliases=("kandinsky5", "kandinsky5-lite")),
        _spec("Lite-sft-10s", "Kandinsky 5.0 Video Lite (2B), 10 s clips (241 frames).", {**_LITE, "num_frames": 241},
              aliases=("kandinsky5-lite-10s",)),
        _spec("Lite-nocfg-5s", "Kandinsky 5.0 Video Lite with guidance distilled in: one pass per step (scale 1).",
              {**_LITE, "guidance_scale": 1.0, "negative_prompt": ""}, aliases=("kandinsky5-lite-nocfg",)),
        _spec("Lite-pretrain-5s", "Kandinsky 5.0 Video Lite, the pretrained base (for fine-tuning).", dict(_LITE)),
        _spec("Pro-sft-5s", "Kandinsky 5.0 Video Pro (19B): 5 s at 1024x768, 24 fps.",
              {**_LITE, "width": 1024, "height": 768}, pro=True, aliases=("kandinsky5-pro",)),
        _spec("Pro-sft-5s", "Kandinsky 5.0 Video Pro (19B) image-to-video: 5 s from --image at 768x512.", dict(_LITE),
              pro=True, aliases=("kandinsky5-i2v",), task="I2V"),
    ),
)
