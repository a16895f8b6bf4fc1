"""The planner's view of a model folder: its modules built from their configs on the meta device (no weights), and
their parameter counts. The families' dry runs and LoRA shape checks read them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from t2v.families.base import read_index, resolve_class
from t2v.runtime import memoized
from t2v.sampling.offload import block_path


@memoized("meta-modules-by-folder", 8)
def meta_modules(path: str, names: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The folder's modules built from their configs on the meta device (no weights), by component name:
    ``names``, or every diffusers / transformers entry of model_index.json that has a config.json."""
    import torch

    root, index, out = Path(path), read_index(Path(path)), {}
    wanted = names or tuple(k for k in index if not k.startswith("_"))
    with torch.device("meta"):
        for name in wanted:
            entry = index.get(name)
            if not (isinstance(entry, (list, tuple)) and len(entry) >= 2 and entry[0] and entry[1]):
                continue
            if not (root / name / "config.json").is_file():
                continue  # tokenizers, schedulers, processors
            cls = resolve_class(entry[0], entry[1])
            if entry[0] == "transformers":
                out[name] = cls(cls.config_class.from_pretrained(root / name)).eval()
            else:
                out[name] = cls.from_config(cls.load_config(root / name)).eval()
    return out


def params(modules: dict[str, Any]) -> dict[str, int]:
    return {n: sum(q.numel() for q in m.parameters()) for n, m in modules.items() if m is not None}


def blocks(modules: dict[str, Any]) -> dict[str, list[int]]:
    """Component -> [parameters in its repeated blocks, parameters of its largest block]: the blocks diffusers'
    block-level group offload moves one at a time (the children of each ``ModuleList`` / ``Sequential`` held by
    the module :func:`t2v.sampling.offload.block_path` leads to: the component itself for a diffusers model, the
    encoder stack for a text encoder; the rest of the component moves as one group). Components without such
    lists are left out."""
    import torch

    out = {}
    for name, module in modules.items():
        if module is None:
            continue
        holder = module.get_submodule(".".join(block_path(module)))
        lists = [c for c in holder.children() if isinstance(c, (torch.nn.ModuleList, torch.nn.Sequential))]
        sizes = [sum(q.numel() for q in block.parameters()) for child in lists for block in child]
        if sizes:
            out[name] = [sum(sizes), max(sizes)]
    return out
