"""What the context benchmarks share: the machine's threads, the context, the sampler, topics."""

from __future__ import annotations

from presets.samplers import load_builtin_presets

THREADS = 2
N_CTX = 2048
DETERMINISTIC = load_builtin_presets()["Deterministic"].params
TOPICS = ["tides", "whales", "coral", "storms", "islands", "kelp", "icebergs", "currents", "reefs", "squid"]
