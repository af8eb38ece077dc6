"""The list of stories (or adventures) beside each tab: open, new, rename, duplicate,
delete with confirmation, and files in and out (Kobold saves, plain text)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import gradio as gr

from engine.run import Run
from services.context import AppContext
from services.files import download_file, read_upload
from services.story import logic
from services.story.logic import StoryView
from store.stories import (
    Mode,
    StoredStory,
    Story,
    dumps_story,
    load_story_file,
    story_from_text,
    to_plain_text,
)
from ui.errors import notify, shown_errors, warn
from ui.shared import owner_of

Show = Callable[[StoryView, StoredStory], tuple[Any, ...]]
EXPORTS = [
    ("Kobold Lite (.json)", "lite"),
    ("KoboldAI United (.json)", "united"),
    ("Plain text (.txt)", "text"),
]


@dataclass
class ListWidgets:
    menu: gr.Button
    choice: gr.Dropdown
    new: gr.Button
    title: gr.Textbox
    rename: gr.Button
    duplicate: gr.Button
    delete: gr.Button
    confirm_row: gr.Row
    confirm: gr.Button
    keep: gr.Button
    upload: gr.UploadButton
    export_kind: gr.Dropdown
    export: gr.Button
    download: gr.File
    last: gr.BrowserState  # the story this browser was last in, to reopen it


def menu(prefix: str, plural: str) -> gr.Button:
    """The button that shows the side column on a phone, where it folds away (the page's
    script, ui/script.py); above the tab, in a row of its own that only a phone shows."""
    with gr.Row(elem_id=f"{prefix}-top", elem_classes="hearth-menu"):
        label = f"☰ {plural.capitalize()}"
        return gr.Button(label, size="sm", scale=0, min_width=80, elem_id=f"{prefix}-menu")


def layout(menu: gr.Button, prefix: str, noun: str, plural: str) -> ListWidgets:
    """The side column's widgets, and `menu`, which shows them on a phone; `noun` is
    "story" or "adventure"."""
    choice = gr.Dropdown(label=f"Your {plural}", filterable=True, elem_id=f"{prefix}-list")
    new = gr.Button(f"New {noun}", variant="primary", size="sm", elem_id=f"{prefix}-new")
    title = gr.Textbox(label="Title", elem_id=f"{prefix}-title")
    with gr.Row():
        rename = gr.Button("Rename", size="sm", elem_id=f"{prefix}-rename")
        duplicate = gr.Button("Duplicate", size="sm", elem_id=f"{prefix}-duplicate")
        delete = gr.Button("Delete", size="sm", variant="stop", elem_id=f"{prefix}-delete")
    with gr.Row(visible=False) as confirm_row:
        confirm = gr.Button("Delete for good", size="sm", variant="stop", elem_id=f"{prefix}-confirm-delete")
        keep = gr.Button("Keep it", size="sm")
    with gr.Accordion("Files", open=False):
        upload = gr.UploadButton(
            "Import a Kobold save or a .txt",
            file_types=[".json", ".txt"],
            size="sm",
            elem_id=f"{prefix}-import",
        )
        export_kind = gr.Dropdown(EXPORTS, value="lite", label="Export as", elem_id=f"{prefix}-export-kind")
        export = gr.Button("Export", size="sm", elem_id=f"{prefix}-export")
        download = gr.File(label="Download", visible=False, interactive=False, elem_id=f"{prefix}-download")
    return ListWidgets(
        menu,
        choice,
        new,
        title,
        rename,
        duplicate,
        delete,
        confirm_row,
        confirm,
        keep,
        upload,
        export_kind,
        export,
        download,
        # Rendered by the page, outside the tabs (ui/page.py); the secret is fixed as the
        # chat's is (ui/chat/tab.py), so that what a browser remembers reads after a restart.
        gr.BrowserState(
            None, storage_key=f"hearth-last-{prefix}", secret=f"hearth-last-{prefix}", render=False
        ),
    )


def list_update(ctx: AppContext, mode: Mode, selected: str) -> Any:
    choices = [(s.title, s.id) for s in logic.stories(ctx).list(mode)]
    return gr.update(choices=choices, value=selected)


def wire(
    w: ListWidgets, ctx: AppContext, mode: Mode, state: gr.State, outputs: list[Any], show: Show
) -> None:
    """Wire the list. `outputs` starts with the state and the list; `show` fills them all."""
    quiet: dict[str, Any] = {"show_progress": "hidden", "api_visibility": "undocumented"}
    w.menu.click(None, js=f"() => window.hearth.toggleMenu('{mode}')")
    # The browser keeps the story it was last in, so reopening the app opens it again.
    state.change(
        lambda view: view.story_id if view else None, [state], [w.last],
        queue=False, show_progress="hidden", api_visibility="undocumented",
    )  # fmt: skip

    @shown_errors
    def on_open(story_id: str | None) -> tuple[Any, ...]:
        stored = logic.open_story(ctx, mode, story_id)
        return show(StoryView(stored.id), stored)

    @shown_errors
    def on_new() -> tuple[Any, ...]:
        stored = logic.stories(ctx).create(Story(mode=mode))
        return show(StoryView(stored.id), stored)

    @shown_errors
    def on_rename(view: StoryView | None, title: str) -> tuple[Any, ...]:
        view, stored = logic.current(ctx, view, mode)
        return show(view, logic.stories(ctx).rename(stored.id, title))

    @shown_errors
    def on_duplicate(view: StoryView | None) -> tuple[Any, ...]:
        view, stored = logic.current(ctx, view, mode)
        copy = logic.stories(ctx).duplicate(stored.id)
        return show(StoryView(copy.id), copy)

    @shown_errors
    def on_delete(view: StoryView | None) -> tuple[Any, ...]:
        view, stored = logic.current(ctx, view, mode)
        logic.stories(ctx).delete(stored.id)
        notify(f"Deleted “{stored.story.title}”.")
        following = logic.open_story(ctx, mode)
        return (gr.update(visible=False), *show(StoryView(following.id), following))

    @shown_errors
    def on_import(upload: str | None) -> tuple[Any, ...]:
        data = read_upload(upload)
        name = Path(upload or "").stem
        if Path(upload or "").suffix.lower() == ".txt":
            story = story_from_text(data.decode("utf-8", errors="replace"), title=name)
        else:
            story = load_story_file(data, title=name)
        stored = logic.stories(ctx).create(_as_mode(story, mode))
        notify(f"Imported “{stored.story.title}” ({len(stored.story.chunks)} parts).")
        return show(StoryView(stored.id), stored)

    @shown_errors
    def on_export(view: StoryView | None, kind: str) -> Any:
        _view, stored = logic.current(ctx, view, mode)
        story = stored.story
        if kind == "text":
            data, extension = to_plain_text(story).encode(), "txt"
        else:
            data, extension = dumps_story(story, "united" if kind == "united" else "lite").encode(), "json"
        return gr.update(value=str(download_file(story.title, extension, data)), visible=True)

    w.choice.input(on_open, [w.choice], outputs, **quiet)
    w.new.click(on_new, None, outputs, **quiet)
    w.rename.click(on_rename, [state, w.title], outputs, **quiet)
    w.title.submit(on_rename, [state, w.title], outputs, **quiet)
    w.duplicate.click(on_duplicate, [state], outputs, **quiet)
    w.delete.click(lambda: gr.update(visible=True), None, w.confirm_row, **quiet)
    w.keep.click(lambda: gr.update(visible=False), None, w.confirm_row, **quiet)
    w.confirm.click(on_delete, [state], [w.confirm_row, *outputs], **quiet)
    w.upload.upload(on_import, [w.upload], outputs, **quiet)
    w.export.click(on_export, [state, w.export_kind], [w.download], **quiet)


def _as_mode(story: Story, mode: Mode) -> Story:
    """An import opens in the tab it was imported into (a Kobold save says its own mode,
    but the player chose where to play it)."""
    return story if story.mode == mode else replace(story, mode=mode)


def done_fn(ctx: AppContext, mode: Mode, show: Show) -> Callable[..., tuple[Any, ...]]:
    """Show the story as saved (after a run, its reply is in it)."""

    @shown_errors
    def done(view: StoryView | None) -> tuple[Any, ...]:
        view, stored = logic.current(ctx, view, mode)
        return show(view, stored)

    return done


def stop_fn(ctx: AppContext, mode: Mode, show: Show) -> Callable[..., tuple[Any, ...]]:
    """Stop this browser's run, wait for its partial reply to be saved, then show it."""

    @shown_errors
    def stop(view: StoryView | None, request: gr.Request) -> tuple[Any, ...]:
        ctx.models.stop_and_wait(owner_of(request))
        view, stored = logic.current(ctx, view, mode)
        return show(view, stored)

    return stop


def report_failures(run: Run) -> None:
    """Say what went wrong with a finished run (the model failed, or its reply was not
    saved) in a toast. Never raised: in Gradio 6 an error ends the chain of events, and
    the tab would stay busy with the unfinished text showing."""
    problems = [f"The reply could not be saved: {problem}" for problem in run.callback_errors]
    if run.error is not None:
        problems.append(f"The model failed while writing: {run.error}")
    if problems:
        warn(" ".join(problems))


def load_fn(ctx: AppContext, mode: Mode, show: Show) -> Callable[[StoryView | None], tuple[Any, ...]]:
    """The tab's page-load handler: the story this window had open, else the one this
    browser was last in, else the newest."""

    @shown_errors
    def on_load(view: StoryView | None, last_story: Any = None) -> tuple[Any, ...]:
        ctx.wait_ready()
        view, stored = logic.reopen(ctx, view, mode, last_story)
        return show(view, stored)

    return on_load
