from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread is many times faster than two spinning."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def first_frame(tmp_path_factory):
    """A 70x40 random RGB image: the first frame for image-to-video tests."""
    import numpy as np
    from PIL import Image

    path = tmp_path_factory.mktemp("images") / "first.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 70, 3), dtype=np.uint8)).save(path)
    return path
