"""The desktop app's generation form: ttk widgets bound to the fields of :mod:`t2v.frontend.forms`, with each
model's limits applied to the spin boxes, and each file box (first and last frame, control clips, references)
enabled only for the models that take it (their ``rules.inputs``)."""

from __future__ import annotations

import tkinter as tk
from pathlib import Path
from tkinter import filedialog, ttk
from typing import Any, Callable

from t2v import frontend as F
from t2v.desktop.clip import CLIP_TYPES, ClipInput
from t2v.desktop.picker import ModelPicker
from t2v.requests import FILE_FIELDS, FORMATS, SCHEDULERS

NUMBERS = (("num_frames", "Frames"), ("num_inference_steps", "Steps"), ("guidance_scale", "Guidance"), ("fps", "FPS"),
           ("width", "Width"), ("height", "Height"))
FORMAT_CHOICES = tuple(f for f in ("mp4", "webm", "gif", "png") if f in FORMATS)
IMAGE_TYPES = (("Images", "*.png *.jpg *.jpeg *.webp *.bmp"), ("All files", "*"))
IMAGE_KEYS = ("image", "last_image")  # the first and the last frame, each with its Browse… button
CLIP_KEYS = F.VIDEO_FILE_KEYS  # VACE's and Wan-Animate's clips, each with its Browse… button
SHORT = {"background_video": "Background"}  # labels the form's narrow first column shortens


