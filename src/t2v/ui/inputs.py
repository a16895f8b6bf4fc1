"""The video form's input blocks: the first screenful (prompt, model, Generate, numbers, seed), the first and
last frames, the LoRA adapters with the few-step preset, and VACE control (Gradio components, built inside the
caller's layout)."""

from __future__ import annotations

from typing import Any

from t2v import frontend as F
import t2v.ui.handlers as H


def frame_inputs(gr, inputs: tuple[str, ...]) -> tuple[Any, Any]:
    """The first frame (image-to-video) and the last frame (first-last-frame), side by side: uploaded files that
    Generate keeps as assets of the key; each shown only when the model (its ``inputs``) takes it."""
    with gr.Row():
        return tuple(gr.Image(label=label, type="filepath", image_mode=None, height=200, visible=field in inputs,
                              sources=["upload", "clipboard"], elem_id=elem)
                     for label, elem, field in (("First frame (image-to-video)", "t2v-image", "image"),
                                                ("Last frame (first-last-frame)", "t2v-last-image", "last_image")))


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


def control_inputs(gr, form0: dict[str, Any], inputs: tuple[str, ...]) -> dict[str, Any]:
    """Control, in an accordion closed by default: the control video (VACE's control clip, or an LTX-2 IC-LoRA's
    reference) and, for VACE, its mask (uploaded clips: mp4, webm or gif), up to four reference images and the
    control strength; for Wan-Animate (the control video is its pose video) the face video, and for its replace mode
    the background video with the mask; and whether to fit the clips to the output. By field name: the files (kept
    as assets of the key at Generate) and the two form fields, the accordion (shown only when the model, its
    ``inputs``, takes a control clip) and ``vace``: the parts only a VACE model takes (shown when its ``inputs``
    have reference images)."""
    vace = "reference_images" in inputs
    with gr.Accordion("Control", open=False, visible="control_video" in inputs, elem_id="t2v-control") as box:
        with gr.Row():
            control_video = gr.File(label="Control video (pose, depth, edges)", file_types=[".mp4", ".webm", ".gif"],
                                    type="filepath", height=120, elem_id="t2v-control-video")
            mask_video = gr.File(label="Mask video (white: make, black: keep)", file_types=[".mp4", ".webm", ".gif"],
                                 type="filepath", height=120, elem_id="t2v-mask-video", visible="mask_video" in inputs)
        with gr.Row():  # Wan-Animate's: the driving face, and replace mode's scene (with the mask)
            face_video = gr.File(label="Face video (the driving face, cropped)", file_types=[".mp4", ".webm", ".gif"],
                                 type="filepath", height=120, elem_id="t2v-face-video", visible="face_video" in inputs)
            background_video = gr.File(label="Background video (replace mode)", file_types=[".mp4", ".webm", ".gif"],
                                       type="filepath", height=120, elem_id="t2v-background-video",
                                       visible="background_video" in inputs)
        with gr.Row(visible=vace) as ref_row:
            refs = [gr.Image(label=f"Reference {i + 1}", type="filepath", image_mode=None, height=120,
                             sources=["upload", "clipboard"], elem_id=f"t2v-reference-{i + 1}") for i in range(4)]
        with gr.Row():
            scale = gr.Slider(0, 4, value=form0["control_scale"], step=0.05, label="Control strength",
                              info="1: as trained", elem_id="t2v-control-scale", visible=vace)
            fit = gr.Checkbox(value=form0["fit"], label="Fit clips to the output",
                              info="scale, crop, cut or loop instead of refusing another size or length",
                              elem_id="t2v-fit")
    return {"control_video": control_video, "mask_video": mask_video, "face_video": face_video,
            "background_video": background_video, "references": refs, "control_scale": scale, "fit": fit, "box": box,
            "vace": [mask_video, ref_row, scale]}


