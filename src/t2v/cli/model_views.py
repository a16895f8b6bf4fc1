"""How ``t2v models list`` and ``t2v models show`` draw the registry for a person: ids never cut at any width (a
table where the terminal is wide enough, else one model per paragraph), the default models marked, and each
model's own defaults (frames and fps only for models that make video)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

TASK_WORDS = {"t2v": "text-to-video", "i2v": "image-to-video (--image)", "image": "images (t2v image, t2v sequence)"}
TASK_OF_MODE = {"video": "t2v", "i2v": "i2v", "image": "image"}  # a family's request modes -> what it makes
GAP = 3  # a table's columns are separated by one blank border cell and two padding cells


def makes_video(tasks) -> bool:
    return "t2v" in tasks or "i2v" in tasks


def defaults_text(defaults: dict[str, Any], tasks) -> str:
    """A model's own defaults in words: size, frames, fps and steps for a video model; size and steps for an
    image model (a sequence takes its frames and fps from the request)."""
    size = f"{defaults.get('width', '?')}x{defaults.get('height', '?')}"
    steps = f"{defaults.get('num_inference_steps', '?')} steps"
    if not makes_video(tasks):
        return f"{size}, {steps}"
    fps = defaults.get("fps")
    return f"{size}, {defaults.get('num_frames', '?')} frames, {fps if fps is None else format(fps, 'g')} fps, {steps}"


def short_license(row: dict[str, Any]) -> str:
    return row["license"].split(" (")[0] + (" (!)" if row.get("license_notice") else "")


@dataclass
class Column:
    header: str
    cells: list[str]
    wrap: bool = False  # may wrap at spaces (else kept on one line, whole)

    def natural(self) -> int:
        """Its width with every cell on one line."""
        return max((len(t) for t in (self.header, *self.cells)), default=1)

    def need(self) -> int:
        """The narrowest this column can be without cutting a word (a cell that does not wrap: whole)."""
        if self.wrap:
            return max((len(word) for t in (self.header, *self.cells) for word in t.split()), default=1)
        return self.natural()


def table_width(columns: list[Column], *, natural: bool = False) -> int:
    return sum(c.natural() if natural else c.need() for c in columns) + GAP * (len(columns) - 1)


def list_columns(rows: list[dict[str, Any]], width: int) -> list[Column] | None:
    """The table's columns that fit ``width`` (licence, then aliases, left out first); None when even the
    essential ones (mark, id, makes, defaults, GPU memory, download, cached) do not fit whole."""
    essential = [
        Column("", ["*" if r["default"] else "" for r in rows]),
        Column("id", [r["id"] for r in rows]),
        Column("makes", [" ".join(r["tasks"]) for r in rows]),
        Column("defaults", [defaults_text(r["defaults"], r["tasks"]) for r in rows]),
        Column("GPU memory", [f"~{r['vram_gb']:g} GB" for r in rows]),
        Column("download", ["bundled" if r["bundled"] else f"{r['download_gb']:g} GB" for r in rows]),
        Column("cached", ["yes" if r["cached"] else "no" for r in rows]),
    ]
    if table_width(essential) > width:
        return None
    columns = essential
    for optional in (Column("license", [short_license(r) for r in rows], wrap=True),
                     Column("aliases", [", ".join(r["aliases"]) for r in rows], wrap=True)):
        if table_width([*columns, optional]) <= width:
            columns = [*columns, optional]
    return columns


def print_model_list(console: Console, rows: list[dict[str, Any]], families: dict[str, Any],
                     defaults: dict[str, str]) -> None:
    """The registry rows (``models list --json``'s, with ``default`` set) by family, then what the marks mean."""
    columns = list_columns(rows, console.width)
    # every family's table with the same column widths, so that they line up (a wrapping column: where all fit)
    unwrapped = columns is not None and table_width(columns, natural=True) <= console.width
    for name in dict.fromkeys(r["family"] for r in rows):
        fam = families.get(name)
        title = f"{name}: {fam.description}" if fam else name
        mine = [i for i, r in enumerate(rows) if r["family"] == name]
        if columns is None:
            print_paragraphs(console, title, [rows[i] for i in mine])
        else:
            table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                          show_edge=False, pad_edge=False)
            for c in columns:
                table.add_column(c.header, no_wrap=not c.wrap, overflow="fold",
                                 width=c.natural() if unwrapped or not c.wrap else None)
            for i in mine:
                table.add_row(*(Text(c.cells[i]) for c in columns))
            console.print(table)
    notes = ["makes: t2v text-to-video, i2v image-to-video (--image), image text-to-image (t2v image, t2v sequence)"]
    notes.append(f"* the default: {defaults['video']} for t2v generate ({defaults['video_setting']}); "
                 f"{defaults['image']} for t2v image and t2v sequence (T2V_DEFAULT_IMAGE_MODEL)")
    left_out = [] if columns is None else [h for h in ("license", "aliases") if h not in {c.header for c in columns}]
    if left_out:
        notes.append(f"{' and '.join(left_out)} left out to fit {console.width} columns: a wider terminal shows "
                     "them, as do t2v models show ID and t2v models list --json")
    if columns is None or any(c.header == "license" for c in columns):
        if any(r["license_notice"] for r in rows):
            notes.append("(!) read the licence notice before downloading: t2v models show ID")
    notes.append("GPU memory: about the peak at the defaults in fp16/bf16, no offload (t2v plan predicts it for "
                  "this machine). Everything about one model: t2v models show ID. Any local folder in the diffusers "
                  "layout works too: --model PATH")
    for note in notes:
        console.print(Text(note), highlight=False)


