from __future__ import annotations

import pytest

from tests.fixtures import one_thread  # noqa: F401  (autouse: one torch thread per module)


@pytest.fixture(scope="session")
def first_frame(tmp_path_factory):
    """A 70x40 random RGB image: the first frame for image-to-video tests."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "first.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(path)
    return path
