"""The Models tab: the loaded model, catalog, Hugging Face, installed, remote engines, conversion."""

from ui.models.tab import build

__all__ = ["build"]
