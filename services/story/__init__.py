"""Story and Adventure: the notebook, its steering, and AI-Dungeon-style play."""
