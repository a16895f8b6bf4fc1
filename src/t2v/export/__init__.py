"""Writing generated frames to video/image files, and the records embedded in them."""

from t2v.export.metadata import (
    EMBED_TAG,
    PNG_KEY,
    frames_sha256,
    read_embedded,
    sha256_file,
    write_sidecar,
)
from t2v.export.writers import (
    EXTENSIONS,
    FORMATS,
    OutputFile,
    atomic_path,
    check_writable,
    check_frame_size,
    decode_video,
    remove_output,
    write_outputs,
    write_video,
)

__all__ = [
    "EMBED_TAG",
    "EXTENSIONS",
    "FORMATS",
    "PNG_KEY",
    "OutputFile",
    "atomic_path",
    "check_writable",
    "check_frame_size",
    "decode_video",
    "frames_sha256",
    "read_embedded",
    "remove_output",
    "sha256_file",
    "write_outputs",
    "write_sidecar",
    "write_video",
]
