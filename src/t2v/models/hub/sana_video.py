"""The card of SANA-Video: what t2v knows of the family without importing its code (:mod:`t2v.families.sana_video`).

NVIDIA's SANA-Video is a 2B diffusion transformer with linear attention (its cost grows linearly with the clip's
tokens), reading the prompt through Gemma 2 2B behind a prompt-enhancing instruction. The 480p model decodes with
Wan 2.1's VAE (8x spatial, 4x temporal), the 720p model with LTX-2's (32x spatial, 8x temporal). One folder makes
text-to-video and, given ``--image``, image-to-video (``SanaImageToVideoPipeline`` on the same weights). Defaults
are the models': 832x480 (720p: 1280x704), 81 frames at 16 fps, 50 steps, guidance 6, no negative prompt.
Licence: the NVIDIA Open Model License (commercial use allowed under its terms).
"""

from __future__ import annotations

from t2v.models.spec import DISPATCHED_MASKED, FamilyCard, ModelSpec

PIPELINE, I2V_PIPELINE = "SanaVideoPipeline", "SanaImageToVideoPipeline"
LICENSE = "NVIDIA Open Model License"
LICENSE_URL = "https://www.nvidia.com/en-us/agreements/enterprise-software/nvidia-open-model-license/"
_DEFAULTS = {"width": 832, "height": 480, "num_frames": 81, "fps": 16, "guidance_scale": 6.0, "num_inference_steps": 50,
             "scheduler": "model", "negative_prompt": ""}
_NOTES = ("Sizes approximate (the 2B transformer and Gemma 2 2B in bf16; GPU memory without offload). t2v makes the "
          "size asked, without the stock call's snapping to its table of sizes: the trained sizes are 832x480 and "
          "480x832 (480p), 1280x704 and 704x1280 (720p).")


def _spec(res: str, description: str, defaults: dict, aliases: tuple[str, ...]) -> ModelSpec:
    repo = f"Efficient-Large-Model/SANA-Video_2B_{res}_diffusers"
    return ModelSpec(id=repo, family="sana-video", description=description, defaults=defaults, license=LICENSE,
                     license_url=LICENSE_URL, download_gb=12.0 if res == "480p" else 13.5,
                     vram_gb=14.0 if res == "480p" else 20.0, has_fp16_variant=False, notes=_NOTES, aliases=aliases,
                     tasks=("t2v", "i2v"))


CARD = FamilyCard(
    name="sana-video",
    ref="t2v.families.sana_video:SanaVideoFamily",
    description="SANA-Video text- and image-to-video (Gemma 2 + a 2B linear-attention transformer, Wan 2.1 or LTX-2 "
                "VAE)",
    pipelines=(PIPELINE, I2V_PIPELINE),
    kernels=DISPATCHED_MASKED,  # diffusers' attention dispatcher, with the text mask
    modes=("video", "i2v"),
    defaults=dict(_DEFAULTS),
    tiny={"sana-video": "t2v.models.tiny.sana_video:make_sana_video",
          "sana-video-720p": "t2v.models.tiny.sana_video:make_sana_video_720p"},
    order=25,
    models=(
        _spec("480p", "SANA-Video 2B: 5 s at 832x480, 16 fps; linear attention, Wan 2.1's VAE; --image for I2V.",
              dict(_DEFAULTS), ("sana-video", "sana-video-480p")),
        _spec("720p", "SANA-Video 2B at 1280x704 (LTX-2's VAE, 32x smaller latents); --image for I2V.",
              {**_DEFAULTS, "width": 1280, "height": 704}, ("sana-video-720p",)),
    ),
)