class Form(ttk.Frame):
    """Prompt, negative prompt, model (with its limits), numbers, scheduler, seed mode, formats, post-processing
    (interpolation, upscaling, deflicker), longer video (seconds, overlap, continue strength, prompt schedule),
    LoRAs and the few-step preset, the first and last frames, the user's own video and its use, and control (VACE's
    control and mask clips, reference images one a line and control strength; Wan-Animate's face and background
    clips; fit)."""

    def __init__(self, master, *, on_model: Callable[[str], None], on_preset: Callable[[str], None]) -> None:
        super().__init__(master, padding=8)
        self.models: dict[str, Any] = {}  # id -> t2v.contract.Model, in the menu's order
        self.limits = F.FormLimits()
        self.inputs: tuple[str, ...] = ()  # the file fields the chosen model takes (all: a model not listed)
        self.columnconfigure(1, weight=1)
        row = 0
        ttk.Label(self, text="Prompt").grid(row=row, column=0, sticky="nw", pady=2)
        self.prompt = tk.Text(self, height=4, width=44, wrap="word", undo=True)
        self.prompt.grid(row=row, column=1, columnspan=3, sticky="ew", pady=2)
        row += 1
        self.vars: dict[str, tk.StringVar] = {}
        self.negative = self.entry(row, "negative_prompt", "Negative prompt")
        row += 1
        ttk.Label(self, text="Model").grid(row=row, column=0, sticky="w", pady=2)
        self.picker = ModelPicker(self, row, on_model)  # labels shown, the id in vars["model"]; a note under it
        self.vars["model"], self.model = self.picker.var, self.picker.box
        row += 2
        self.limits_note = ttk.Label(self, text="", foreground="#6b7280", wraplength=380)
        self.limits_note.grid(row=row, column=1, columnspan=3, sticky="w")
        row += 1
        presets = ttk.Frame(self)
        presets.grid(row=row, column=1, columnspan=3, sticky="w", pady=2)
        for name in F.PRESETS:
            ttk.Button(presets, text=name, command=lambda n=name: on_preset(n)).pack(side="left", padx=(0, 6))
        row += 1
        self.spins: dict[str, ttk.Spinbox] = {}
        for i, (key, label) in enumerate(NUMBERS):
            r, c = row + i // 2, (i % 2) * 2
            ttk.Label(self, text=label).grid(row=r, column=c, sticky="w", pady=2, padx=(0 if c == 0 else 8, 4))
            self.vars[key] = tk.StringVar()
            increment = 0.5 if key in ("guidance_scale",) else 1
            spin = ttk.Spinbox(self, textvariable=self.vars[key], from_=0, to=10_000, increment=increment, width=8)
            spin.grid(row=r, column=c + 1, sticky="w", pady=2)
            self.spins[key] = spin
        row += (len(NUMBERS) + 1) // 2
        ttk.Label(self, text="Scheduler").grid(row=row, column=0, sticky="w", pady=2)
        self.vars["scheduler"] = tk.StringVar()
        self.scheduler = ttk.Combobox(self, textvariable=self.vars["scheduler"], values=SCHEDULERS, state="readonly",
                                      width=14)
        self.scheduler.grid(row=row, column=1, sticky="w", pady=2)
        row += 1
        ttk.Label(self, text="Seed").grid(row=row, column=0, sticky="w", pady=2)
        seed = ttk.Frame(self)
        seed.grid(row=row, column=1, columnspan=3, sticky="w")
        self.vars["seed_mode"] = tk.StringVar(value="random")
        self.seed_mode = ttk.Combobox(seed, textvariable=self.vars["seed_mode"], values=F.SEED_MODES,
                                      state="readonly", width=11)
        self.seed_mode.pack(side="left")
        self.vars["seed"] = tk.StringVar()
        self.seed = ttk.Entry(seed, textvariable=self.vars["seed"], width=14)
        self.seed.pack(side="left", padx=6)
        row += 1
        ttk.Label(self, text="Formats").grid(row=row, column=0, sticky="w", pady=2)
        formats = ttk.Frame(self)
        formats.grid(row=row, column=1, columnspan=3, sticky="w")
        self.formats = {f: tk.BooleanVar(value=f in F.DEFAULT_FORMATS) for f in FORMAT_CHOICES}
        for f, var in self.formats.items():
            ttk.Checkbutton(formats, text=f, variable=var).pack(side="left", padx=(0, 6))
        row += 1
        # after sampling, in this order: deflicker, frame interpolation, upscaling (the request's ``post`` block),
        # laid out like the numbers: Interpolation | its method, Upscale | Upscaler, then Deflicker
        self.post: dict[str, ttk.Combobox] = {}  # interpolate, interpolation (the method), upscale, upscaler
        for i, (key, choices, width) in enumerate((("interpolate", F.INTERPOLATE_CHOICES, 8),
                                                   ("interpolation", F.INTERPOLATION_CHOICES, 12),
                                                   ("upscale", F.UPSCALE_CHOICES, 8),
                                                   ("upscaler", F.UPSCALER_CHOICES, 16))):
            r, c = row + i // 2, (i % 2) * 2
            label = "Method" if key == "interpolation" else F.LABELS[key]  # short: the player keeps its width
            ttk.Label(self, text=label).grid(row=r, column=c, sticky="w", pady=2, padx=(0 if c == 0 else 8, 4))
            self.vars[key] = tk.StringVar(value=F.POST_DEFAULTS[key])
            self.post[key] = ttk.Combobox(self, textvariable=self.vars[key], values=choices, state="readonly",
                                          width=width)
            self.post[key].grid(row=r, column=c + 1, sticky="w", pady=2)
        self.deflicker = tk.BooleanVar(value=False)
        self.deflicker_box = ttk.Checkbutton(self, text=F.LABELS["deflicker"], variable=self.deflicker)
        self.deflicker_box.grid(row=row + 2, column=0, columnspan=2, sticky="w", pady=2)
        row += 3
        # longer videos (segments of Frames, each continuing the one before): Seconds | Overlap, Cont. str., then
        # the prompt schedule, one "FRAME: prompt" a line; blank: one clip, the defaults. Short labels: the player
        # keeps its width.
        for i, (key, label) in enumerate((("seconds", "Seconds"), ("overlap", "Overlap"),
                                          ("continue_strength", "Cont. str."))):
            r, c = row + i // 2, (i % 2) * 2
            ttk.Label(self, text=label).grid(row=r, column=c, sticky="w", pady=2, padx=(0 if c == 0 else 8, 4))
            self.vars[key] = tk.StringVar()
            ttk.Entry(self, textvariable=self.vars[key], width=8).grid(row=r, column=c + 1, sticky="w", pady=2)
        row += 2
        ttk.Label(self, text="Schedule").grid(row=row, column=0, sticky="nw", pady=2)
        self.schedule = tk.Text(self, height=2, width=30, wrap="none", undo=True)
        self.schedule.grid(row=row, column=1, columnspan=3, sticky="ew", pady=2)
        row += 1
        # stacked LoRA adapters, one "PATH[:SCALE[/SCALE_LOW]][@high|@low]" a line (as --lora), and the few-step
        # preset a distill needs (auto: what a known one implies)
        ttk.Label(self, text=F.LABELS["loras"]).grid(row=row, column=0, sticky="nw", pady=2)
        self.loras = tk.Text(self, height=2, width=30, wrap="none", undo=True)
        self.loras.grid(row=row, column=1, columnspan=3, sticky="ew", pady=2)
        row += 1
        ttk.Label(self, text="Few-step").grid(row=row, column=0, sticky="w", pady=2)
        self.vars["preset"] = tk.StringVar(value=F.ADAPTER_DEFAULTS["preset"])
        ttk.Combobox(self, textvariable=self.vars["preset"], values=F.FEW_STEP_CHOICES, state="readonly",
                     width=16).grid(row=row, column=1, sticky="w", pady=2)
        row += 1
        # image-to-video: the first frame; first-last-frame: the last one too (the models that take one)
        self.pickers: dict[str, tuple[ttk.Entry, ttk.Button]] = {}
        for key in IMAGE_KEYS:
            ttk.Label(self, text=F.LABELS[key]).grid(row=row, column=0, sticky="w", pady=2)
            self.vars[key] = tk.StringVar()
            entry = ttk.Entry(self, textvariable=self.vars[key])
            entry.grid(row=row, column=1, columnspan=2, sticky="ew", pady=2)
            browse = ttk.Button(self, text="Browse…", command=lambda k=key: self.pick_image(k))
            browse.grid(row=row, column=3, sticky="w", padx=(4, 0))
            self.pickers[key] = (entry, browse)
            row += 1
        self.image, self.browse = self.pickers["image"]
        # the user's own clip: video-to-video, extend or post-processing only
        self.clip = ClipInput(self, row)
        row += ClipInput.ROWS
        # control (the Wan VACE and Wan-Animate models): the clips, the reference images one a line, strength and fit
        for key in CLIP_KEYS:  # (short labels: the column is as wide as its widest)
            ttk.Label(self, text=SHORT.get(key, F.LABELS[key])).grid(row=row, column=0, sticky="w", pady=2)
            self.vars[key] = tk.StringVar()
            entry = ttk.Entry(self, textvariable=self.vars[key])
            entry.grid(row=row, column=1, columnspan=2, sticky="ew", pady=2)
            browse = ttk.Button(self, text="Browse…", command=lambda k=key: self.pick_file(k, CLIP_TYPES))
            browse.grid(row=row, column=3, sticky="w", padx=(4, 0))
            self.pickers[key] = (entry, browse)
            row += 1
        ttk.Label(self, text="References").grid(row=row, column=0, sticky="nw", pady=2)
        self.references = tk.Text(self, height=2, width=30, wrap="none", undo=True)
        self.references.grid(row=row, column=1, columnspan=2, sticky="ew", pady=2)
        add = ttk.Button(self, text="Add…", command=self.add_references)
        add.grid(row=row, column=3, sticky="nw", padx=(4, 0))
        self.pickers["reference_images"] = (self.references, add)
        row += 1
        ttk.Label(self, text="Control str.").grid(row=row, column=0, sticky="w", pady=2)
        self.vars["control_scale"] = tk.StringVar(value=f"{F.CONTROL_DEFAULTS['control_scale']:g}")
        ttk.Entry(self, textvariable=self.vars["control_scale"], width=8).grid(row=row, column=1, sticky="w", pady=2)
        self.fit = tk.BooleanVar(value=False)
        ttk.Checkbutton(self, text=F.LABELS["fit"], variable=self.fit).grid(row=row, column=2, columnspan=2, sticky="w")

    def entry(self, row: int, key: str, label: str) -> ttk.Entry:
        ttk.Label(self, text=label).grid(row=row, column=0, sticky="w", pady=2)
        self.vars[key] = tk.StringVar()
        widget = ttk.Entry(self, textvariable=self.vars[key])
        widget.grid(row=row, column=1, columnspan=3, sticky="ew", pady=2)
        return widget

    # -- models and limits -------------------------------------------------------------------------
    def set_models(self, model_list) -> None:
        self.models = self.picker.load(model_list)
        self.server_limits = model_list.limits

    def apply_model(self, model_id: str) -> F.FormLimits:
        """Select ``model_id``: its limits go to the spin boxes and the note (with a sentence on a model that is not
        on the server); the file boxes and the clip's uses follow its inputs."""
        model = self.models.get(model_id)
        self.picker.select(model_id)
        self.limits = lim = F.FormLimits.of(model, getattr(self, "server_limits", None))
        self.inputs = lim.inputs if model is not None else FILE_FIELDS  # not listed: the server decides
        caps = {"num_frames": (1, lim.max_frames, lim.frame_step), "num_inference_steps": (1, lim.max_steps, 1),
                "width": (lim.size_multiple, lim.max_side, lim.size_multiple),
                "height": (lim.size_multiple, lim.max_side, lim.size_multiple)}
        for key, (low, high, step) in caps.items():
            self.spins[key].configure(from_=low, to=high, increment=step)
        frames = f"{lim.frame_step}k+1 frames" if lim.frame_step > 1 else "frames"
        note = (f"{frames} up to {lim.max_frames} · sides a multiple of {lim.size_multiple} up to {lim.max_side} · "
                f"up to {lim.max_steps} steps · image-to-video: {'yes' if lim.image else 'no'}")
        self.limits_note.configure(text=note)
        schedulers = lim.schedulers or SCHEDULERS
        self.scheduler.configure(values=schedulers)
        for key, widgets in self.pickers.items():
            takes = key in self.inputs
            if not takes:
                self.clear_file(key)
            for widget in widgets:
                widget.configure(state="normal" if takes else "disabled")
        self.clip.set_inputs(self.inputs)
        return lim

    def clear_file(self, key: str) -> None:
        if key == "reference_images":
            self.references.configure(state="normal")
            self.references.delete("1.0", "end")
        else:
            self.vars[key].set("")

    def defaults_of(self, model_id: str) -> dict[str, Any]:
        model = self.models.get(model_id)
        return dict(model.defaults) if model is not None else {}

    # -- values ------------------------------------------------------------------------------------
    def fill(self, values: dict[str, Any]) -> None:
        """Set the fields named in ``values`` (a preset, a default form or a remix)."""
        if "prompt" in values:
            self.prompt.delete("1.0", "end")
            self.prompt.insert("1.0", values["prompt"] or "")
        for key, value in values.items():
            if key in self.vars and key != "model":
                self.vars[key].set("" if value is None else (f"{value:g}" if isinstance(value, float) else str(value)))
        if "formats" in values:
            for f, var in self.formats.items():
                var.set(f in (values["formats"] or ()))
        if "deflicker" in values:
            self.deflicker.set(bool(values["deflicker"]))
        if "fit" in values:
            self.fit.set(bool(values["fit"]))
        for key, box in (("prompt_schedule", self.schedule), ("loras", self.loras)):
            if key in values:
                box.delete("1.0", "end")
                box.insert("1.0", values[key] or "")

    def values(self) -> dict[str, Any]:
        """The form as :func:`t2v.frontend.request_fields` reads it."""
        out: dict[str, Any] = {key: var.get() for key, var in self.vars.items() if key not in (*IMAGE_KEYS, *CLIP_KEYS)}
        out["prompt"] = self.prompt.get("1.0", "end").strip()
        out["formats"] = [f for f, var in self.formats.items() if var.get()]
        out["deflicker"] = self.deflicker.get()
        out["prompt_schedule"] = self.schedule.get("1.0", "end").strip()
        out["loras"] = self.loras.get("1.0", "end").strip()
        out["fit"] = self.fit.get()
        return out

    def control_files(self) -> dict[str, Any]:
        """The VACE files chosen, by request field (a path, or for ``reference_images`` a list of them); FormError
        naming the field when one is not a readable file."""
        def checked(key: str, text: str) -> Path:
            path = Path(text).expanduser()
            if not path.is_file():
                raise F.FormError(f"{F.LABELS[key]}: {text} is not a file; choose one with Browse…", field=key)
            return path

        out: dict[str, Any] = {k: checked(k, self.vars[k].get().strip()) for k in CLIP_KEYS if self.vars[k].get().strip()}
        refs = [checked("reference_images", line) for line in F.schedule_lines(self.references.get("1.0", "end"))]
        if refs:
            out["reference_images"] = refs
        return out

    def image_path(self, key: str = "image") -> Path | None:
        """The first (``key`` "image") or last frame chosen (None: none); FormError when it is not a readable file."""
        text = self.vars[key].get().strip()
        if not text or key not in self.inputs:
            return None
        path = Path(text).expanduser()
        if not path.is_file():
            raise F.FormError(f"{F.LABELS[key]}: {text} is not a file; choose an image with Browse…", field=key)
        return path

    def pick_image(self, key: str = "image") -> None:
        self.pick_file(key, IMAGE_TYPES)

    def pick_file(self, key: str, types) -> None:
        name = filedialog.askopenfilename(parent=self, title=F.LABELS[key], filetypes=types)
        if name:
            self.vars[key].set(name)

    def add_references(self) -> None:
        for name in filedialog.askopenfilenames(parent=self, title=F.LABELS["reference_images"], filetypes=IMAGE_TYPES):
            self.references.insert("end", ("" if not self.references.get("1.0", "end").strip() else "\n") + name)
