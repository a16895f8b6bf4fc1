"""t2v's own model families as cards (:class:`~t2v.models.spec.FamilyCard`): name, pipeline classes, defaults, hub
models and tiny builders, read without importing any family's code (the catalogue, :mod:`t2v.models.catalog`,
imports a family's module the first time it runs). One module per family, beside its code in
:mod:`t2v.families`."""

from t2v.models.hub.animatediff import CARD as ANIMATEDIFF
from t2v.models.hub.cogvideox import CARD as COGVIDEOX
from t2v.models.hub.hunyuan import CARD as HUNYUAN
from t2v.models.hub.hunyuan15 import CARD as HUNYUAN15
from t2v.models.hub.ltx import CARD as LTX
from t2v.models.hub.ltx2 import CARD as LTX2
from t2v.models.hub.modelscope import CARD as MODELSCOPE
from t2v.models.hub.sd import SD_CARD as SD, SDXL_CARD as SDXL
from t2v.models.hub.skyreels import CARD as SKYREELS_V2, DF_CARD as SKYREELS_V2_DF
from t2v.models.hub.wan import CARD as WAN
from t2v.models.spec import FamilyCard

CARDS: tuple[FamilyCard, ...] = (MODELSCOPE, WAN, SKYREELS_V2, SKYREELS_V2_DF, LTX, LTX2, COGVIDEOX, HUNYUAN, HUNYUAN15, ANIMATEDIFF, SD, SDXL)
