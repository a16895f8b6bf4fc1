"""Model families: one module each, a :class:`Family` spec, found by name, pipeline class or folder."""

from t2v.families.base import Component, Family, Rules, RunContext
from t2v.families.registry import (all_families, family_for_pipeline, family_of_folder, get_family, make_tiny_model,
                                   register_family, tiny_builders)

__all__ = ["Component", "Family", "Rules", "RunContext", "all_families", "family_for_pipeline", "family_of_folder",
           "get_family", "make_tiny_model", "register_family", "tiny_builders"]
