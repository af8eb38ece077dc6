"""The Chat tab: history, reply, sidebar (characters, chats) and panels."""

from ui.chat.tab import build

__all__ = ["build"]
