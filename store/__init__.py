"""Persistence: TinyDB behind atomic writes, sharded so writes stay small."""
