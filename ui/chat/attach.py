"""A picture attached to the next message, for a model that can see (`engine.vision`).

"Picture" beside Send picks one; it shows small under the message box until it is sent
with the message, replaced, or removed. A model without a vision projector is said so
at once, not after the message is typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from services.chat.pictures import check_picture
from services.context import AppContext
from ui.errors import shown_errors

PICTURE_TYPES = ["image"]


@dataclass
class AttachWidgets:
    button: gr.UploadButton
    picture: gr.Image  # the attached picture (a file path), hidden while there is none
    remove: gr.Button

    @property
    def cleared(self) -> tuple[Any, Any]:
        """Values for (picture, remove) once the picture has gone with its message."""
        return gr.update(value=None, visible=False), gr.update(visible=False)


def button() -> gr.UploadButton:
    """The button, for the message row."""
    return gr.UploadButton(
        "Picture", file_types=PICTURE_TYPES, size="sm", scale=0, min_width=80, elem_id="attach-picture"
    )


def layout(attach: gr.UploadButton) -> AttachWidgets:
    """The attached picture and its Remove button, under the message row."""
    with gr.Row(elem_id="attached-row"):
        picture = gr.Image(
            type="filepath",
            interactive=False,
            visible=False,
            height=96,
            show_label=False,
            buttons=[],  # no download or share: it is the user's own picture, on its way
            container=False,
            scale=0,
            min_width=140,
            elem_id="attached-picture",
        )
        remove = gr.Button("Remove picture", size="sm", visible=False, scale=0, elem_id="remove-picture")
    return AttachWidgets(attach, picture, remove)


def wire(w: AttachWidgets, ctx: AppContext, **quiet: Any) -> None:
    @shown_errors
    def on_attach(upload: str | None) -> tuple[Any, Any]:
        if not upload:
            return w.cleared
        check_picture(ctx, Path(upload))
        return gr.update(value=upload, visible=True), gr.update(visible=True)

    w.button.upload(on_attach, [w.button], [w.picture, w.remove], **quiet)
    w.remove.click(lambda: w.cleared, None, [w.picture, w.remove], **quiet)


def picture_bytes(path: str | None) -> list[bytes]:
    """The attached picture's bytes, for `logic.send` (none when nothing is attached)."""
    return [Path(path).read_bytes()] if path else []
