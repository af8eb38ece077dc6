"""Sampler parameters: ranges are enforced and presets load."""

from __future__ import annotations

import pytest

from presets.errors import SamplerError
from presets.samplers import RANGES, TEXT_FIELDS, SamplerParams, load_builtin_presets, parse_preset

EVERY_PARAMETER = {
    "temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty", "repeat_last_n",
    "presence_penalty", "frequency_penalty", "mirostat_mode", "mirostat_tau", "mirostat_eta",
    "seed", "max_new_tokens",
}  # fmt: skip


def test_every_parameter_has_a_range() -> None:
    assert set(RANGES) == EVERY_PARAMETER
    assert set(SamplerParams().to_dict()) == EVERY_PARAMETER | set(TEXT_FIELDS)


def test_a_grammar_and_a_schema_are_text_and_the_schema_is_a_json_object() -> None:
    params = SamplerParams.from_mapping({"grammar": 'root ::= "a"', "json_schema": '{"type": "object"}'})
    assert params.grammar == 'root ::= "a"' and SamplerParams.from_mapping({"grammar": None}).grammar == ""
    for bad, message in (("[1, 2]", "JSON object"), ("{oops", "not valid JSON"), (7, "must be text")):
        with pytest.raises(SamplerError, match=message):
            SamplerParams.from_mapping({"json_schema": bad})
    with pytest.raises(SamplerError, match="over 65,536"):
        SamplerParams.from_mapping({"grammar": "x" * 70_000})


def test_builtins_ship_and_validate() -> None:
    presets = load_builtin_presets()
    assert {"Balanced", "Creative", "Precise", "Deterministic"} <= set(presets)
    assert presets["Deterministic"].params.top_k == 1
    assert presets["Deterministic"].params.temperature == 0.0


@pytest.mark.parametrize(
    "values, message",
    [
        ({"temperature": -0.1}, "Temperature must be between 0 and 5"),
        ({"top_p": 1.5}, "Top-p must be between"),
        ({"top_k": 2.5}, "whole number"),
        ({"mirostat_mode": 3}, "Mirostat mode"),
        ({"max_new_tokens": 0}, "Max new tokens"),
        ({"seed": "abc"}, "must be a number"),
        ({"temprature": 1.0}, "Unknown sampler setting: temprature"),
        ({"repeat_penalty": True}, "must be a number"),
    ],
)
def test_out_of_range_values_are_named(values: dict[str, object], message: str) -> None:
    with pytest.raises(SamplerError, match=message):
        SamplerParams.from_mapping(values)


def test_partial_mapping_layers_over_a_base() -> None:
    base = SamplerParams(temperature=0.3, top_k=5)
    params = SamplerParams.from_mapping({"top_k": 9}, base=base)
    assert (params.temperature, params.top_k) == (0.3, 9)
    assert isinstance(SamplerParams.from_mapping({"top_k": 9.0}).top_k, int)


def test_invalid_preset_file_names_the_problem() -> None:
    with pytest.raises(SamplerError, match="broken.json: Top-p"):
        parse_preset(
            {"schema_version": 1, "name": "x", "params": {"top_p": 7}}, source="broken.json", builtin=False
        )
    with pytest.raises(SamplerError, match="unknown field"):
        parse_preset(
            {"schema_version": 1, "name": "x", "params": {}, "extra": 1}, source="b.json", builtin=False
        )
