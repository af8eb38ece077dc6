"""Prompt formats and sampler presets: data files plus the loaders that validate them."""