def print_paragraphs(console: Console, title: str, rows: list[dict[str, Any]]) -> None:
    """One family's models for a narrow terminal: each id on its own line, whole, its details wrapped below."""
    console.print(Text(title, style="bold"))
    for r in rows:
        console.print(Text(("* " if r["default"] else "  ") + r["id"]), soft_wrap=True)
        lines = [(" ".join(r["tasks"]), defaults_text(r["defaults"], r["tasks"])),
                 (f"GPU ~{r['vram_gb']:g} GB", "bundled" if r["bundled"] else f"download {r['download_gb']:g} GB",
                  "cached" if r["cached"] else "not cached"),
                 (f"license {short_license(r)}", *(["aliases: " + ", ".join(r["aliases"])] if r["aliases"] else []))]
        console.print(Padding(Group(*(Text(" · ".join(line)) for line in lines)), (0, 0, 0, 4), expand=False))
    console.print()


def print_model(console: Console, info: dict[str, Any], *, family: Any, rules: Any, limits: dict[str, int],
                flags: dict[str, str], on_disk: bool) -> None:
    """One model (``models show --json``'s record) in words: what it makes, its defaults and limits, memory,
    where it comes from, what it supports, and its family's own settings (``flags``: option -> help). The
    ``rules`` are the model's own when it is ``on_disk``, else its family's."""
    made = {TASK_OF_MODE.get(m, m) for m in getattr(rules, "modes", ("video",))}
    tasks = info.get("tasks") or [t for t in TASK_WORDS if t in made]
    video = makes_video(tasks)
    rows: list[tuple[str, str]] = [("family", f"{info['family']}" + (f": {family.description}" if family else ""))]
    rows.append(("makes", ", ".join(TASK_WORDS.get(t, t) for t in tasks)))
    d = dict(info.get("defaults") or {})
    shown = [defaults_text(d, tasks)]
    if d.get("guidance_scale") is not None:
        shown.append(f"guidance {d['guidance_scale']:g}")
    if d.get("scheduler"):
        shown.append(f"scheduler {d['scheduler']}")
    known = {"width", "height", "num_frames", "fps", "num_inference_steps", "guidance_scale", "scheduler",
             "negative_prompt"}
    shown += [f"{k} {v}" for k, v in d.items() if k not in known and v is not None]
    rows.append(("defaults", ", ".join(shown)))
    if d.get("negative_prompt"):
        rows.append(("negative prompt", d["negative_prompt"]))
    rows.append(("limits", limits_text(rules, limits, video=video, frames=d.get("num_frames"), on_disk=on_disk)))
    plan = f"t2v plan --model {info['id']} predicts the peak on this machine"
    if info.get("vram_gb") is not None:
        rows.append(("GPU memory", f"about {info['vram_gb']:g} GB at the defaults (fp16/bf16, no offload); {plan}"))
    else:
        rows.append(("memory", plan))
    if info.get("weight_files"):
        rows.append(("weight files", "--transformer FILE: the file's size; GPU memory at the defaults in bf16 "
                                     "with everything on the GPU / with --memory low (blocks streamed)"))
        rows += [(f"  {c['format']} {c['ext']}", f"{c['file_bytes'] / 1e9:.2f} GB; {c['speed_bytes'] / 2**30:.1f} / "
                                                 f"{c['low_bytes'] / 2**30:.1f} GiB") for c in info["weight_files"]]
    if info.get("bundled"):
        rows.append(("source", "ships with t2v (no download)"))
    elif "download_gb" in info:
        variant = "fp16 variant (full precision with --fp32 on pull)" if info.get("fp16_variant") else \
            "no fp16 variant (the full-precision files)"
        rows.append(("hub", f"{info['id']} at revision {info.get('revision', 'main')}; {variant}; "
                            f"download {info['download_gb']:g} GB"))
    elif "pipeline" in info:
        rows.append(("folder", f"pipeline {info['pipeline']}; fp16 variant files: "
                               f"{'yes' if info.get('fp16_variant') else 'no'}"))
    if "cached" in info:
        rows.append(("cached", "yes" if info["cached"] else f"no: t2v models pull {info['id']}"))
    if info.get("license"):
        rows.append(("license", " ".join(filter(None, (info["license"], info.get("license_url"))))))
    if info.get("license_notice"):
        rows.append(("licence notice", info["license_notice"]))
    if info.get("base_model"):
        rows.append(("animates", f"{info['base_model']} (the Stable Diffusion 1.5 model, unless --model names "
                                 "another)"))
    rows.append(("supports", supports_text(family, tasks)))
    if flags:
        rows.append(("family settings", "options of t2v generate for this family:"))
        rows += [(f"  {flag}", help_text) for flag, help_text in flags.items()]
    if info.get("aliases"):
        rows.append(("aliases", ", ".join(info["aliases"])))
    if info.get("notes"):
        rows.append(("notes", info["notes"]))

    console.print(Text(info["id"], style="bold"), soft_wrap=True)
    if info.get("description"):
        console.print(Text(info["description"]))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(Text(key), Text(value))
    console.print(grid)


