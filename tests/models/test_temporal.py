"""Frame-position embeddings in the temporal attention: they change the output, survive save/load through
the config, keep the weight files stock, and the loader switches them on."""

from __future__ import annotations

import json

import pytest
import torch

from t2v.models.temporal import CONFIG_KEY, add_temporal_positions, apply_temporal_config, folder_frame_limit
from t2v.families import family_of_folder, get_family


def _unet():
    from diffusers import UNet3DConditionModel

    torch.manual_seed(0)
    return UNet3DConditionModel(block_out_channels=(16, 32), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
                                down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
                                up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"), cross_attention_dim=16,
                                attention_head_dim=4, norm_num_groups=8).eval()


def _run(unet, frames=6):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 4, frames, 8, 8, generator=g)
    cond = torch.randn(1, 5, 16, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([500]), encoder_hidden_states=cond).sample


def _temporal_blocks(unet):
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    return [b for m in unet.modules() if isinstance(m, TransformerTemporalModel) for b in m.transformer_blocks]


def test_positions_make_the_output_depend_on_frame_order():
    unet = _unet()
    # Make the temporal layers non-trivial (diffusers zero-initialises their output projections).
    with torch.no_grad():
        for m in unet.modules():
            if type(m).__name__ == "TransformerTemporalModel":
                m.proj_out.weight.normal_(0, 0.2)
    plain = _run(unet)
    changed = add_temporal_positions(unet, 16)
    assert changed == len(_temporal_blocks(unet)) > 0
    assert add_temporal_positions(unet, 16) == 0  # idempotent
    with_pos = _run(unet)
    assert not torch.allclose(plain, with_pos, atol=1e-5)
    assert unet.config[CONFIG_KEY] == 16


def test_saved_model_keeps_stock_weights_and_reloads_with_positions(tmp_path):
    from diffusers import UNet3DConditionModel

    unet = _unet()
    stock_keys = set(unet.state_dict())
    add_temporal_positions(unet, 16)
    assert set(unet.state_dict()) == stock_keys  # the sinusoids are not saved
    expected = _run(unet)
    unet.save_pretrained(tmp_path / "unet")
    assert json.loads((tmp_path / "unet" / "config.json").read_text())[CONFIG_KEY] == 16

    stock = UNet3DConditionModel.from_pretrained(tmp_path / "unet").eval()  # stock diffusers: loads, no embeddings
    assert all(b.pos_embed is None for b in _temporal_blocks(stock))
    reloaded = apply_temporal_config(stock)
    assert all(b.pos_embed is not None for b in _temporal_blocks(reloaded))
    torch.testing.assert_close(_run(reloaded), expected)


def test_stock_unet_is_left_alone():
    unet = apply_temporal_config(_unet())
    assert all(b.pos_embed is None for b in _temporal_blocks(unet))


def test_loader_switches_positions_on(model_copy):
    from t2v.models.device import plan_device
    from t2v.models.loader import load_model
    from t2v.models.source import resolve_source
    from t2v.settings import get_settings

    cfg_file = model_copy / "unet" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg[CONFIG_KEY] = 32
    cfg_file.write_text(json.dumps(cfg))
    assert folder_frame_limit(model_copy) == 32
    loaded = load_model(resolve_source(str(model_copy), get_settings(), families=get_family), plan_device("cpu", "fp32"), family=family_of_folder(model_copy))
    blocks = _temporal_blocks(loaded.unet)
    assert blocks and all(b.pos_embed is not None and b.pos_embed.pe.shape[1] == 32 for b in blocks)