def run_inputs(gr, service, form0: dict[str, Any], lim: dict[str, int]) -> dict[str, Any]:
    """The first screenful of the video form: prompt (the model's example as placeholder), model, Generate with
    Cancel, Pause and Resume, the presets, the main numbers and the seed; by name (request fields for the
    numbers and seed; "generate", "cancel", "pause", "resume", "fast", "quality" for the buttons)."""
    # what a run needs first, with Generate, in the first screenful; the rest folded below
    prompt = gr.Textbox(label="Prompt", lines=3, placeholder=H.prompt_example(service),
                        elem_id="t2v-prompt")
    model = gr.Dropdown(H.model_choices(service), value=form0["model"], label="Model", allow_custom_value=True,
                        elem_id="t2v-model")
    with gr.Row(elem_id="t2v-run-row"):
        generate_btn = gr.Button("Generate", variant="primary", scale=2, min_width=90, elem_id="t2v-generate")
        cancel_btn, pause_btn, resume_btn = (
            gr.Button(label, variant=kind, scale=1, min_width=70, elem_id=f"t2v-{label.lower()}", interactive=False)
            for label, kind in (("Cancel", "stop"), ("Pause", "secondary"), ("Resume", "secondary")))
    with gr.Row(elem_id="t2v-presets"):
        gr.Markdown("Presets:", elem_classes=["t2v-presets-label"])
        fast_btn = gr.Button("Fast preview", size="sm", elem_id="t2v-preset-fast")
        quality_btn = gr.Button("Quality", size="sm", elem_id="t2v-preset-quality")
    # numbers as typed: a value out of range is refused by name at Generate, never changed
    with gr.Row():
        frames = gr.Number(value=form0["num_frames"], precision=0, label="Frames",
                           info=f"server limit {lim['num_frames']}", elem_id="t2v-frames")
        steps = gr.Number(value=form0["num_inference_steps"], precision=0, label="Steps",
                          info=f"server limit {lim['num_inference_steps']}", elem_id="t2v-steps")
        guidance = gr.Number(value=form0["guidance_scale"], label="Guidance", elem_id="t2v-guidance")
    with gr.Row():
        width = gr.Number(value=form0["width"], precision=0, label="Width",
                          info=f"server limit {lim['width']}", elem_id="t2v-width")
        height = gr.Number(value=form0["height"], precision=0, label="Height",
                           info=f"server limit {lim['height']}", elem_id="t2v-height")
        fps = gr.Number(value=form0["fps"], label="FPS", elem_id="t2v-fps")
    with gr.Row():
        seed_mode = gr.Radio(list(H.SEED_MODES), value="random", label="Seed", elem_id="t2v-seed-mode")
        # a Textbox: Gradio's Number sends 0 for an empty box, and blank must mean random
        seed = gr.Textbox(value="", label="Seed value", placeholder="fixed: this number; blank: random",
                          elem_id="t2v-seed")
    return {"prompt": prompt, "model": model, "generate": generate_btn, "cancel": cancel_btn, "pause": pause_btn,
            "resume": resume_btn, "fast": fast_btn, "quality": quality_btn, "num_frames": frames,
            "num_inference_steps": steps, "guidance_scale": guidance, "width": width, "height": height, "fps": fps,
            "seed_mode": seed_mode, "seed": seed}


def clip_inputs(gr, inputs: tuple[str, ...]) -> dict[str, Any]:
    """A clip of the user's own (mp4, webm or gif, kept as an asset of the key at Generate) and what Generate does
    with it: video-to-video (repainted to Strength), extend (Seconds more, from Longer video) or post-processing
    only (the Post-processing steps); the uses offered follow the model's ``inputs``. In an accordion closed by
    default; by name: "clip", "use", "strength", "box"."""
    uses = F.clip_uses(inputs)
    with gr.Accordion("Your video (video-to-video, extend, post-process)", open=False,
                      elem_id="t2v-source") as box:
        with gr.Row():
            clip = gr.File(label=F.CLIP_LABELS["source_clip"], file_types=[".mp4", ".webm", ".gif"], type="filepath",
                           height=120, scale=3, elem_id="t2v-source-video")
            with gr.Column(scale=2):
                use = gr.Radio(list(uses), value=uses[0], label=F.CLIP_LABELS["clip_use"],
                               info=F.CLIP_HINTS[uses[0]], elem_id="t2v-source-use")
                # a Textbox: blank must mean the default strength
                strength = gr.Textbox(value="", label=F.CLIP_LABELS["strength"], placeholder="blank: the default",
                                      info="0-1: how much video-to-video repaints", elem_id="t2v-strength")
    return {"clip": clip, "use": use, "strength": strength, "box": box}
