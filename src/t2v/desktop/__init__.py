"""The desktop app (Tk/ttk): a thin front end over the REST API through :mod:`t2v.client`, with the form,
views and history logic of :mod:`t2v.frontend`. ``t2v desktop`` starts it (see docs/desktop.md)."""

from t2v.desktop.bridge import Bridge
from t2v.desktop.local import LocalServer, free_port

__all__ = ["Bridge", "LocalServer", "free_port"]
