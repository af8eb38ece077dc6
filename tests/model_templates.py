"""Real models' chat templates, to test formats and full rendering against.

They are not copied into this repository: llama.cpp keeps the templates of the models
it supports in `models/templates/`, and the llama-cpp-python source package (the very
version `requirements.txt` pins, which the install builds from) ships that folder.
The first test that asks downloads the package from PyPI once, as pip does for the
install, and keeps only those files under `.cache/` (or takes them from
`HEARTH_LLAMA_SDIST`, a local copy of the package).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.search(r"^llama-cpp-python==(\S+)", (ROOT / "requirements.txt").read_text(), re.M)
VERSION = _VERSION.group(1) if _VERSION else "unknown"
CACHE = ROOT / ".cache" / f"llama-cpp-python-{VERSION}-templates"
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "'": "'", "\\": "\\"}  # all the C escapes those strings use
_KEPT = ("models/templates/", "tests/test-chat-template.cpp")


def templates_dir() -> Path:
    """The folder of model templates (`<model>.jinja`) and llama.cpp's template test file."""
    if not (CACHE / "done").is_file():
        _unpack(_sdist())
    return CACHE


def template(name: str) -> str:
    """One model's template, by its file name in llama.cpp's folder, without `.jinja`."""
    return (templates_dir() / "models" / "templates" / f"{name}.jinja").read_text(encoding="utf-8")


def inline_template(name: str) -> str:
    """A template that llama.cpp's own C++ test holds inline (e.g. "phi-4"): the string
    literal after its `.name`, read as C reads it."""
    source = (templates_dir() / "tests" / "test-chat-template.cpp").read_text(encoding="utf-8")
    entry = r'\.name=\s*\*/\s*"' + re.escape(name) + r'",\s*/\*\s*\.template_str=\s*\*/\s*(?:U8C\()?'
    found = re.search(entry + r'"((?:[^"\\]|\\.)*)"', source)
    if found is None:
        raise LookupError(f"llama.cpp's template test has no template named {name!r}")
    return re.sub(r"\\(.)", lambda m: _ESCAPES[m.group(1)], found.group(1))


def _sdist() -> Path:
    given = os.environ.get("HEARTH_LLAMA_SDIST", "")
    if given:
        return Path(given)
    folder = Path(tempfile.mkdtemp(prefix="llama-sdist-"))
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        + [f"llama-cpp-python=={VERSION}", "-d", str(folder)],
        check=True,
        timeout=600,
    )
    return next(folder.glob("llama_cpp_python-*.tar.gz"))


def _unpack(sdist: Path) -> None:
    """Keep the templates only; several test processes may do this at once, so each
    writes its own folder and the first to finish puts it in place."""
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=CACHE.parent, prefix=".unpacking-"))
    with tarfile.open(sdist) as archive:
        for member in archive.getmembers():
            inside = member.name.split("/vendor/llama.cpp/", 1)
            if len(inside) == 2 and member.isfile() and inside[1].startswith(_KEPT):
                target = work / inside[1]
                target.parent.mkdir(parents=True, exist_ok=True)
                source = archive.extractfile(member)
                assert source is not None
                target.write_bytes(source.read())
    (work / "done").write_text(sdist.name)
    try:
        work.rename(CACHE)
    except OSError:  # another process put its copy in place first
        shutil.rmtree(work, ignore_errors=True)
