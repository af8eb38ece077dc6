"""Writing a benchmark's results into docs/benchmarks.md, one `## ` section per benchmark."""

from __future__ import annotations

from pathlib import Path


def update_section(path: Path, heading: str, section: str) -> None:
    """Replace (or add) one `## ` section of the benchmarks page, keeping the others."""
    intro = "# Benchmarks\n\nAll ratios are measured side by side in one run.\n"
    text = path.read_text() if path.exists() else intro
    parts = text.split("\n## ")
    sections = ["## " + p.rstrip() for p in parts[1:]]
    mine = [i for i, p in enumerate(sections) if p.startswith(heading)]
    if mine:  # in place, so the page keeps its order
        sections[mine[0]] = section.rstrip()
        sections = [p for i, p in enumerate(sections) if i not in mine[1:]]
    else:
        sections.append(section.rstrip())
    path.write_text(parts[0].rstrip() + "\n\n" + "\n\n".join(sections) + "\n")