def test_more_frames_than_the_embeddings_cover_is_refused(model_copy, tmp_path):
    from t2v import GenerationRequest, generate
    from t2v.errors import InvalidRequest

    cfg_file = model_copy / "unet" / "config.json"
    cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), CONFIG_KEY: 4}))
    with pytest.raises(InvalidRequest, match="frame-position embeddings cover") as err:
        generate(GenerationRequest(prompt="x", model=str(model_copy), num_frames=5), output=tmp_path / "o.mp4")
    assert err.value.field == "num_frames" and not list(tmp_path.glob("o*"))
    r = generate(GenerationRequest(prompt="x", model=str(model_copy), num_frames=4, seed=0, formats=()))
    assert r.frames.shape[0] == 4


def _temporal_module(frames=4, batch=2, size=3):
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    torch.manual_seed(0)
    m = TransformerTemporalModel(4, 2, in_channels=8, num_layers=1, norm_num_groups=4).eval()
    with torch.no_grad():
        m.proj_out.weight.normal_(0, 0.3)
    x = torch.randn(batch * frames, 8, size, size, generator=torch.Generator().manual_seed(2))
    return m, x


def _out(m, x, frames=4):
    with torch.no_grad():
        return m(x, num_frames=frames).sample


def test_clip_attention_carries_another_position_of_another_frame_and_keeps_clips_apart():
    from diffusers.models.attention_processor import Attention

    from t2v.models.temporal import ClipAttention, add_clip_attention

    torch.manual_seed(0)
    attn = Attention(8, heads=2, dim_head=4).eval()
    tokens = torch.randn(2 * 9, 4, 8)  # (clips x 3x3 positions, frames, channels), as a temporal block sees them
    poked = tokens.clone()
    poked[5, 1] += 3.0  # clip 0, position 5, frame 1
    with torch.no_grad():
        a, b = attn(tokens), attn(poked)  # stock: a position attends over its own frames only
        assert torch.allclose(a[0], b[0]) and not torch.allclose(a[5], b[5])
        clip = ClipAttention()
        clip.batch = 2
        attn.set_processor(clip)
        a, b = attn(tokens), attn(poked)
    assert not torch.allclose(a[0, 3], b[0, 3], atol=1e-4)  # position 0, frame 3 now sees position 5, frame 1
    torch.testing.assert_close(a[9:], b[9:])  # clip 1 is not reached by clip 0's tokens

    m, x = _temporal_module()

    class Holder(torch.nn.Module):  # add_clip_attention walks a module tree and records a config key
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = {}

        def register_to_config(self, **kw):
            self.config.update(kw)

    holder = Holder(m)
    assert add_clip_attention(holder) == 1 and add_clip_attention(holder) == 0  # idempotent
    assert holder.config == {"_t2v_clip_attention": True}
    both = _out(m, x)
    # One clip alone gives what it gave inside the batch: the hook tells the processor the batch size.
    torch.testing.assert_close(_out(m, x[4:]), both[4:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_out(m, x[:4]), both[:4], atol=1e-5, rtol=1e-5)


def test_clip_attention_survives_save_and_load_with_stock_weight_files(tmp_path):
    from diffusers import UNet3DConditionModel

    from t2v.models.temporal import CLIP_ATTENTION_KEY, add_clip_attention, clip_attention

    unet = _unet()
    with torch.no_grad():
        for m in unet.modules():
            if type(m).__name__ == "TransformerTemporalModel":
                m.proj_out.weight.normal_(0, 0.2)
    keys = set(unet.state_dict())
    plain = _run(unet)
    add_clip_attention(unet)
    assert set(unet.state_dict()) == keys and clip_attention(unet)
    expected = _run(unet)
    assert not torch.allclose(plain, expected, atol=1e-5)
    unet.save_pretrained(tmp_path / "unet")
    assert json.loads((tmp_path / "unet" / "config.json").read_text())[CLIP_ATTENTION_KEY] is True
    stock = UNet3DConditionModel.from_pretrained(tmp_path / "unet").eval()
    torch.testing.assert_close(_run(stock), plain)  # stock diffusers loads it, with per-position attention
    torch.testing.assert_close(_run(apply_temporal_config(stock)), expected)
