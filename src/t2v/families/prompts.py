"""Prompt encoding the families share: the prompt's embeddings and, under classifier-free guidance, the negative
prompt's before them in one batch, kept in the prompt cache, with the text encoder resident while it runs."""

from __future__ import annotations

from typing import Any, Callable

from t2v.families.common import free_text_encoders
from t2v.sampling import promptcache
from t2v.sampling.offload import resident


def guided_embeddings(model, request, ctx, encode: Callable[[str, list[str]], Any], *, guided: bool, **key: Any):
    """``encode(prompt, warnings)`` of the request's prompt; with ``guided``, the negative prompt's (blank when
    unset) concatenated before it, as the stock pipelines batch them. The result is kept in the prompt cache under
    the prompts and ``key`` (whatever else changes it: a token limit); the text encoder is then freed under a
    plan that frees it."""
    import torch

    negative = request.negative_prompt or ""

    def texts():
        with resident(model.components["text_encoder"], model.plan.device, ctx.memory.offload):
            out = encode(request.prompt, ctx.warnings)
            return torch.cat([encode(negative, []), out]) if guided else out

    embeds = promptcache.encoded(model, ctx.warnings, texts, prompt=request.prompt,
                                 negative=negative if guided else None, **key)
    free_text_encoders(model, ctx.memory)
    return embeds
