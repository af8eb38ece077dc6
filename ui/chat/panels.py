"""The Chat tab's panels: the character editor, personas, world books, and chat files."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from presets.errors import InputError
from services.chat import character_edit, imports, logic
from services.chat.characters import chat_persona, lock_persona, speaker_names
from services.chat.logic import ChatView
from services.context import AppContext
from services.files import download_file, read_upload
from services.models.words import md
from store.cards import export_charx, export_json, export_png_report
from store.chats import export_jsonl, export_text, import_chat
from ui.chat import side as chat_side
from ui.chat.widgets import EDITS, ChatWidgets, PanelWidgets, Switch
from ui.errors import notify, shown_errors, warn


def layout(ctx: AppContext) -> PanelWidgets:
    with gr.Accordion("Character editor", open=False, elem_id="character-editor"):
        labels = {
            "name": "Name", "nickname": "Nickname (V3: replaces the name in {{char}})",
            "description": "Description", "personality": "Personality", "scenario": "Scenario",
            "first_mes": "First message", "mes_example": "Example dialogue (<START> between examples)",
            "system_prompt": "System prompt ({{original}} = the global one)",
            "post_history_instructions": "Post-history instructions",
            "creator_notes": "Creator's notes (never sent)",
            "creator": "Creator", "character_version": "Version",
        }  # fmt: skip
        short = ("name", "nickname", "creator", "character_version")
        fields: list[Any] = [
            gr.Textbox(label=labels[name], lines=1 if name in short else 3, elem_id=f"edit-{name}")
            for name in character_edit.TEXT_FIELDS
        ]
        fields.append(
            gr.Dataframe(headers=["Alternate greeting"], datatype=["str"], column_count=1,
                         interactive=True, label="Alternate greetings (swipes of the first message)",
                         elem_id="edit-greetings")
        )  # fmt: skip
        fields.append(gr.Textbox(label="Tags (comma separated)", elem_id="edit-tags"))
        fields.append(
            gr.Dataframe(headers=character_edit.LORE_COLUMNS, datatype=character_edit.LORE_TYPES,
                         column_count=len(character_edit.LORE_COLUMNS), interactive=True,
                         label="Lorebook entries", elem_id="edit-lore")
        )  # fmt: skip
        avatar_upload = gr.Image(label="New avatar", type="filepath", height=160, elem_id="edit-avatar")
        with gr.Row():
            save_character = gr.Button("Save character", variant="primary", elem_id="save-character")
            export_png_button = gr.Button("Export card (PNG)", elem_id="export-png")
            export_json_button = gr.Button("Export card (JSON)", elem_id="export-json")
            # CHARX is the one format that keeps a card's asset files (emotions, backgrounds...).
            export_charx_button = gr.Button("Export card (CHARX)", elem_id="export-charx")
    with gr.Accordion("Persona (you)", open=False, elem_id="persona-panel"):
        persona = gr.Dropdown(label="Persona", choices=[], allow_custom_value=True, elem_id="persona-choice")
        persona_name = gr.Textbox(label="Name ({{user}})", elem_id="persona-name")
        persona_description = gr.Textbox(
            label="Description (goes into the prompt)", lines=2, elem_id="persona-description"
        )
        persona_avatar = gr.Image(label="Avatar", type="filepath", height=120, elem_id="persona-avatar")
        with gr.Row():
            persona_save = gr.Button("Save persona", size="sm", elem_id="persona-save")
            persona_new = gr.Button("New persona", size="sm", elem_id="persona-new")
            persona_default = gr.Button("Make default", size="sm", elem_id="persona-default")
        persona_lock = gr.Checkbox(label="Use this persona in this chat only", elem_id="persona-lock")
    with gr.Accordion("World books", open=False, elem_id="world-panel"):
        worlds = gr.CheckboxGroup(label="Enabled in every chat", choices=[], elem_id="world-books")
        world_upload = gr.UploadButton(
            "Import a world book", file_types=[".json"], size="sm", elem_id="world-import"
        )
    with gr.Accordion("Chat files", open=False, elem_id="files-panel"):
        with gr.Row():
            export_chat = gr.Button("Export chat (SillyTavern JSONL)", size="sm", elem_id="export-chat")
            export_chat_text = gr.Button("Export as text", size="sm", elem_id="export-chat-text")
            import_chat_button = gr.UploadButton(
                "Import a chat", file_types=[".jsonl", ".json"], size="sm", elem_id="import-chat"
            )
        # Shown when an imported chat names a character that no single character here matches.
        with gr.Row(visible=False, elem_id="attach-row") as attach_row:
            attach_note = gr.Markdown(elem_id="attach-note")
            # Choices change at run time; the handler checks the character still exists.
            attach_choice = gr.Dropdown(
                label="Attach this chat to", choices=[], allow_custom_value=True, elem_id="attach-choice"
            )
            attach = gr.Button("Attach", size="sm", scale=0, min_width=90, elem_id="attach-chat")
        attach_session = gr.State(None)  # the imported chat the question is about
    download = gr.File(label="Download", visible=False, interactive=False, elem_id="download")
    return PanelWidgets(
        fields, avatar_upload, save_character, export_png_button, export_json_button, export_charx_button,
        persona, persona_name,
        persona_description, persona_save, persona_new, persona_default, persona_lock, persona_avatar, worlds,
        world_upload,
        export_chat, export_chat_text, import_chat_button, download, attach_row, attach_note, attach_choice,
        attach, attach_session,
    )  # fmt: skip


def values(ctx: AppContext, view: ChatView) -> tuple[Any, ...]:
    """Values for `PanelWidgets.outputs`."""
    card = ctx.store.characters.get(view.character_id).card if view.character_id else None
    session = ctx.store.sessions.get(view.session_id)
    persona = chat_persona(ctx, session)
    personas = [(p.name, p.id) for p in ctx.store.personas.list()]
    books = ctx.store.worlds.list()
    return (
        *character_edit.field_values(card),
        gr.update(choices=personas, value=persona.id),
        persona.name,
        persona.description,
        "persona_id" in session.extra,
        _avatar(ctx, persona.id),
        gr.update(choices=[(b.name, b.id) for b in books], value=[b.id for b in books if b.enabled]),
    )


def wire(w: ChatWidgets, ctx: AppContext, switch: Switch) -> None:
    _wire_editor(w, ctx, switch)
    _wire_persona(w, ctx)
    _wire_files(w, ctx, switch)


def _wire_editor(w: ChatWidgets, ctx: AppContext, switch: Switch) -> None:
    p = w.panels

    @shown_errors
    def on_save(view: ChatView | None, avatar: str | None, *fields: Any) -> tuple[Any, ...]:
        view = _character_view(ctx, view)
        assert view.character_id is not None
        stored = ctx.store.characters.get(view.character_id)
        ctx.store.characters.save(view.character_id, character_edit.apply_fields(stored.card, list(fields)))
        if avatar:
            ctx.store.characters.set_avatar(view.character_id, _png_bytes(Path(avatar)))
        notify("Character saved.")
        return (None, *switch(view))

    @shown_errors
    def on_export(view: ChatView | None, kind: str) -> Any:
        view = _character_view(ctx, view)
        assert view.character_id is not None
        stored = ctx.store.characters.get(view.character_id)
        if kind == "png":
            report = export_png_report(stored.card, stored.avatar_png(), asset_files=stored.asset_files())
            for note in report.notes:
                warn(note)
            data = report.data
        elif kind == "charx":
            data = export_charx(stored.card, stored.avatar_png(), stored.asset_files())
        else:
            data = export_json(stored.card)
        return gr.update(value=str(download_file(stored.card.name, kind, data)), visible=True)

    save_inputs = [w.view, p.avatar_upload, *p.fields]
    saved = p.save_character.click(
        on_save, save_inputs, [p.avatar_upload, *w.switch_outputs], api_name="save_character", **EDITS
    )
    # A new name or picture shows in an open gallery at once.
    saved.then(
        lambda query: chat_side.gallery_items(ctx, query),
        [w.side.search],
        [w.side.gallery],
        api_visibility="undocumented",
    )
    p.export_png.click(lambda v: on_export(v, "png"), [w.view], [p.download], api_name="export_card_png")
    p.export_json.click(lambda v: on_export(v, "json"), [w.view], [p.download], api_name="export_card_json")
    p.export_charx.click(
        lambda v: on_export(v, "charx"), [w.view], [p.download], api_name="export_card_charx"
    )


def _wire_persona(w: ChatWidgets, ctx: AppContext) -> None:
    p = w.panels
    quiet: dict[str, Any] = {"api_visibility": "undocumented", **EDITS}
    outputs = [p.persona, p.persona_name, p.persona_description, p.persona_lock, p.persona_avatar]

    def shown(view: ChatView, persona_id: str) -> tuple[Any, ...]:
        persona = ctx.store.personas.get(persona_id)
        session = ctx.store.sessions.get(view.session_id)
        choices = [(x.name, x.id) for x in ctx.store.personas.list()]
        locked = session.extra.get("persona_id") == persona.id
        picked = gr.update(choices=choices, value=persona.id)
        return picked, persona.name, persona.description, locked, _avatar(ctx, persona.id)

    @shown_errors
    def on_pick(view: ChatView | None, persona_id: str) -> tuple[Any, ...]:
        return shown(logic.ensure_session(ctx, view), persona_id)

    @shown_errors
    def on_save(
        view: ChatView | None, persona_id: str, name: str, description: str, lock: bool, avatar: str | None
    ) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        persona = ctx.store.personas.save(persona_id, name=name, description=description)
        current = ctx.store.personas.avatar_path(persona.id)
        if avatar and (current is None or Path(avatar).resolve() != current.resolve()):
            ctx.store.personas.set_avatar(persona.id, _png_bytes(Path(avatar)))
        lock_persona(ctx, view.session_id, persona.id if lock else None)
        notify(f"Saved {persona.name}.")
        return shown(view, persona.id)

    @shown_errors
    def on_new(view: ChatView | None) -> tuple[Any, ...]:
        persona = ctx.store.personas.create("New persona")
        return shown(logic.ensure_session(ctx, view), persona.id)

    @shown_errors
    def on_default(view: ChatView | None, persona_id: str) -> tuple[Any, ...]:
        ctx.store.personas.set_default(persona_id)
        notify("This persona now speaks in every chat that has none locked.")
        return shown(logic.ensure_session(ctx, view), persona_id)

    @shown_errors
    def on_worlds(enabled: list[str]) -> None:
        for book in ctx.store.worlds.list():
            ctx.store.worlds.set_enabled(book.id, book.id in (enabled or []))

    @shown_errors
    def on_world_upload(upload: str | None) -> Any:
        summary = ctx.store.worlds.import_file(read_upload(upload), Path(upload or "").name, enabled=True)
        notify(f"Imported the world book {summary.name} ({summary.entries} entries); it is enabled.")
        books = ctx.store.worlds.list()
        return gr.update(choices=[(b.name, b.id) for b in books], value=[b.id for b in books if b.enabled])

    p.persona.input(on_pick, [w.view, p.persona], outputs, **quiet)
    p.persona_save.click(on_save, [w.view, *outputs], outputs, api_name="save_persona", **EDITS)
    p.persona_new.click(on_new, [w.view], outputs, **quiet)
    p.persona_default.click(on_default, [w.view, p.persona], outputs, **quiet)
    p.worlds.input(on_worlds, [p.worlds], None, **quiet)
    p.world_upload.upload(
        on_world_upload, [p.world_upload], [p.worlds], api_name="import_world_book", **EDITS
    )


def _wire_files(w: ChatWidgets, ctx: AppContext, switch: Switch) -> None:
    p = w.panels

    @shown_errors
    def on_export(view: ChatView | None, kind: str) -> Any:
        view = logic.ensure_session(ctx, view)
        session = ctx.store.sessions.get(view.session_id)
        messages = imports.for_export(ctx.store.sessions.messages(view.session_id))
        user, char = speaker_names(ctx, session)
        if kind == "jsonl":
            data = export_jsonl(session, messages, user_name=user, character_name=char)
        else:
            data = export_text(messages, user_name=user, character_name=char)
        return gr.update(value=str(download_file(session.title, kind, data)), visible=True)

    @shown_errors
    def on_import(view: ChatView | None, upload: str | None) -> tuple[Any, ...]:
        view = logic.ensure_session(ctx, view)
        imported = import_chat(read_upload(upload), Path(upload or "").name)
        owner = imports.chat_owner(ctx, imported.character_name, view.character_id)
        session = ctx.store.sessions.create(
            title=imported.title or "Imported chat", character_id=owner.character_id
        )
        session = replace(session, extra={**session.extra, **imported.session_extra})
        ctx.store.sessions.restore(session, imported.messages)
        for warning in imported.warnings:
            warn(warning)
        notify(f"Imported {len(imported.messages)} messages.")
        if owner.note:
            (warn if owner.candidates else notify)(owner.note)
        labels = imports.character_labels(ctx.store.characters.list())
        offered = [(labels.get(c.id, c.name), c.id) for c in owner.candidates]
        ids = [character_id for _, character_id in offered]
        pick = view.character_id if view.character_id in ids else next(iter(ids), None)
        ask = (
            gr.update(visible=bool(offered)),
            md(owner.note) if offered else "",
            gr.update(choices=offered, value=pick),
            session.id,
        )
        return (*switch(logic.open_chat(ctx, session.id)), *ask)

    @shown_errors
    def on_attach(session_id: str | None, character_id: str | None) -> tuple[Any, ...]:
        if not session_id or not character_id:
            raise InputError("Pick the character this chat belongs to first.")
        imports.attach_chat(ctx, session_id, character_id)
        notify("The imported chat is now with that character.")
        return (*switch(logic.open_chat(ctx, session_id)), gr.update(visible=False))

    p.export_chat.click(lambda v: on_export(v, "jsonl"), [w.view], [p.download], api_name="export_chat")
    p.export_chat_text.click(
        lambda v: on_export(v, "txt"), [w.view], [p.download], api_name="export_chat_text"
    )
    asked = [p.attach_row, p.attach_note, p.attach_choice, p.attach_session]
    p.import_chat.upload(
        on_import, [w.view, p.import_chat], [*w.switch_outputs, *asked], api_name="import_chat", **EDITS
    )
    attached = [*w.switch_outputs, p.attach_row]
    p.attach.click(on_attach, [p.attach_session, p.attach_choice], attached, api_name="attach_chat", **EDITS)


def _character_view(ctx: AppContext, view: ChatView | None) -> ChatView:
    view = logic.ensure_session(ctx, view)
    if not view.character_id:
        raise InputError("Pick or import a character first: the assistant has no card to edit.")
    return view


def _avatar(ctx: AppContext, persona_id: str) -> str | None:
    path = ctx.store.personas.avatar_path(persona_id)
    return str(path) if path is not None and path.is_file() else None


def _png_bytes(path: Path) -> bytes:
    """Any picture the browser sends, as PNG bytes (the store keeps avatars as PNG)."""
    with Image.open(path) as picture:
        buffer = io.BytesIO()
        picture.convert("RGBA").save(buffer, format="PNG")
    return buffer.getvalue()
