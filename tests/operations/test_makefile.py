"""`make run` installs what running needs; the test and lint tools come with `make test`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _dry_run(target: str, tmp_path: Path) -> list[str]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def test_run_installs_the_runtime_only_and_writes_its_dev_settings(tmp_path: Path) -> None:
    lines = _dry_run("run", tmp_path)
    installs = [line for line in lines if "pip install" in line and "--upgrade pip" not in line]
    assert installs and all(line.endswith("install --quiet -e .") for line in installs), lines
    assert any(line.endswith("gateway dev-setup") for line in lines)
    assert not any("GATEWAY_ALLOWED_NETWORKS" in line for line in lines)  # .env holds it


def test_test_adds_the_development_tools(tmp_path: Path) -> None:
    assert any("-e '.[dev]'" in line for line in _dry_run("test", tmp_path))
