"""t2v: text-to-video with diffusion models.

>>> import t2v
>>> video = t2v.generate("a red circle moving right", model="t2v-shapes", seed=1)  # doctest: +SKIP
>>> video.frames.shape, video.record["seed"]  # doctest: +SKIP
((8, 64, 64, 3), 1)
>>> video.save("circle.mp4")  # doctest: +SKIP
"""

from t2v.errors import Cancelled, ExportError, InvalidRequest, ModelUnavailable, T2VError
from t2v.library import Video, generate, load_pipeline
from t2v.requests import GenerationRequest, GenerationResult, ImageRequest, PostRequest, ProgressEvent, SequenceRequest
from t2v.version import __version__

__all__ = [
    "Cancelled",
    "ExportError",
    "GenerationRequest",
    "GenerationResult",
    "ImageRequest",
    "InvalidRequest",
    "ModelUnavailable",
    "PostRequest",
    "ProgressEvent",
    "SequenceRequest",
    "T2VError",
    "Video",
    "__version__",
    "generate",
    "load_pipeline",
]
