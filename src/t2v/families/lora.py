"""LoRA files in diffusers' format for the transformer families: finding an adapter's files (one per expert for
Wan 2.2's two), checking their layers against the model's before any weights load, and loading them unfused
through the pipeline's own loader mixin."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any, ClassVar

from t2v.errors import InvalidRequest
from t2v.families.base import Family
from t2v.families.meta import meta_modules
from t2v.models.adapters import AdapterPart
from t2v.runtime import memoized

LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' save_lora_weights


def lora_files(adapter: Path, experts: tuple[str, ...] = ("transformer",)) -> dict[str, Path]:
    """{component: file} of a LoRA file or folder ({} if it is neither). With two ``experts`` (Wan 2.2
    A14B), a folder's ``*high_noise*`` file is for the first and its ``*low_noise*`` file for the second."""
    if adapter.is_file():
        return {experts[0]: adapter} if adapter.suffix == ".safetensors" else {}
    if not adapter.is_dir():
        return {}
    if (adapter / LORA_FILE).is_file():
        return {experts[0]: adapter / LORA_FILE}
    files = sorted(adapter.glob("*.safetensors"))
    if len(experts) > 1:
        found = split_files(files, experts)
        if found:
            return found
    return {experts[0]: files[0]} if len(files) == 1 else {}


def split_files(files: list[Path], experts: tuple[str, ...]) -> dict[str, Path]:
    """A two-expert LoRA folder's files by expert (``*high_noise*``, ``*low_noise*``); {} for any other."""
    found = {name: next((f for f in files if key in f.name), None) for name, key in zip(experts, ("high_noise", "low_noise"))}
    return {k: v for k, v in found.items() if v is not None}


def expert_targets(spec, experts: tuple[str, ...], present: tuple[str, ...]) -> dict[str, tuple[Path, float]]:
    """{component: (file, strength)} of one adapter: a two-expert folder's files each to its expert; a single
    file to the experts ``spec.experts`` names (both: each expert the model has), the first (high-noise) at
    ``spec.scale``, the second (low-noise) at ``spec.scale_low``; ``experts`` = high or low keeps one of them."""
    adapter = Path(spec.path)
    files = lora_files(adapter, experts)
    split = adapter.is_dir() and len(experts) > 1 and bool(split_files(sorted(adapter.glob("*.safetensors")), experts))
    (file,) = files.values() if not split else (None,)
    chosen = {"both": experts, "high": experts[:1], "low": experts[1:2]}[spec.experts]
    strengths = dict(zip(experts, (spec.scale, spec.scale if spec.scale_low is None else spec.scale_low)))
    out = {}
    for name in chosen:
        target = files.get(name) if split else file
        if target is not None and name in present:
            out[name] = (target, strengths[name])
    return out


