"""Frame-position embeddings in the temporal attention: they change the output, survive save/load through
the config, keep the weight files stock, and the loader switches them on."""

from __future__ import annotations

import json

import pytest
import torch

from t2v.models.temporal import CONFIG_KEY, add_temporal_positions, apply_temporal_positions, folder_frame_limit


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
    reloaded = apply_temporal_positions(stock)
    assert all(b.pos_embed is not None for b in _temporal_blocks(reloaded))
    torch.testing.assert_close(_run(reloaded), expected)


def test_stock_unet_is_left_alone():
    unet = apply_temporal_positions(_unet())
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
    loaded = load_model(resolve_source(str(model_copy), get_settings()), plan_device("cpu", "fp32"))
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
