"""The command line: every flag, safe defaults, and --listen needing --auth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import app
from services.context import DATA_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--model", "--port", "--listen", "--auth", "--n-ctx", "--threads", "--n-gpu-layers", "--data-dir",
    "--api", "--api-port", "--api-key", "--api-cors-origin",
]  # fmt: skip


def test_defaults_are_safe() -> None:
    settings = app.parse_args([])
    assert settings.host == "127.0.0.1"
    assert settings.port == 7860
    assert settings.auth is None
    assert settings.model is None  # the bundled model


def test_every_flag_is_parsed() -> None:
    settings = app.parse_args(
        ["--model", "m.gguf", "--port", "9000", "--listen", "--auth", "me:pw", "--n-ctx", "2048",
         "--threads", "4", "--n-gpu-layers", "-1", "--data-dir", "/tmp/x"]
    )  # fmt: skip
    assert settings.model == Path("m.gguf")
    assert (settings.port, settings.host, settings.auth) == (9000, "0.0.0.0", ("me", "pw"))
    assert (settings.n_ctx, settings.threads, settings.n_gpu_layers) == (2048, 4, -1)
    assert settings.data_dir == Path("/tmp/x")


def test_data_dir_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, "/srv/hearth")
    assert app.parse_args([]).data_dir == Path("/srv/hearth")
    assert app.parse_args(["--data-dir", "here"]).data_dir == Path("here")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--listen"], "--listen exposes Hearth to your network, so it needs --auth"),
        (["--auth", "nopassword"], "USER:PASS"),
        (["--auth", ":pw"], "USER:PASS"),
        (["--n-ctx", "10"], "--n-ctx must be at least 256"),
        (["--threads", "0"], "--threads must be at least 1"),
    ],
)
def test_bad_flags_refuse_to_start(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        app.parse_args(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_listen_without_auth_exits_before_serving() -> None:
    result = subprocess.run(
        [sys.executable, "app.py", "--listen"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "needs --auth" in result.stderr
    assert "Running on" not in result.stdout


def test_help_documents_every_flag() -> None:
    result = subprocess.run(
        [sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for flag in FLAGS:
        assert flag in result.stdout
