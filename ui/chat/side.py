"""The Chat tab's sidebar: the character (picker, gallery, import), and that character's chats."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from presets.errors import InputError
from services.chat import imports, logic
from services.chat.logic import ChatView
from services.context import AppContext
from services.models.words import md
from services.render import inert_html
from store.cards import CharacterCard, import_card, plain_png
from store.characters import CharacterSummary
from store.errors import CardFormatError
from ui.chat.widgets import EDITS, ChatWidgets, SideWidgets, Switch, read_settings
from ui.errors import notify, shown_errors, warn

NO_CHARACTER = ""  # the dropdown value for the plain assistant
CARD_TYPES = [".png", ".json", ".charx", ".yaml", ".yml"]
MAX_UPLOAD = 32 * 1024 * 1024
PLACEHOLDER_GREY = (0x9A, 0x94, 0x8F)  # a neutral warm grey, for characters without a picture
NOTES_SHOWN = 600  # characters of the creator's notes the sidebar shows


def layout(ctx: AppContext) -> SideWidgets:
    # Choices change at run time; handlers validate what comes back.
    character = gr.Dropdown(
        label="Character", choices=[], filterable=True, allow_custom_value=True, elem_id="character-choice"
    )
    avatar = gr.Image(
        show_label=False, interactive=False, height=180, visible=False, elem_id="character-avatar"
    )
    notes = gr.Markdown(elem_id="character-notes")
    with gr.Row():
        import_card_button = gr.UploadButton(
            "Import card", file_types=CARD_TYPES, size="sm", elem_id="import-card"
        )
        new_character = gr.Button("New", size="sm", elem_id="new-character")
        duplicate = gr.Button("Copy", size="sm", elem_id="duplicate-character")
    delete_character = gr.Button("Delete character", size="sm", variant="stop", elem_id="delete-character")
    with gr.Row(visible=False) as confirm_character_row:
        confirm_character = gr.Button(
            "Delete for good", size="sm", variant="stop", elem_id="confirm-delete-character"
        )
        keep_character = gr.Button("Keep", size="sm", elem_id="keep-character")
    with gr.Accordion("Gallery", open=False) as gallery_panel:
        search = gr.Textbox(
            label="Search characters", placeholder="name, tag or creator", elem_id="character-search"
        )
        gallery = gr.Gallery(
            value=lambda: gallery_items(ctx, ""),  # a callable value is filled on every page load
            show_label=False, columns=3, height=300, allow_preview=False, elem_id="character-gallery",
        )  # fmt: skip
    new_chat = gr.Button("New chat", variant="secondary", elem_id="new-chat")
    sessions = gr.Dropdown(
        label="Chats · type to search", choices=[], filterable=True,
        allow_custom_value=True, elem_id="session-list",
    )  # fmt: skip
    with gr.Row():
        rename_box = gr.Textbox(label="Title", scale=3, elem_id="rename-box")
        rename = gr.Button("Rename", scale=1, elem_id="rename")
    delete_chat = gr.Button("Delete chat", variant="stop", size="sm", elem_id="delete-chat")
    with gr.Row(visible=False) as confirm_chat_row:
        confirm_chat = gr.Button("Delete for good", variant="stop", size="sm", elem_id="confirm-delete")
        keep_chat = gr.Button("Keep it", size="sm", elem_id="cancel-delete")
    return SideWidgets(
        character, avatar, notes, gallery_panel, search, gallery, import_card_button, new_character,
        duplicate, delete_character, confirm_character_row, confirm_character, keep_character, new_chat,
        sessions, rename_box, rename, delete_chat, confirm_chat_row, confirm_chat, keep_chat,
    )  # fmt: skip


def character_values(ctx: AppContext, view: ChatView) -> tuple[Any, ...]:
    """Values for the character dropdown, avatar and notes."""
    summaries = ctx.store.characters.list()
    labels = imports.character_labels(summaries)
    choices = [("Assistant (no character)", NO_CHARACTER)] + [(labels[s.id], s.id) for s in summaries]
    dropdown = gr.update(choices=choices, value=view.character_id or NO_CHARACTER)
    if not view.character_id:
        return dropdown, gr.update(value=None, visible=False), ""
    stored = ctx.store.characters.get(view.character_id)
    card = stored.card
    avatar = str(stored.avatar_path) if stored.avatar_path else None
    return dropdown, gr.update(value=avatar, visible=avatar is not None), character_notes(card)


def character_notes(card: CharacterCard) -> str:
    """The sidebar's lines about a character, as inert HTML: name and tags are plain text,
    the creator's notes (shown, never sent to the model) are Markdown, as authors write them."""
    tags = " · ".join(md(t) for t in card.tags[:12])
    lines = [f"**{md(card.name)}**" + (f" ({md(card.nickname)})" if card.nickname else "")]
    if tags:
        lines.append(tags)
    notes = card.creator_notes.strip()
    if notes:
        cut = notes[:NOTES_SHOWN] + ("…" if len(notes) > NOTES_SHOWN else "")
        lines += ["*Creator's notes:*", cut]
    return inert_html("\n\n".join(lines))