def limits_text(rules: Any, limits: dict[str, int], *, video: bool, frames: int | None = None,
                on_disk: bool = True) -> str:
    """The model's rules (sizes, frame counts, schedulers; its family's where it is not ``on_disk``) and t2v's
    own limits, in words."""
    parts = []
    if rules is not None:
        parts.append(f"width and height multiples of {rules.size_multiple}")
        if video and rules.frame_step > 1:
            step = rules.frame_step
            example = frames if isinstance(frames, int) and (frames - 1) % step == 0 else step * 4 + 1
            parts.append(f"frames {step}k+1 (e.g. {example})")
        if video and rules.max_frames:
            parts.append(f"at most {rules.max_frames} frames")
        if rules.schedulers:
            parts.append(f"schedulers: {', '.join(rules.schedulers)}")
        if not on_disk:
            parts[-1] += " (its family's rules: once downloaded, the model's own config decides)"
    sides = f"t2v's own: sides {limits['max_side']} px at most, {limits['max_steps']} steps"
    parts.append(sides + (f", {limits['max_frames']} frames" if video else ""))
    return "; ".join(parts)


def supports_text(family: Any, tasks) -> str:
    """What a model can be asked for besides text-to-video, each with its flag."""
    if not makes_video(tasks):
        return "text-to-image (t2v image) and keyframe sequences (t2v sequence); no video options (--image, --lora)"
    from t2v.extend.plan import continuation_kind  # deferred: imports numpy

    encodes = bool(getattr(family, "encodes_video", False))
    # this model's modes, not its family's (a text-to-video Wan continues a clip video-to-video)
    modes = tuple({"t2v": "video", "i2v": "i2v"}[t] for t in tasks if t in ("t2v", "i2v"))
    caches = tuple(getattr(family, "caches", ()))
    items = [("image-to-video (--image)", "i2v" in tasks),
             ("video-to-video (--video)", encodes and "t2v" in tasks),
             ("longer videos (--seconds, t2v extend)", continuation_kind(modes, encodes) is not None),
             ("LoRA (--lora)", family is not None),
             (f"step caches (--cache {', '.join(caches)})" if caches else "step caches (--cache)", bool(caches))]
    return "\n".join(f"{what}: {'yes' if ok else 'no'}" for what, ok in items)
