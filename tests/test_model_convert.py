"""Converting a legacy GGML file from the Models tab, without a browser.

The flow the Convert panel runs: examine a dropped or listed file, suggest its
metadata from the catalog, turn the form into options, convert on a job thread with
progress and Cancel, put the GGUF in the library under converted/, and load it.
"""

from __future__ import annotations

import re
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gguf import GGMLQuantizationType as T

from catalog.errors import ConversionError
from catalog.ggml import ConvertOptions, NotALegacyModelError, convert_to_gguf
from engine.gguf import model_info
from engine.prompts.adventure import InputKind
from ggml_writer import GPT2_SMALL, write_gpt2, write_gpt2_model, write_llama
from presets.samplers import SamplerParams
from services.context import AppContext, Settings, create_context
from services.models import convert as logic
from services.models.logic import JobBoard, library_rows
from services.story import adventure as play
from services.story import logic as story_logic
from services.story.logic import StoryView
from ui.models.convert import discard_upload

MYTHO_BIN = "mythomax-l2-13b.ggmlv3.q8_0.bin"


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[AppContext]:
    """A real-engine context (the converted tiny model loads in milliseconds), no model loaded."""
    context = create_context(Settings(data_dir=tmp_path / "data", load_model=False, n_ctx=512, threads=1))
    yield context
    context.models.unload()
    context.store.close()


def upload(tmp_path: Path, name: str = MYTHO_BIN) -> Path:
    """A legacy file where Gradio would have put an upload."""
    folder = tmp_path / "gradio-cache" / "0123abcd"
    folder.mkdir(parents=True)
    return write_llama(folder / name, weight_type=T.Q8_0)


def form(pending: logic.PendingConversion, **changes: object) -> logic.FormValues:
    values = logic.form_values(pending)
    return logic.FormValues(**{**values.__dict__, **changes})  # type: ignore[arg-type]


def test_a_dropped_catalog_file_is_described_with_the_catalogs_facts(ctx: AppContext, tmp_path: Path) -> None:
    examined = logic.examine(ctx, upload(tmp_path), "upload")
    assert examined.convertible and examined.pending is not None
    values = logic.form_values(examined.pending)
    # The catalog's MythoMax entry: a Llama 2 model, 4096 tokens, Alpaca.
    assert values == logic.FormValues("MythoMax-L2-13B", 4096, "1e-5", 2, 10000.0, "alpaca")
    assert examined.pending.output_name == "mythomax-l2-13b.q8_0.gguf"
    text = logic.describe_markdown(ctx, examined)
    for fact in (
        "GGJT v3",
        "| Quantization | Q8_0 |",
        "Llama, ",
        "2 layers",
        "feed-forward 128",
        "263 tokens",
    ):
        assert fact in text, fact
    assert "| Catalog | MythoMax L2 13B |" in text
    assert "TheBloke/MythoMax-L2-13B-GGUF" in examined.message  # converting is optional
    assert "Prompt format alpaca: the catalog's recommendation for MythoMax L2 13B." in text


def test_an_unknown_file_gets_guesses_from_its_shape(ctx: AppContext, tmp_path: Path) -> None:
    examined = logic.examine(ctx, upload(tmp_path, "my model (v2)!.ggmlv3.q8_0.bin"), "upload")
    assert examined.pending is not None
    values = logic.form_values(examined.pending)
    # Its key/value heads are shared (GQA 2), which in 2023 only Llama 2 did.
    assert (values.context_length, values.rms_epsilon, values.prompt_format_id) == (4096, "1e-5", "plain")
    assert examined.pending.output_name == "my-model-v2-.q8_0.gguf"  # reduced to safe characters
    assert "Catalog" not in logic.describe_markdown(ctx, examined)


