"""Numbers a client sends are range-checked before any arithmetic: ``seconds`` of 1e308 is a 400 naming
``seconds`` on /openai/v1 (and 422 on /v1), and a Range header whose number has thousands of digits is read as
a bound, never parsed whole, on every byte route."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from t2v.api import create_app
from t2v.api.downloads import byte_range


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings, start_workers=False, loopback_hosts=True),
                    base_url="http://127.0.0.1") as c:
        yield c


@pytest.mark.parametrize("seconds", [1e308, "1e308", "99999999999"])
def test_huge_seconds_are_refused_naming_the_field(client, seconds):
    r = client.post("/openai/v1/videos", json={"prompt": "x", "seconds": seconds})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "seconds" and "at most 3600" in error["message"], error
    r = client.post("/v1/videos", json={"prompt": "x", "seconds": seconds})
    assert r.status_code == 422, r.text
    assert "seconds" in str(r.json()["detail"]), r.text


def test_a_range_with_thousands_of_digits_is_bounded_not_parsed(client):
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), "red").save(buf, "PNG")
    r = client.post("/v1/assets", files={"file": ("red.png", buf.getvalue(), "image/png")})
    assert r.status_code == 201, r.text
    url, size = f"/v1/assets/{r.json()['id']}/content", len(buf.getvalue())
    huge = "9" * 5000
    assert client.get(url, headers={"Range": f"bytes={huge}-"}).status_code == 416
    whole = client.get(url, headers={"Range": f"bytes=-{huge}"})
    assert whole.status_code == 206 and len(whole.content) == size
    part = client.get(url, headers={"Range": f"bytes=0-{huge}"})
    assert part.status_code == 206 and len(part.content) == size
    assert byte_range(f"bytes=2-{huge}", 10) == (2, 9) and byte_range(f"bytes={huge}-{huge}", 10) == "unsatisfiable"
