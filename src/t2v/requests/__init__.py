"""The request contract: every request type (video, sequence, image, post), their union, the names and limits
they take, and each field's one declaration (type, range, default, help, CLI spelling). Depends only on
:mod:`t2v.errors` and pydantic; the CLI, the REST bodies, the forms and the README's flag table derive from it."""

from t2v.requests.base import (RequestModel, applies, cli_spelling, field_meta, file_fields, invalid_from_validation, knob, on_surface,
                               validated)
from t2v.requests.caches import (ATTENTION, CACHES, MASKLESS_KERNELS, WEIGHTS, CacheSpec, cache_spec, canonical_cache, check_attention,
                                 check_weights)
from t2v.requests.extras import FLAT_EXTRAS, FamilyExtras, check_extras, move_asset_ids, move_flat_extras
from t2v.requests.image import METHODS, ImageRequest, SequenceRequest
from t2v.requests.keyframes import parse_keyframes
from t2v.requests.loras import EXPERTS, MAX_LORAS, LoraSpec, move_single_lora, parse_lora
from t2v.requests.options import (DEFAULT_NEGATIVE_PROMPT, DEFAULT_STRENGTH, DEVICES, DTYPES, FORMATS, MAX_FRAMES,
                                  MAX_SECONDS, MAX_SEED, MAX_SIDE, MAX_STEPS, MIN_SIDE, PLANS, POST_FORMATS, SCHEDULERS,
                                  check_device_name, check_dtype_name, check_plan_name, parse_formats)
from t2v.requests.post import (INTERPOLATION_METHODS, UPSCALE_FACTORS, UPSCALERS, PostRequest, PostSpec,
                               post_from_flags, source_shape)
from t2v.requests.queue import JobOptions
from t2v.requests.results import GenerationResult, ProgressEvent, Stage
from t2v.requests.union import MODES, REQUEST_TYPES, Request, request_from_fields
from t2v.requests.video import (DEFAULTABLE, ENGINE_FIELDS, FILE_FIELDS, WEIGHT_FILE_FIELDS, GenerationRequest,
                                VideoRequest)

__all__ = [
    "ATTENTION", "MASKLESS_KERNELS", "CACHES", "EXPERTS", "MAX_LORAS", "LoraSpec", "move_single_lora", "parse_lora", "DEFAULTABLE", "DEFAULT_NEGATIVE_PROMPT", "DEFAULT_STRENGTH", "DEVICES", "DTYPES",
    "ENGINE_FIELDS", "FILE_FIELDS", "WEIGHT_FILE_FIELDS", "FLAT_EXTRAS", "FORMATS", "INTERPOLATION_METHODS", "MAX_FRAMES", "MAX_SECONDS", "MAX_SEED", "MAX_SIDE",
    "MAX_STEPS", "METHODS", "MIN_SIDE", "MODES", "PLANS", "POST_FORMATS", "REQUEST_TYPES", "SCHEDULERS",
    "UPSCALERS", "UPSCALE_FACTORS", "WEIGHTS", "CacheSpec", "FamilyExtras", "GenerationRequest", "GenerationResult", "ImageRequest", "JobOptions",
    "PostRequest", "PostSpec", "ProgressEvent", "Request", "RequestModel", "SequenceRequest", "Stage",
    "VideoRequest", "applies", "cache_spec", "canonical_cache", "check_attention", "check_extras", "check_device_name", "check_dtype_name",
    "check_plan_name", "check_weights", "cli_spelling", "field_meta", "file_fields", "invalid_from_validation", "knob",
    "move_asset_ids", "move_flat_extras", "on_surface", "parse_formats", "parse_keyframes", "post_from_flags", "request_from_fields", "source_shape",
    "validated",
]