def test_refused_files_name_the_catalogs_gguf_alternative(ctx: AppContext, tmp_path: Path) -> None:
    old = write_llama(
        tmp_path / "mythomax-l2-13b.ggmlv2.q4_0.bin", container="GGJT", version=2, weight_type=T.Q4_0
    )
    examined = logic.examine(ctx, old, "library", "0123456789abcdef")
    assert not examined.convertible
    assert "before May 2023" in examined.message
    assert (
        "The catalog has this model as GGUF: MythoMax L2 13B (TheBloke/MythoMax-L2-13B-GGUF)"
        in examined.message
    )
    assert "Quantization | Q4_0" in logic.describe_markdown(ctx, examined)
    gpt2 = logic.examine(ctx, write_gpt2(tmp_path / "AI-Dungeon-2-Classic.bin"), "upload")
    assert "merge rules" in gpt2.message and gpt2.message.count("Spring-Dragon-GGUF") == 1
    assert "GPT-2" in logic.describe_markdown(ctx, gpt2)
    notes = tmp_path / "notes.bin"
    notes.write_text("not a model")
    with pytest.raises(NotALegacyModelError):
        logic.examine(ctx, notes, "upload")


def test_form_values_become_checked_options(ctx: AppContext, tmp_path: Path) -> None:
    pending = logic.examine(ctx, upload(tmp_path), "upload").pending
    assert pending is not None
    options = logic.options_from_form(ctx, pending, form(pending, rms_epsilon="1e-6", rope_freq_base=1e6))
    assert (options.rms_epsilon, options.rope_freq_base, options.gqa) == (1e-6, 1e6, 2)
    assert logic.options_from_form(ctx, pending, form(pending, gqa=None)).gqa == 2  # read from the tensors
    assert logic.options_from_form(ctx, pending, form(pending)).rope_freq_base is None  # llama.cpp's default
    with pytest.raises(ConversionError, match="not a number"):
        logic.options_from_form(ctx, pending, form(pending, rms_epsilon="tiny"))
    with pytest.raises(ConversionError, match="Type the context length"):
        logic.options_from_form(ctx, pending, form(pending, context_length=None))
    with pytest.raises(ConversionError, match="needs a name"):
        logic.options_from_form(ctx, pending, form(pending, name="  "))
    with pytest.raises(ConversionError, match="prompt format"):
        logic.options_from_form(ctx, pending, form(pending, prompt_format_id="nonsense"))


def test_convert_and_load_from_an_upload(ctx: AppContext, tmp_path: Path) -> None:
    dropped = upload(tmp_path)
    pending = logic.examine(ctx, dropped, "upload").pending
    assert pending is not None
    options = logic.options_from_form(ctx, pending, form(pending, prompt_format_id="vicuna-1.1"))
    outcome = logic.ConversionOutcome()
    lines = list(logic.convert_and_load(ctx, JobBoard("conversion"), "alice", pending, options, outcome))
    converted = ctx.library.converted_dir / "mythomax-l2-13b.q8_0.gguf"
    assert outcome.loaded is not None and outcome.loaded.path == str(converted)
    assert lines[0] == f"Converting **{MYTHO_BIN}**…"
    assert lines[-1].startswith("Converted to **mythomax-l2-13b.q8_0.gguf** ████████████████████ 100%.")
    assert "Loaded **MythoMax-L2-13B** with the Vicuna 1.1 format (chosen when converting)" in lines[-1]
    assert ctx.models.info is not None and ctx.models.info.path == str(converted)
    assert ctx.models.backend.n_ctx == 512  # the settings' context, within the model's 4096
    assert model_info(converted).context_length == 4096
    assert not dropped.exists()  # Hearth's upload copy is gone; the user's own file was never touched
    item = next(i for i in ctx.library.items() if i.path == converted)
    assert (item.source, item.name, item.usable) == ("converted", "MythoMax L2 13B", True)
    assert library_rows([item])[0][1] == "converted"


