"""The command line: every flag, safe defaults, and --listen needing --auth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import app
from engine.resources import physical_cores
from services.context import DATA_DIR_ENV

ROOT = Path(__file__).resolve().parent.parent
FLAGS = [
    "--model", "--port", "--listen", "--host", "--auth", "--n-ctx", "--threads", "--threads-batch",
    "--n-gpu-layers", "--flash-attn", "--cache-type-k", "--cache-type-v", "--quantkv", "--no-mmap", "--mlock",
    "--batch-size", "--ubatch-size", "--data-dir", "--model-dir", "--api", "--api-port", "--api-key",
    "--api-cors-origin",
]  # fmt: skip


def test_defaults_are_safe() -> None:
    settings = app.parse_args([])
    assert settings.host == "127.0.0.1"
    assert settings.port == 7860
    assert settings.auth == ()
    assert settings.model is None  # the bundled model


def test_defaults_use_the_machine() -> None:
    settings = app.parse_args([])
    assert (settings.n_ctx, settings.n_gpu_layers) == (None, None)  # auto: planned at each load
    assert settings.threads == physical_cores() and settings.threads_batch is None
    assert (settings.flash_attn, settings.cache_type_k, settings.cache_type_v) == ("auto", "f16", "f16")
    assert (settings.use_mmap, settings.use_mlock, settings.n_batch, settings.n_ubatch) == (
        True,
        False,
        512,
        512,
    )
    options = settings.load_options
    assert (options.n_ctx, options.n_gpu_layers, options.threads) == (None, None, physical_cores())


def test_every_flag_is_parsed() -> None:
    settings = app.parse_args(
        ["--model", "m.gguf", "--port", "9000", "--listen", "--auth", "me:pw", "--n-ctx", "2048",
         "--threads", "4", "--n-gpu-layers", "-1", "--data-dir", "/tmp/x"]
    )  # fmt: skip
    assert settings.model == Path("m.gguf")
    assert (settings.port, settings.host, settings.auth) == (9000, "0.0.0.0", (("me", "pw"),))
    assert (settings.n_ctx, settings.threads, settings.n_gpu_layers) == (2048, 4, -1)
    assert settings.data_dir == Path("/tmp/x")
    tuned = app.parse_args(
        ["--threads", "4", "--threads-batch", "8", "--flash-attn", "off", "--cache-type-k", "q8_0",
         "--cache-type-v", "q4_0", "--no-mmap", "--mlock", "--batch-size", "1024", "--ubatch-size", "256",
         "--n-ctx", "auto", "--n-gpu-layers", "all"]
    )  # fmt: skip
    options = tuned.load_options
    assert (options.threads, options.threads_batch, options.flash_attn) == (4, 8, "off")
    assert (options.cache_type_k, options.cache_type_v, options.use_mmap, options.use_mlock) == (
        "q8_0",
        "q4_0",
        False,
        True,
    )
    assert (options.n_batch, options.n_ubatch, options.n_ctx, options.n_gpu_layers) == (1024, 256, None, -1)


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--ctx-size", "8192"], "n_ctx", 8192),
        (["-c", "8192"], "n_ctx", 8192),
        (["--contextsize", "8192"], "n_ctx", 8192),
        (["--n-ctx", "auto"], "n_ctx", None),
        (["--gpu-layers", "20"], "n_gpu_layers", 20),
        (["--gpulayers", "20"], "n_gpu_layers", 20),
        (["-ngl", "99"], "n_gpu_layers", 99),
        (["-ngl", "all"], "n_gpu_layers", -1),
        (["--n-gpu-layers", "auto"], "n_gpu_layers", None),
        (["--listen-port", "8080"], "port", 8080),
        (["--user-data-dir", "/srv/ud"], "data_dir", Path("/srv/ud")),
        (["--flashattention"], "flash_attn", "on"),
        (["--flash-attn"], "flash_attn", "on"),
        (["-fa"], "flash_attn", "on"),
        (["-fa", "off"], "flash_attn", "off"),
        (["--threads-batch", "6"], "threads_batch", 6),
        (["--blasthreads", "6"], "threads_batch", 6),
        (["--quantkv", "0"], "cache_type_k", "f16"),
        (["--quantkv", "1"], "cache_type_v", "q8_0"),
        (["--quantkv", "2"], "cache_type_k", "q4_0"),
        (["--quantkv", "2", "--cache-type-v", "f16"], "cache_type_v", "f16"),  # the named one wins
        (["-ctk", "q8_0"], "cache_type_k", "q8_0"),
        (["--nommap"], "use_mmap", False),
        (["--usemlock"], "use_mlock", True),
        (["-b", "256"], "n_batch", 256),
        (["--blasbatchsize", "256"], "n_batch", 256),
        (["-ub", "128"], "n_ubatch", 128),
        (["--host", "127.0.0.1"], "host", "127.0.0.1"),
        (["--host", "localhost"], "listen", False),
        (["--listen-host", "::1"], "host", "::1"),
        (["--host", "0.0.0.0", "--auth", "a:b"], "listen", True),
        (["--host", "192.168.1.20", "--auth", "a:b"], "host", "192.168.1.20"),
        (["--gradio-auth", "a:b"], "auth", (("a", "b"),)),
        (["--gradio-auth", "u1:p1,u2:p2"], "auth", (("u1", "p1"), ("u2", "p2"))),
        (["--auth", "u1:p1", "--gradio-auth", "u2:p2"], "auth", (("u1", "p1"), ("u2", "p2"))),
    ],
)
def test_the_flags_users_already_type_are_accepted(argv: list[str], field: str, value: object) -> None:
    assert getattr(app.parse_args(argv), field) == value


def test_threads_still_set_both_kinds() -> None:
    options = app.parse_args(["--threads", "3"]).load_options
    assert (options.threads, options.threads_batch) == (3, None)  # None: as many as --threads
    assert app.parse_args(["--threads", "3", "--threads-batch", "5"]).threads_batch == 5


def test_every_user_logs_into_the_api() -> None:
    settings, api = app.parse_flags(["--auth", "u1:p1,u2:p2", "--api"])
    assert api is not None and api.logins == settings.auth == (("u1", "p1"), ("u2", "p2"))


def test_model_folders_are_listed_where_they_are(tmp_path: Path) -> None:
    settings = app.parse_args(["--model-dir", str(tmp_path), "--model-dir", str(tmp_path / ".")])
    assert settings.model_dirs == (tmp_path.resolve(), tmp_path.resolve())


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
        (["--threads-batch", "0"], "--threads-batch must be at least 1"),
        (["--n-ctx", "lots"], "'lots' is not a number or \"auto\""),
        (["-ngl", "-5"], "-5 is too small"),
        (["--cache-type-v", "q2_k"], "invalid choice: 'q2_k'"),
        (["--quantkv", "3"], "invalid choice: 3"),
        (["-fa", "maybe"], "invalid choice: 'maybe'"),
        (["--host", "0.0.0.0"], "--host 0.0.0.0 exposes Hearth to your network, so it needs --auth"),
        (["--host", "http://x:80"], "must be an address or a host name"),
        (["--listen", "--host", "127.0.0.1", "--auth", "a:b"], "pick one"),
        (["--gradio-auth", "u1:p1,broken"], "USER:PASS"),
        (["--model-dir", "/no/such/folder"], "--model-dir /no/such/folder is not a folder"),
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