class DiffusersLora(Family):
    """LoRA files in diffusers' format for a transformer family, read by the pipeline's own loader mixin
    (``lora_loader``, e.g. ``"WanLoraLoaderMixin"``: it converts the original and trainer key layouts) and
    loaded unfused beside the denoiser's weights, switched on for the runs that ask for them."""

    lora_loader: ClassVar[str] = ""
    lora_experts: ClassVar[tuple[str, ...]] = ("transformer",)
    checks_lora_shapes: ClassVar[bool] = True  # the file's "transformer." layers against the expert's, before loading

    def check_lora(self, path) -> Path:
        shown = str(path) if len(str(path)) <= 120 else str(path)[:117] + "..."
        try:
            p = Path(path).expanduser().resolve()
            if p.exists() and lora_files(p, self.lora_experts):
                return p
        except (OSError, ValueError, RuntimeError):
            pass
        raise InvalidRequest(f"lora: {shown} is not a {self.name} LoRA: give a .safetensors file or a folder with "
                             f"{LORA_FILE}", field="lora")

    def lora_hash(self, adapter: Path) -> str:
        h = hashlib.sha256()
        for name, file in sorted(lora_files(adapter, self.lora_experts).items()):
            h.update(name.encode() + file.read_bytes())
        return h.hexdigest()[:16]

    def lora_state(self, file: Path, model) -> dict[str, Any]:
        """The file's LoRA tensors in diffusers' layout for ``model`` (the loader mixin converts other layouts;
        a family without one, ``lora_loader = ""``, reads diffusers' PEFT layout as it is, ``transformer.``
        prefixed or not)."""
        import diffusers.loaders

        if not self.lora_loader:
            from safetensors.torch import load_file

            state = load_file(str(file))
            if state and not any(k.startswith("transformer.") for k in state):
                state = {f"transformer.{k}": v for k, v in state.items()}
            if not state or not all("lora" in k for k in state):
                raise ValueError("its tensors are not LoRA weights")
            return state
        mixin = getattr(diffusers.loaders, self.lora_loader)
        state = mixin.lora_state_dict(str(file))
        if isinstance(state, tuple):  # some loaders return (state, alphas)
            state = state[0]
        if not state or not all("lora" in k for k in state):
            raise ValueError("its tensors are not LoRA weights")
        expand = getattr(mixin, "_maybe_expand_t2v_lora_for_i2v", None)  # a T2V LoRA on Wan I2V, as the pipeline does
        return expand(transformer=model, state_dict=state) if expand is not None else state

    def check_loras(self, loras, default_scale: float, folder: Path | None):
        """:meth:`Family.check_loras`, then (with the model's folder here) each adapter file against the shapes of
        the expert it reaches, built on the meta device: a LoRA of another family or size is refused naming
        ``loras.N.path`` before any weights load."""
        checked = super().check_loras(loras, default_scale, folder)
        if folder is None or not self.checks_lora_shapes:
            return checked
        present = self.experts(folder) or self.lora_experts[:1]
        for i, spec in enumerate(checked):
            for expert, (file, _) in expert_targets(spec, self.lora_experts, present).items():
                st = file.stat()
                problem = lora_misfit(self, str(file), st.st_size, st.st_mtime_ns, str(folder), expert)
                if problem:
                    raise InvalidRequest(f"loras.{i}.path: {file.name} does not fit this model's {expert}: {problem}",
                                         field=f"loras.{i}.path")
        return checked

    def adapter_parts(self, present: tuple[str, ...], spec, index: int) -> list[AdapterPart]:
        """Each expert the adapter reaches (a two-expert folder's files each to its own; a single file to the
        experts ``spec.experts`` names), at its strength for that expert."""
        targets = expert_targets(spec, self.lora_experts, tuple(n for n in self.lora_experts if n in present))
        if not targets:
            raise InvalidRequest(f"loras.{index}.experts: {Path(spec.path).name} reaches no expert this model has "
                                 f"({', '.join(n for n in self.lora_experts if n in present)})",
                                 field=f"loras.{index}.experts")
        return [AdapterPart(name, file, strength, index) for name, (file, strength) in targets.items()]

    def load_adapter(self, module, part: AdapterPart, name: str) -> None:
        """The stock pipeline's ``load_lora_weights`` for one expert (``load_into_transformer_2`` for the second):
        the file read by the family's loader mixin, loaded under ``name``, unfused."""
        with warnings.catch_warnings():  # a second adapter is what t2v asks for, not a mistake
            warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
            module.load_lora_adapter(self.lora_state(part.file, module), prefix="transformer", adapter_name=name)


@memoized("lora-misfits", 64)
def lora_misfit(family: DiffusersLora, file: str, size: int, mtime_ns: int, folder: str, expert: str) -> str:
    """Why the LoRA ``file`` does not fit ``expert`` of the model in ``folder`` ("" when it does): its layers,
    read by the family's loader mixin, against the expert's built on the meta device (no weights). Keyed on the
    file's size and time, so a job asking again reads nothing."""
    model = meta_modules(folder, (expert,))[expert]
    try:
        state = family.lora_state(Path(file), model)
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        return str(e)[:200] or type(e).__name__
    layers = dict(model.named_modules())
    matched = 0
    for key, tensor in state.items():
        name = key.removeprefix("transformer.")
        kind = "lora_A" if ".lora_A." in name else "lora_B" if ".lora_B." in name else None
        if kind is None or not name.endswith(".weight"):
            continue
        layer = layers.get(name.split(f".{kind}.")[0])
        if layer is None or not hasattr(layer, "in_features"):
            continue
        matched += 1
        want = layer.in_features if kind == "lora_A" else layer.out_features
        have = tensor.shape[1] if kind == "lora_A" else tensor.shape[0]
        if tensor.ndim != 2 or have != want:
            return f"{key} has shape {tuple(tensor.shape)}, but the layer takes {want} features"
    return "" if matched else "none of its layers is a layer of this model (a LoRA of another family?)"
