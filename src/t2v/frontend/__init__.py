"""Front-end logic shared by the web UI (:mod:`t2v.ui`) and the desktop app (:mod:`t2v.desktop`): the form
(limits, presets, seed modes, remix), job views (progress, messages, summaries) and history filtering.

Plain data in, plain data out: jobs are :class:`t2v.contract.Job`, models :class:`t2v.contract.Model`. No
Gradio, Tk, web or database imports, so each front end feeds it from wherever it gets its jobs (the
in-process service or :mod:`t2v.client`).
"""

from t2v.frontend.forms import (ADAPTER_DEFAULTS, CONTROL_DEFAULTS, VIDEO_FILE_KEYS, DEFAULT_FORMATS, FEW_STEP_CHOICES, FORM_KEYS, INTERPOLATE_CHOICES, INTERPOLATION_CHOICES, LABELS,
                                LONG_DEFAULTS, LONG_KEYS, PLAYER_FORMAT, POST_DEFAULTS, POST_KEYS, PRESETS, SEED_MODES,
                                UPSCALE_CHOICES, UPSCALER_CHOICES, FormError, FormLimits, default_form, is_sequence,
                                long_fields, long_form, number, post_fields, post_form, preset, readable, remix_form,
                                remix_target, request_fields, resolve_seed, schedule_lines, adapter_fields,
                                adapter_form, control_fields)
from t2v.frontend.catalog import TASK_GROUPS, model_label, model_menu, model_note
from t2v.frontend.compare import differences, differences_text
from t2v.frontend.history import caption, filter_jobs, matches
from t2v.frontend.sources import CLIP_HINTS, CLIP_LABELS, CLIP_USES, EXTEND, POST_ONLY, V2V, clip_of, clip_uses, with_clip
from t2v.frontend.views import FINISHED, STAGES, JobView, SteadyEta, clip_filename, format_seconds, post_summary, progress_label, view_of

__all__ = ["ADAPTER_DEFAULTS", "CONTROL_DEFAULTS", "VIDEO_FILE_KEYS", "control_fields", "FEW_STEP_CHOICES", "adapter_fields", "adapter_form", "DEFAULT_FORMATS", "FORM_KEYS", "INTERPOLATE_CHOICES", "INTERPOLATION_CHOICES", "LABELS", "LONG_DEFAULTS",
           "LONG_KEYS", "PLAYER_FORMAT", "POST_DEFAULTS", "POST_KEYS", "PRESETS", "SEED_MODES", "UPSCALE_CHOICES",
           "UPSCALER_CHOICES", "FormError", "FormLimits", "default_form", "is_sequence", "long_fields", "long_form",
           "number", "post_fields", "post_form", "preset", "readable", "remix_form", "remix_target", "request_fields",
           "resolve_seed", "schedule_lines", "caption", "filter_jobs", "matches", "FINISHED", "STAGES", "JobView",
           "clip_filename", "format_seconds", "post_summary", "progress_label", "view_of", "TASK_GROUPS", "model_label",
           "model_menu", "model_note", "differences", "differences_text", "CLIP_HINTS", "CLIP_LABELS", "CLIP_USES", "EXTEND", "POST_ONLY", "V2V",
           "clip_of", "clip_uses", "with_clip", "SteadyEta"]