def sessions_update(ctx: AppContext, view: ChatView) -> Any:
    """Every chat, its character named, with the view's chosen (type in the list to search it)."""
    return gr.update(choices=logic.session_choices(ctx), value=view.session_id)


def gallery_characters(ctx: AppContext, query: str) -> list[CharacterSummary]:
    """The characters the gallery shows for `query`, in its order (a selection's index points here)."""
    return ctx.store.characters.list(query or "")


def gallery_items(ctx: AppContext, query: str) -> list[tuple[str, str]]:
    """(picture path, caption) for every character matching `query`; no avatar gets the placeholder.

    Captions are plain text: the gallery shows them as text, never as HTML or Markdown.
    """
    items = []
    labels = imports.character_labels(ctx.store.characters.list())  # numbered among all, not the found
    for summary in gallery_characters(ctx, query):
        tags = f" · {', '.join(summary.tags[:3])}" if summary.tags else ""
        caption = labels.get(summary.id, summary.name) + tags
        picture = summary.avatar_path if summary.avatar_path is not None else placeholder_avatar()
        items.append((str(picture), caption))
    return items


_placeholder: dict[str, Path] = {}


def placeholder_avatar() -> Path:
    """A small neutral PNG for characters without a picture, written once per run.

    It goes to a fresh temp folder (gradio serves files from the temp dir), and is
    written again if something cleaned that folder up meanwhile.
    """
    path = _placeholder.get("path")
    if path is None or not path.is_file():
        path = Path(tempfile.mkdtemp(prefix="hearth-gallery-")) / "no-avatar.png"
        path.write_bytes(plain_png(120, 180, PLACEHOLDER_GREY))
        _placeholder["path"] = path
    return path


