"""Storage: the database (SQLite or PostgreSQL), its migrations, and the repository.

All SQL lives in :mod:`t2v.store.repository` and the parts it is composed of (:mod:`t2v.store.keys`,
:mod:`t2v.store.claims`, :mod:`t2v.store.limits`, :mod:`t2v.store.assets`, :mod:`t2v.store.outbox`), each a small class
over one :class:`~t2v.store.db.Database`. The artifact stores (local folder, S3) are :mod:`t2v.store.artifacts`.
"""

from .db import default_database_url, head_revision, normalize_url, open_database, upgrade
from .ids import id_time, new_id
from .keys import ApiKeyRow, Keys
from .repository import JobRow, Repository
from .tables import FINISHED_STATUSES, JOB_STATUSES, WEBHOOK_STATUSES

__all__ = [
    "ApiKeyRow",
    "FINISHED_STATUSES",
    "JOB_STATUSES",
    "JobRow",
    "Keys",
    "Repository",
    "WEBHOOK_STATUSES",
    "default_database_url",
    "head_revision",
    "id_time",
    "new_id",
    "normalize_url",
    "open_database",
    "upgrade",
]
