"""An unknown model is refused at submit like any other bad field: 422 naming ``model`` on /v1, 400 with
``param: model`` on /openai/v1, each naming the nearest registered ids."""

from __future__ import annotations

from fastapi.testclient import TestClient

from t2v.api import create_app


def test_both_apis_refuse_an_unknown_model_naming_the_field_and_the_nearest_ids(settings):
    app = create_app(settings, start_workers=False, loopback_hosts=True)
    with TestClient(app, base_url="http://127.0.0.1") as client:
        r = client.post("/v1/videos", json={"prompt": "a red circle", "model": "t2v-shape"})
        assert r.status_code == 422, r.text
        body = r.json()
        assert "model" in str(body["detail"]) and "did you mean t2v-shapes" in str(body["detail"]), body
        r = client.post("/openai/v1/videos", json={"prompt": "a red circle", "model": "t2v-shape"})
        assert r.status_code == 400, r.text
        error = r.json()["error"]
        assert error["param"] == "model" and "did you mean t2v-shapes" in error["message"], error
