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


def control_inputs(gr, form0: dict[str, Any]) -> dict[str, Any]:
    """VACE control (Wan VACE models), in an accordion closed by default: the control video and its mask
    (uploaded clips: mp4, webm or gif), up to four reference images, the control strength, and whether to fit
    the clips to the output. By field name: the files (kept as assets of the key at Generate) and the two form
    fields."""
    with gr.Accordion("Control (VACE)", open=False, elem_id="t2v-control"):
        with gr.Row():
            control_video, mask_video = (
                gr.File(label=label, file_types=[".mp4", ".webm", ".gif"], type="filepath", height=120, elem_id=elem)
                for label, elem in (("Control video (pose, depth, edges)", "t2v-control-video"),
                                    ("Mask video (white: make, black: keep)", "t2v-mask-video")))
        with gr.Row():
            refs = [gr.Image(label=f"Reference {i + 1}", type="filepath", image_mode=None, height=120,
                             sources=["upload", "clipboard"], elem_id=f"t2v-reference-{i + 1}") for i in range(4)]
        with gr.Row():
            scale = gr.Slider(0, 4, value=form0["control_scale"], step=0.05, label="Control strength",
                              info="1: as trained", elem_id="t2v-control-scale")
            fit = gr.Checkbox(value=form0["fit"], label="Fit clips to the output",
                              info="scale, crop, cut or loop instead of refusing another size or length",
                              elem_id="t2v-fit")
    return {"control_video": control_video, "mask_video": mask_video, "references": refs, "control_scale": scale,
            "fit": fit}
