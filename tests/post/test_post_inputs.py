"""``t2v post`` takes what ``POST /v1/assets`` takes as a video: an mp4, webm or gif of at least 2 frames. A PNG, or
a one-frame GIF or MP4, is refused naming ``clip`` before anything is written."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from t2v.errors import InvalidRequest
from t2v.export.writers import write_video
from t2v.post.clip import post_file

FRAME = np.zeros((32, 32, 3), dtype=np.uint8)


@pytest.mark.parametrize("kind, words", [("png", "is not a video (mp4, webm or gif expected)"),
                                         ("gif", "has a single frame"), ("mp4", "has a single frame")])
def test_an_image_or_a_single_frame_is_refused_like_the_api_does(tmp_path, kind, words):
    clip = tmp_path / f"one.{kind}"
    if kind == "png":
        Image.fromarray(FRAME).save(clip)
    elif kind == "gif":
        Image.fromarray(FRAME).save(clip, save_all=True)
    else:
        write_video(FRAME[None], clip, "mp4", 8)
    with pytest.raises(InvalidRequest) as e:
        post_file(clip, tmp_path / "out.mp4", {"deflicker": True})
    assert e.value.field == "clip" and words in str(e.value)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.json").exists()


def test_two_frames_are_a_clip(tmp_path):
    clip = tmp_path / "two.gif"
    Image.fromarray(FRAME).save(clip, save_all=True, append_images=[Image.fromarray(FRAME + 40)], duration=125)
    result = post_file(clip, tmp_path / "out.gif", {"deflicker": True})
    assert result.frames.shape == (2, 32, 32, 3) and (tmp_path / "out.gif").is_file()
