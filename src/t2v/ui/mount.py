"""Serving the page: mounted on the REST API's app (``t2v serve``) or alone (``t2v ui``), with its file routes
closed to everything but each browser session's own copies and its upload routes guarded."""

import logging

from t2v.ui.app import build_ui, import_gradio
from t2v.ui.files import blocked_paths, refuse_uploads, upload_fields
from t2v.ui.scripts import CSS
from t2v.ui.uploads import MAX_CLIP_BYTES, guard_uploads

logger = logging.getLogger(__name__)


def mount_ui(app, service, path: str = "/", *, required: bool = False):
    """Mount the page on ``app`` at ``path`` (after the API's routes, so /v1, /docs, /healthz... keep working).

    Without Gradio installed the app is returned unchanged (with a warning), unless ``required``.
    """
    try:
        gr = import_gradio()
    except Exception:
        if required:
            raise
        logger.warning("Gradio is not installed: serving the REST API without the web UI")
        return app
    blocks = build_ui(service)
    app = gr.mount_gradio_app(app, blocks, path=path, **page_options(service, blocks))
    protect_uploads(app, blocks, service)
    return app


def page_options(service, blocks) -> dict:
    """How the page is served (``gr.mount_gradio_app`` or ``Blocks.launch``). No allowed_paths, and $T2V_HOME
    blocked: /gradio_api/file= serves only Gradio's cache, where the page puts per-session copies
    (t2v.ui.files.PrivateCopies) for callers with a valid key. Uploads (the first frame) land in Gradio's cache
    under a folder named by a keyed hash, at most one image or one control clip each."""
    from t2v.inputs import MAX_IMAGE_BYTES  # deferred: imports numpy

    return dict(blocked_paths=blocked_paths(service.settings.home, blocks.GRADIO_CACHE),
                footer_links=["gradio", "settings"], run_history=False, ssr_mode=False, mcp_server=False,
                show_error=False, css=CSS, max_file_size=max(MAX_IMAGE_BYTES, MAX_CLIP_BYTES))


def protect_uploads(app, blocks, service=None) -> None:
    """Gradio's upload routes on ``app`` (the ASGI app the page is mounted on): only checked images (the first
    frame), or nothing when the page takes no files."""
    gr = import_gradio()
    if upload_fields(gr, blocks):
        guard_uploads(app, blocks, service)
    else:
        refuse_uploads(app, blocks)
