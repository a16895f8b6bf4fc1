"""Block streaming under the low plan (t2v.sampling.offload): a text encoder's layers move to the device one at a
time, as a transformer's blocks do. Here the device is the CPU (the hooks run, the copies are CPU to CPU): the
output is unchanged, every parameter belongs to a group the hooks move, and the streamed blocks are the ones the
planner counts (t2v.families.meta.blocks)."""

from __future__ import annotations

import pytest
import torch

from t2v.families import get_family
from t2v.families.base import read_index, resolve_class
from t2v.families.meta import blocks
from t2v.sampling.offload import block_path, group_offload, group_offloaded, resident, stream_blocks
from tests.tinymodels import built

# Each text encoder class a family streams: UMT5, T5, Gemma 3 (multimodal), Llama, Qwen2.5-VL (text model and the
# multimodal one), Gemma 2.
TEXT_ENCODERS = [("wan", "text_encoder"), ("cogvideox", "text_encoder"), ("ltx2", "text_encoder"),
                 ("hunyuan", "text_encoder"), ("hunyuan15", "text_encoder"), ("kandinsky5", "text_encoder"),
                 ("sana-video", "text_encoder")]


def load(kind: str, name: str):
    path = built(kind)
    library, cls = read_index(path)[name][:2]
    return resolve_class(library, cls).from_pretrained(path / name).eval()


def groups(module) -> list:
    """The group-offload groups hooked anywhere in ``module`` (diffusers' hook registry on each submodule)."""
    found = []
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        hook = registry.get_hook("group_offloading") if registry is not None else None
        if hook is not None and all(hook.group is not g for g in found):
            found.append(hook.group)
    return found


@pytest.mark.parametrize("kind,name", TEXT_ENCODERS, ids=[k for k, _ in TEXT_ENCODERS])
def test_a_text_encoder_streams_its_layers_with_the_same_output(kind, name):
    assert name in get_family(kind).streamed
    encoder = load(kind, name)
    ids = torch.tensor([[3, 7, 11, 5, 2, 9]])
    with torch.no_grad():
        before = encoder(input_ids=ids, output_hidden_states=True).hidden_states
    path = block_path(encoder)
    holder = encoder.get_submodule(".".join(path))
    layers = [c for c in holder.children() if isinstance(c, (torch.nn.ModuleList, torch.nn.Sequential))]
    assert layers and max(len(lst) for lst in layers) > 1, (kind, path)

    stream_blocks(encoder, "cpu")
    assert group_offloaded(encoder)
    found = groups(encoder)
    covered = {id(p) for g in found for m in g.modules for p in m.parameters()} | {
        id(p) for g in found for p in g.parameters}
    assert {id(p) for p in encoder.parameters()} <= covered, "every parameter is moved by some group"
    streamed = [g for g in found if len(g.modules) == 1 and any(g.modules[0] is b for lst in layers for b in lst)]
    assert len(streamed) == sum(len(lst) for lst in layers), "one group per block"
    in_blocks = sum(p.numel() for g in streamed for p in g.modules[0].parameters())
    assert blocks({name: encoder})[name] == [in_blocks, max(sum(p.numel() for p in g.modules[0].parameters())
                                                          for g in streamed)], "what the planner counts"
    with torch.no_grad():
        after = encoder(input_ids=ids, output_hidden_states=True).hidden_states
    assert len(after) == len(before) and all(torch.equal(a, b) for a, b in zip(after, before))


def test_streamed_modules_are_left_where_they_are_by_model_offload_and_deferred_ones_stream_when_loaded():
    from t2v.models.deferred import Components, Deferred

    loads = []
    encoder = load("wan", "text_encoder")
    components = Components(text_encoder=Deferred("text_encoder", lambda: loads.append(1) or encoder))
    group_offload(components, "cpu", ("text_encoder", "transformer"))
    assert not loads, "a deferred text encoder is not loaded to stream it"
    assert group_offloaded(components["text_encoder"]) and loads == [1]

    moved = []

    class Spy(torch.nn.Module):
        def to(self, *a, **k):
            moved.append(a)
            return self

    spy = Spy()
    spy.t2v_group_offloaded = True
    with resident(spy, "cuda", True):
        pass
    assert moved == [], "the hooks move a streamed module, not model offload"
    plain = Spy()
    with resident(plain, "cuda", True):
        pass
    assert moved == [("cuda",), ("cpu",)]


def test_a_diffusers_transformer_streams_its_own_blocks():
    family = get_family("wan")
    assert {"transformer", "transformer_2", "text_encoder"} <= set(family.streamed)
    path = built("wan")
    library, cls = read_index(path)["transformer"][:2]
    tr = resolve_class(library, cls).from_pretrained(path / "transformer").eval()
    assert block_path(tr) == ()
    stream_blocks(tr, "cpu")
    assert len([g for g in groups(tr) if len(g.modules) == 1 and g.modules[0] in list(tr.blocks)]) == len(tr.blocks)


RUNS = ["wan", "ltx", "ltx2", "hunyuan", "hunyuan15", "helios", "anyflow", "anyflow-far", "sana-video", "kandinsky5",
        "cogvideox"]


@pytest.mark.parametrize("kind", RUNS)
def test_a_run_whose_transformer_and_text_encoder_stream_makes_the_same_frames(kind, monkeypatch):
    """The loaded model's streamed components (``Family.streamed``) get the low plan's block streaming in place
    (here onto the CPU itself), and the next run of the same request, through the same loaded model, makes the
    same frames as the run before: every block's hooks and every layer outside the blocks take part."""
    import numpy as np

    from t2v.models.loader import model_cache
    from t2v.runtime import Runtime, using
    from tests.families.checks import run

    monkeypatch.setenv("T2V_PROMPT_CACHE_MB", "0")  # the text encoder runs in both runs
    model = built(kind)
    runtime = Runtime()  # a model cache of its own: the streamed model stays in this test
    with using(runtime):
        plain, _ = run(model, guidance_scale=3.0)
        (loaded,) = model_cache(runtime).entries.values()
        streamed = [n for n in get_family(loaded.family.name).streamed if loaded.components.get(n) is not None]
        group_offload(loaded.components, "cpu", tuple(streamed))
        assert "text_encoder" in streamed and all(group_offloaded(loaded.components[n]) for n in streamed)
        again, _ = run(model, guidance_scale=3.0)
    assert np.array_equal(plain, again)


def test_a_private_view_of_a_streamed_module_has_its_own_hooks_on_the_same_weights():
    """A run's private view (compile, kernels, step caches) of a streamed transformer: its groups lead with the
    view's own blocks, its weights are the model's, and it computes what the model does."""
    from t2v.sampling.views import private_view

    encoder = load("wan", "text_encoder")
    stream_blocks(encoder, "cpu")
    view = private_view(encoder)
    ids = torch.tensor([[3, 7, 11, 5, 2, 9]])
    with torch.no_grad():
        assert torch.equal(view(input_ids=ids).last_hidden_state, encoder(input_ids=ids).last_hidden_state)
    original, copied = groups(encoder), groups(view)
    assert len(copied) == len(original) and not {id(g) for g in copied} & {id(g) for g in original}
    view_blocks = list(view.encoder.block)
    assert all(g.onload_leader in view_blocks for g in copied if len(g.modules) == 1 and g.modules[0] in view_blocks)
    assert {id(p) for p in view.parameters()} == {id(p) for p in encoder.parameters()}
