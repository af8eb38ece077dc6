"""The Chat tab: history, reply, sidebar (characters, chats) and panels."""

from ui.chat.tab import ChatTab, build

__all__ = ["ChatTab", "build"]