def test_a_listed_legacy_file_is_forgotten_once_converted_but_kept_on_disk(
    ctx: AppContext, tmp_path: Path
) -> None:
    (tmp_path / "elsewhere").mkdir()
    legacy = write_llama(tmp_path / "elsewhere" / "tiny.bin")
    item = ctx.library.add(legacy)
    assert item.needs_conversion
    pending = logic.examine(ctx, item.path, "library", item.id).pending
    assert pending is not None
    options = logic.options_from_form(ctx, pending, form(pending))
    lines = list(logic.convert_and_load(ctx, JobBoard("conversion"), "bob", pending, options))
    assert "Loaded **tiny**" in lines[-1]
    assert legacy.is_file()
    assert [i.source for i in ctx.library.items() if i.source != "bundled"] == ["converted"]
    # A second conversion of the same file gets its own name.
    again = logic.examine(ctx, legacy, "library").pending
    assert again is not None
    list(logic.convert_and_load(ctx, JobBoard("conversion"), "bob", again, options))
    assert sorted(p.name for p in ctx.library.converted_dir.iterdir()) == ["tiny-2.gguf", "tiny.gguf"]


def test_cancel_stops_only_that_windows_conversion(
    ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = JobBoard("conversion")
    real = convert_to_gguf

    def cancelled_midway(src: Path, dst: Path, options: ConvertOptions, **kw: object) -> Path:
        assert not jobs.cancel("someone-else")
        assert jobs.cancel("alice")
        return real(src, dst, options, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(logic, "convert_to_gguf", cancelled_midway)
    dropped = upload(tmp_path)
    pending = logic.examine(ctx, dropped, "upload").pending
    assert pending is not None
    lines = list(logic.convert_and_load(ctx, jobs, "alice", pending, pending.suggested))
    assert lines[-1].startswith("Conversion cancelled. Nothing was written")
    assert list(ctx.library.converted_dir.iterdir()) == []
    assert dropped.is_file()  # kept, so Convert can be pressed again
    assert ctx.models.info is None


def test_a_failed_conversion_raises_its_named_error(ctx: AppContext, tmp_path: Path) -> None:
    dropped = upload(tmp_path)
    pending = logic.examine(ctx, dropped, "upload").pending
    assert pending is not None
    dropped.write_bytes(dropped.read_bytes()[:-100])  # the file changed on disk since it was examined
    with pytest.raises(ConversionError, match="cut short"):
        list(logic.convert_and_load(ctx, JobBoard("conversion"), "alice", pending, pending.suggested))
    assert list(ctx.library.converted_dir.iterdir()) == []


def test_library_takes_a_legacy_file_misnamed_gguf(ctx: AppContext, tmp_path: Path) -> None:
    misnamed = tmp_path / "llama-7b.gguf"
    misnamed.write_bytes(b"tjgg" + struct.pack("<I", 3) + b"\0" * 64)
    item = ctx.library.add(misnamed)
    assert item.needs_conversion and item.architecture == "legacy GGJT v3" and not item.error
    assert library_rows([item])[0][-1] == "legacy GGML: select it to convert it to GGUF"


def test_converted_models_can_be_deleted(ctx: AppContext, tmp_path: Path) -> None:
    ctx.library.converted_dir.mkdir(parents=True)
    legacy = write_llama(tmp_path / "tiny.bin")
    converted = convert_to_gguf(legacy, ctx.library.converted_dir / "tiny.gguf", ConvertOptions(name="tiny"))
    item = next(i for i in ctx.library.items() if i.source == "converted")
    assert ctx.library.add(converted).id == item.id  # adding it by path finds the same item
    ctx.library.delete(item.id)
    assert not converted.exists() and legacy.is_file()


@pytest.mark.parametrize(
    ("value", "text"), [(1e-5, "1e-5"), (1e-6, "1e-6"), (5e-6, "5e-6"), (1.5e-6, "1.5e-06")]
)
def test_epsilon_text(value: float, text: str) -> None:
    assert logic.epsilon_text(value) == text
    assert float(text) == value


def test_only_upload_copies_are_ever_discarded(ctx: AppContext, tmp_path: Path) -> None:
    dropped = upload(tmp_path)
    mine = write_llama(tmp_path / "mine.bin")
    for path, origin in ((mine, "library"), (dropped, "upload")):
        pending = logic.examine(ctx, path, origin).pending  # type: ignore[arg-type]
        discard_upload(pending)
    discard_upload(None)
    assert mine.is_file() and not dropped.exists()


def test_output_names_are_claimed_while_converting(tmp_path: Path) -> None:
    first = logic.claim_output_path(tmp_path, "tiny.gguf")
    second = logic.claim_output_path(tmp_path, "tiny.gguf")  # another window, same file, same moment
    assert (first.name, second.name) == ("tiny.gguf", "tiny-2.gguf")
    logic.release_output_path(first)
    logic.release_output_path(second)
    (tmp_path / "tiny.gguf").write_bytes(b"done")
    third = logic.claim_output_path(tmp_path, "tiny.gguf")
    assert third.name == "tiny-2.gguf"
    logic.release_output_path(third)


def test_progress_lines_carry_a_bar_and_the_tensor_being_copied(
    ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = convert_to_gguf

    def slowed(src: Path, dst: Path, options: ConvertOptions, *, progress: Any, cancel: Any) -> Path:
        def report(fraction: float, words: str) -> None:
            progress(fraction, words)
            time.sleep(0.05)  # each tensor takes a while, so the page sees the bar move

        return real(src, dst, options, progress=report, cancel=cancel)

    monkeypatch.setattr(logic, "convert_to_gguf", slowed)
    pending = logic.examine(ctx, upload(tmp_path), "upload").pending
    assert pending is not None
    lines = list(logic.convert_and_load(ctx, JobBoard("conversion"), "alice", pending, pending.suggested))
    moving = [line for line in lines if line.startswith(f"Converting **{MYTHO_BIN}**: ")]
    assert moving, lines
    assert any(re.search(r"█+░+ \d+% · Copying tensor \d+ of 21 \(", line) for line in moving), moving
    assert lines[-1].startswith("Converted to")


def test_leftovers_of_a_cut_short_conversion_go_at_start(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "models" / "converted"
    folder.mkdir(parents=True)
    leftover = folder / ".mythomax.gguf.0123abcd.converting"
    leftover.write_bytes(b"half a model")
    finished = folder / "mythomax.gguf"
    finished.write_bytes(b"GGUF")
    context = create_context(Settings(data_dir=tmp_path / "data", load_model=False))
    try:
        assert context.library.converted_dir == folder
        assert not leftover.exists() and finished.read_bytes() == b"GGUF"
    finally:
        context.store.close()


def test_ai_dungeon_classic_converts_and_plays_in_adventure(ctx: AppContext, tmp_path: Path) -> None:
    folder = tmp_path / "gradio-cache" / "4567cdef"
    folder.mkdir(parents=True)
    dropped = write_gpt2_model(folder / "AI-Dungeon-2-Classic.bin")
    examined = logic.examine(ctx, dropped, "upload")
    pending = examined.pending
    assert pending is not None and pending.gpt2
    assert logic.architecture_text(examined.model).startswith("GPT-2: ")
    assert pending.suggested.context_length == GPT2_SMALL.n_ctx  # fixed by its position embeddings
    with pytest.raises(ConversionError, match="cannot be raised"):
        logic.options_from_form(ctx, pending, form(pending, context_length=4096))
    options = logic.options_from_form(ctx, pending, form(pending))
    outcome = logic.ConversionOutcome()
    list(logic.convert_and_load(ctx, JobBoard("conversion"), "alice", pending, options, outcome))
    assert outcome.loaded is not None and outcome.loaded.architecture == "gpt2"
    detected = ctx.detected_format()
    assert (detected.catalog_id, detected.default_tab) == ("ai-dungeon-classic", "adventure")
    # A turn of play on the converted model.
    own = play.scenario_by_id(play.CUSTOM, "${your name} wakes in a cave.", "")
    view = StoryView(play.begin(ctx, own, {"your name": "Quill"}).id)
    play.act(ctx, view, InputKind.DO, "light a torch")
    params = SamplerParams(max_new_tokens=8, temperature=0.0, top_k=1)
    run = story_logic.start(ctx, view, "adventure", params, "alice", "generate")[1]
    finish = run.wait(60)
    assert run.error is None and finish.usage.completion_tokens > 0  # random weights: any words
    assert "> You light a torch." in run.request.prompt
    story = story_logic.stories(ctx).get(view.story_id or "").story
    assert "> You light a torch." in story.full_text()
