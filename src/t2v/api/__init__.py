"""REST API (FastAPI) over the job service. ``create_app(settings)`` builds it."""

from t2v.api.app import create_app

__all__ = ["create_app"]
