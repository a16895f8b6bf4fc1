"""CLIP prompt encoding, shared by the UNet families (ModelScope video, Stable Diffusion images)."""

from __future__ import annotations

from t2v.models.precision import compute_dtype


def encode_prompt(model, prompt: str, warnings: list[str]):
    """Text embeddings for ``prompt``; a prompt over the token limit is truncated with a warning."""
    import torch

    tok, encoder = model.components["tokenizer"], model.components["text_encoder"]
    ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
    full = tok(prompt, padding="longest", return_tensors="pt").input_ids
    if full.shape[-1] > ids.shape[-1]:
        dropped = tok.batch_decode(full[:, tok.model_max_length - 1 : -1])[0]
        warnings.append(f"prompt truncated to {tok.model_max_length} tokens; dropped: {dropped!r}")
    with torch.inference_mode():
        emb = encoder(ids.to(model.plan.device))[0]
    return emb.to(compute_dtype(encoder))
