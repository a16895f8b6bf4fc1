"""The video form's input blocks beyond the numbers: the first and last frames, and the LoRA adapters with the
few-step preset (Gradio components, built inside the caller's layout)."""

from __future__ import annotations

from typing import Any

from t2v import frontend as F


def frame_inputs(gr) -> tuple[Any, Any]:
    """The first frame (image-to-video) and the last frame (first-last-frame), side by side: uploaded files that
    Generate keeps as assets of the key."""
    with gr.Row():
        return tuple(gr.Image(label=label, type="filepath", image_mode=None, height=200,
                              sources=["upload", "clipboard"], elem_id=elem)
                     for label, elem in (("First frame (optional: image-to-video)", "t2v-image"),
                                         ("Last frame (optional: first-last-frame)", "t2v-last-image")))


def adapter_inputs(gr, form0: dict[str, Any]) -> tuple[Any, Any]:
    """Stacked LoRA adapters (one ``--lora`` line each: files under the server's model roots) and the few-step
    preset a distill needs, in an accordion closed by default."""
    with gr.Accordion("LoRAs", open=False, elem_id="t2v-adapters"):
        loras = gr.Textbox(value=form0["loras"], lines=2, label="LoRAs", elem_id="t2v-loras",
                           placeholder="/models/loras/style.safetensors:0.8",
                           info="one PATH[:SCALE[/SCALE_LOW]][@high|@low] a line, as --lora")
        few_step = gr.Dropdown(list(F.FEW_STEP_CHOICES), value=form0["preset"], elem_id="t2v-preset",
                               label="Few-step preset", info="auto: what a known distill LoRA needs")
    return loras, few_step
