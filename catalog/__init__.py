"""The guide's model catalog, the Hugging Face client, and the local model library."""

from catalog.bundled import BUNDLED_NAME, bundled_model_path
from catalog.errors import BundledModelError, CatalogError

__all__ = ["BUNDLED_NAME", "BundledModelError", "CatalogError", "bundled_model_path"]
