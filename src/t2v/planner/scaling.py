"""The planner's estimates at any shape from its dry runs at a small reference shape (:func:`scaled`), and a
clip's dry run with the denoiser's numbers of one window (:func:`with_denoiser`): arithmetic on the dry-run
dictionaries :func:`t2v.planner.memory.predict` makes, no model built."""

from __future__ import annotations

from typing import Any

# The share of a reference's denoiser numbers that does not grow with the video's tokens (the text tokens its
# attention carries at every size) above which they are scaled as a polynomial in the tokens, not in proportion.
FIXED_SHARE = 0.5


def grown(one: float, two: float, four: float, factor: float) -> float:
    """A denoiser number of the reference (``one``; ``two`` and ``four`` at twice and four times its latent
    frames, so its video tokens) at ``factor`` times its video tokens. In proportion (slightly high: what most
    models' numbers do) unless a fixed part (the text tokens of a transformer whose reference has few video
    tokens) is most of it; then fixed + per token + per token pair (a dense attention mask over all tokens),
    fitted through the three dry runs."""
    square = max(four - 3 * two + 2 * one, 0) / 6
    slope = max(two - one - 3 * square, 0)
    fixed = one - slope - square
    if one <= 0 or fixed <= FIXED_SHARE * one:
        return one * factor
    return fixed + slope * factor + square * factor ** 2


def scaled(ref: dict[str, Any], frames: int, height: int, width: int, chunk: int, tiled: bool = False,
           window: int | None = None) -> dict[str, Any]:
    """A dry run's numbers at another shape. Every UNet tensor (attention runs as one fused op) grows with
    frames x height x width, every VAE tensor with frames per decode call x height x width; the text
    encoder's do not change. FLOPs are scaled the same way (attention's grow faster: a lower bound). A causal
    video VAE that decodes one latent frame at a time (``vae_scales_with: area``, Wan) peaks with the frame
    area only, and its decode FLOPs grow with frames x area. One that decodes the whole clip in one call
    (``vae_scales_with: clip``, LTX-Video) grows with the clip whatever the plan's chunk; decoded in spatial
    tiles (``tiled``, a plan the family tiles under, with ``vae_tile`` measured), with the frames only, plus
    the decoded clip the tiles are blended into. The denoiser's numbers grow with ``window`` frames, when it
    sees no more than those at once."""
    rf, rh, rw, rc = ref["shape"]
    if ref.get("vae_scales_with") == "clip":
        chunk = frames
    unet = frames * height * width / (rf * rh * rw)
    by_area = ref.get("vae_scales_with") == "area"
    vae = height * width / (rh * rw) if by_area else chunk * height * width / (rc * rh * rw)
    decode_flops = (ref["decode_flops"] * unet if by_area else ref["decode_flops"] / -(-rf // rc) * vae * -(-frames // chunk))
    # Operator calls grow with the decode calls (a causal VAE's with the latent frames), not with their size.
    calls = frames / rf if by_area else 1 if ref.get("vae_scales_with") == "clip" else -(-frames // chunk) / -(-rf // rc)
    decode_ops = ref.get("decode_ops", 0) * calls
    acts, more = ref["acts"], ref.get("more")
    tile = ref.get("vae_tile") if tiled else None
    if tile is not None and max(height, width) > tile["side"]:
        clip = 3 * frames * height * width * (2 if ref.get("half") else 4)  # in the VAE's dtype
        acts = {**acts, "vae": tile["acts"] * frames / rf + clip}
        vae = 1.0

    seen = min(frames, window or frames) * height * width / (rf * rh * rw)

    def denoiser(value: float, two: float | None, four: float | None) -> int:
        return int(value * seen if two is None or four is None else grown(value, two, four, seen))

    return {
        "params": ref["params"],
        "blocks": ref.get("blocks", {}),
        "roles": ref["roles"],
        "acts": {k: int(v * (1 if k == "text" else vae)) if k in ("text", "vae") else
                 denoiser(v, *(m["acts"].get(k) for m in more) if more else (None, None)) for k, v in acts.items()},
        "step_flops": denoiser(ref["step_flops"], *(m["step_flops"] for m in more) if more else (None, None)),
        "decode_flops": int(decode_flops),
        "step_ops": ref.get("step_ops", 0),
        "decode_ops": int(decode_ops),
        "latents_bytes": int(ref["latents_bytes"] * unet),
        "vae_scales_with": ref.get("vae_scales_with"),
        "shape": (frames, height, width, chunk),
    }


def with_denoiser(dry: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """The clip's dry run ``dry`` with the denoiser's numbers of a dry run at one window of it."""
    acts = {k: (v if k in ("text", "vae") else window["acts"][k]) for k, v in dry["acts"].items()}
    return {**dry, "acts": acts, **{k: window[k] for k in ("step_flops", "step_ops")}}
