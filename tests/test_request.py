import pytest

from t2v.errors import InvalidRequest
from t2v.requests import DEFAULT_NEGATIVE_PROMPT, GenerationRequest


def test_defaults_and_frozen():
    r = GenerationRequest.create(prompt="  a cat  ")
    assert r.prompt == "a cat"
    assert r.negative_prompt is None  # the model's default, filled in by resolve()
    assert r.formats == ("mp4",)
    assert r.with_defaults({"negative_prompt": DEFAULT_NEGATIVE_PROMPT}).negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert r.model_copy(update={"negative_prompt": ""}).with_defaults({"negative_prompt": "x"}).negative_prompt == ""
    with pytest.raises(Exception):
        r.prompt = "x"  # frozen


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "a", "num_frames": 0}, "num_frames"),
        ({"prompt": "a", "num_frames": 10000}, "num_frames"),
        ({"prompt": "a", "width": 63}, "width"),
        ({"prompt": "a", "height": 100}, "height"),
        ({"prompt": "a", "num_inference_steps": 0}, "num_inference_steps"),
        ({"prompt": "a", "guidance_scale": -1}, "guidance_scale"),
        ({"prompt": "a", "scheduler": "heun"}, "scheduler"),
        ({"prompt": "a", "formats": ["avi"]}, "formats"),
        ({"prompt": "a", "fps": 0}, "fps"),
        ({"prompt": "a", "seed": -5}, "seed"),
        ({"prompt": "a", "device": "tpu"}, "device"),
        ({"prompt": "a", "dtype": "int8"}, "dtype"),
        ({"prompt": "a", "colour": "red"}, "colour"),
    ],
)
def test_bad_fields_name_the_field(fields, field):
    with pytest.raises(InvalidRequest) as info:
        GenerationRequest.create(**fields)
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_with_defaults_only_fills_missing():
    r = GenerationRequest.create(prompt="a", width=128)
    filled = r.with_defaults({"width": 256, "height": 256, "num_frames": 16}, seed=7)
    assert (filled.width, filled.height, filled.num_frames, filled.seed) == (128, 256, 16, 7)


def test_formats_normalised_and_deduplicated():
    r = GenerationRequest.create(prompt="a", formats=["MP4", ".gif", "mp4"])
    assert r.formats == ("mp4", "gif")


def test_records_and_bodies_with_the_flat_family_fields_of_before_load_them_as_extras():
    from t2v.api.schemas import VideoCreate
    from t2v.record import request_fields

    old = {"prompt": "x", "seed": 1, "mode": "video", "decode_timestep": 0.05, "decode_noise_scale": 0.025,
           "guidance_scale_2": None}
    request = GenerationRequest(**request_fields(old))
    assert request.extras == {"decode_timestep": 0.05, "decode_noise_scale": 0.025}
    assert request.decode_timestep == 0.05 and request.guidance_scale_2 is None
    body = VideoCreate.model_validate({"prompt": "x", "guidance_scale_2": 3.0, "extras": {"use_dynamic_cfg": True}})
    assert body.generation_fields()["extras"] == {"guidance_scale_2": 3.0, "use_dynamic_cfg": True}
    assert "guidance_scale_2" not in GenerationRequest.model_fields  # a family's setting, not every request's


def test_loras_from_text_objects_and_the_one_lora_fields_of_before():
    from typer.testing import CliRunner

    from t2v.api.schemas import VideoCreate
    from t2v.cli import app
    from t2v.record import request_fields
    from t2v.requests import LoraSpec

    r = GenerationRequest(prompt="x", loras=["fast.safetensors:1", "style:0.8/0.4@both", "C:/loras/x", {"id": "y"}])
    assert [(s.path, s.scale, s.scale_low, s.experts) for s in r.loras] == [
        ("fast.safetensors", 1.0, None, "both"), ("style", 0.8, 0.4, "both"), ("C:/loras/x", None, None, "both"),
        ("y", None, None, "both")]
    old = {"prompt": "x", "seed": 1, "mode": "video", "lora": "/adapters/purple", "lora_scale": 0.5}
    assert GenerationRequest(**request_fields(old)).loras == (LoraSpec(path="/adapters/purple"),)
    assert GenerationRequest(**request_fields(old)).lora_scale == 0.5
    body = VideoCreate.model_validate({"prompt": "x", "lora": "/a"}).generation_fields()
    assert list(body["loras"]) == [{"path": "/a", "experts": "both"}]
    schema = VideoCreate.model_json_schema()
    assert "loras" in schema["properties"] and "lora" not in schema["properties"]
    for bad, field in (({"loras": ["a", "a"]}, "loras"), ({"loras": [{"path": "a", "scale": 9}]}, "loras.0.scale"),
                       ({"loras": [{"path": "a", "experts": "middle"}]}, "loras.0.experts"),
                       ({"loras": [{"path": "a", "bogus": 1}]}, "loras.0.bogus"),
                       ({"loras": ["a"], "lora": "b"}, "loras")):
        with pytest.raises(InvalidRequest) as e:
            GenerationRequest(prompt="x", **bad)
        assert e.value.field == field, (bad, e.value.field, str(e.value))
    # the CLI: --lora is repeatable; a bad strength exits 2 naming the field, before anything loads
    done = CliRunner().invoke(app, ["plan", "x", "--model", "t2v-shapes", "--lora", "a:9", "--lora", "b"])
    assert done.exit_code == 2 and "loras.0.scale" in done.stderr, done.output
