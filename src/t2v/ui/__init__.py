"""The web UI: a Gradio page over the job service (``t2v serve`` mounts it at ``/``; ``t2v ui`` runs it alone).

``handlers`` holds what the page does as plain functions over a JobService (no Gradio import);
``app`` lays out the page and ``mount`` serves it. Gradio is imported only by ``t2v.ui.app``.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def build_ui(service, **kwargs):
    from t2v.ui.app import build_ui as build  # deferred: imports starlette

    return build(service, **kwargs)


def mount_ui(app, service, path: str = "/", *, required: bool = False):
    from t2v.ui.mount import mount_ui as mount  # deferred: imports starlette

    return mount(app, service, path, required=required)


def page_options(service, blocks) -> dict:
    from t2v.ui.mount import page_options as options  # deferred: imports starlette

    return options(service, blocks)


def protect_uploads(app, blocks, service=None) -> None:
    from t2v.ui.mount import protect_uploads as protect  # deferred: imports starlette

    protect(app, blocks, service)


__all__ = ["build_ui", "mount_ui", "page_options", "protect_uploads"]
