"""The REST API's response types, shared by the server (:mod:`t2v.api`: ``response_model`` of each route, so
``/openapi.json`` describes what comes back) and the client (:mod:`t2v.client`). They are declared once, in
:mod:`t2v_client.models` (pydantic only), so the standalone ``t2v-client`` distribution reads the same types the
server answers with. Unknown fields are kept, so an older client reads a newer server's answers."""

from __future__ import annotations

from t2v_client.models import (FINISHED, Asset, Batch, BatchLine, Job, JobFile, JobPage, JobResult, Limits, Model, ModelList, ModelRules,
                               Progress, RecordPage, Result, Status, Webhook)

__all__ = ["FINISHED", "Asset", "Batch", "BatchLine", "Job", "JobFile", "JobPage", "JobResult", "Limits", "Model", "ModelList", "ModelRules",
           "Progress", "RecordPage", "Result", "Status", "Webhook"]