def wire(w: ChatWidgets, ctx: AppContext, switch: Switch) -> None:
    side = w.side
    outputs = w.switch_outputs
    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}

    @shown_errors
    def on_character(character_id: str | None) -> tuple[Any, ...]:
        return switch(logic.ensure_session(ctx, ChatView(character_id=character_id or None)))

    @shown_errors
    def on_import(upload: str | None) -> tuple[Any, ...]:
        if not upload:
            raise InputError("No file was uploaded.")
        path = Path(upload)
        if path.stat().st_size > MAX_UPLOAD:
            raise CardFormatError("That file is too big to be a character card (over 32 MB).")
        imported = import_card(path.read_bytes(), path.name)
        result = imports.import_character(ctx, imported)
        summary = result.character
        if result.existing:
            notify(f"{summary.name} is already here, so it was opened. For a second copy, use Copy.")
            return switch(logic.ensure_session(ctx, ChatView(character_id=summary.id)))
        for warning in imported.warnings:
            warn(warning)
        notify(f"Imported {summary.name}.")
        return switch(logic.new_chat(ctx, character_id=summary.id))

    @shown_errors
    def on_new_character() -> tuple[Any, ...]:
        summary = ctx.store.characters.create_blank("New character")
        return switch(logic.new_chat(ctx, character_id=summary.id))

    @shown_errors
    def on_duplicate(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        if not view.character_id:
            raise InputError("Pick a character to copy first.")
        summary = ctx.store.characters.duplicate(view.character_id)
        return switch(logic.new_chat(ctx, character_id=summary.id))

    @shown_errors
    def on_delete_character(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        if not view.character_id:
            raise InputError("The assistant is not a character and cannot be deleted.")
        ctx.store.characters.delete(view.character_id)
        return (gr.update(visible=False), *switch(ChatView()))

    side.character.input(on_character, [side.character], outputs, **quiet)
    # Each event that adds or removes a character; the gallery is refreshed after it.
    changes = [
        side.import_card.upload(on_import, [side.import_card], outputs, api_name="import_card", **EDITS),
        side.new_character.click(on_new_character, None, outputs, **quiet),
        side.duplicate.click(on_duplicate, [w.view], outputs, **quiet),
        side.confirm_character.click(
            on_delete_character, [w.view], [side.confirm_character_row, *outputs], **quiet
        ),
    ]
    side.delete_character.click(lambda: gr.update(visible=True), None, side.confirm_character_row, **quiet)
    side.keep_character.click(lambda: gr.update(visible=False), None, side.confirm_character_row, **quiet)
    _wire_gallery(w, ctx, switch, changes)
    _wire_chats(w, ctx, switch)


def _wire_gallery(w: ChatWidgets, ctx: AppContext, switch: Switch, changes: list[Any]) -> None:
    side = w.side
    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}

    def refresh(query: str) -> list[tuple[str, str]]:
        return gallery_items(ctx, query)

    @shown_errors
    def on_gallery(query: str, evt: gr.SelectData) -> tuple[Any, ...]:
        listed = gallery_characters(ctx, query)
        if not 0 <= evt.index < len(listed):
            raise InputError("That character is no longer there.")
        return switch(logic.ensure_session(ctx, ChatView(character_id=listed[evt.index].id)))

    # Opening the gallery shows the characters as they are now (edits, other windows).
    side.gallery_panel.expand(refresh, [side.search], [side.gallery], api_visibility="undocumented")
    for event in changes:
        event.then(refresh, [side.search], [side.gallery], **quiet)
    side.search.change(refresh, [side.search], [side.gallery], **quiet)
    side.gallery.select(on_gallery, [side.search], w.switch_outputs, **quiet)


def _wire_chats(w: ChatWidgets, ctx: AppContext, switch: Switch) -> None:
    side = w.side
    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}

    @shown_errors
    def on_new(*values: Any) -> tuple[Any, ...]:
        view, settings = read_settings(values)
        character_id = view.character_id if view else None
        return switch(logic.next_chat(ctx, settings, character_id))

    @shown_errors
    def on_select(view: ChatView | None, session_id: str) -> tuple[Any, ...]:
        return switch(logic.open_chat(ctx, session_id) if session_id else logic.ensure_session(ctx, view))

    @shown_errors
    def on_rename(view: ChatView | None, title: str) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        logic.rename(ctx, view, title)
        return sessions_update(ctx, view), ""

    @shown_errors
    def on_delete(view: ChatView | None) -> tuple[Any, ...]:
        view = logic.delete(ctx, logic.ensure_session(ctx, view))
        return (gr.update(visible=False), *switch(view))

    side.new_chat.click(on_new, w.settings_inputs, w.switch_outputs, api_name="new_chat", **EDITS)
    side.sessions.input(on_select, [w.view, side.sessions], w.switch_outputs, **quiet)
    side.rename.click(
        on_rename, [w.view, side.rename_box], [side.sessions, side.rename_box], api_name="rename", **EDITS
    )
    side.delete_chat.click(lambda: gr.update(visible=True), None, side.confirm_chat_row, **quiet)
    side.keep_chat.click(lambda: gr.update(visible=False), None, side.confirm_chat_row, **quiet)
    side.confirm_chat.click(
        on_delete, [w.view], [side.confirm_chat_row, *w.switch_outputs], api_name="delete_chat", **EDITS
    )
