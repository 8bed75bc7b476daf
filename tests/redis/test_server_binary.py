"""Which server binary tests/redis run: one on PATH first, else the packaged one."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis_server
from redis_server import find_binary, packaged_binary


def executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_redis_server_on_path_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    valkey = executable(tmp_path, "valkey-server")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary() == str(valkey)
    redis = executable(tmp_path, "redis-server")
    assert find_binary() == str(redis)


def test_without_one_on_path_the_packaged_server_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary() == packaged_binary()
    monkeypatch.setattr(redis_server, "PACKAGED", ("no-such-distribution", "valkey-server"))
    assert packaged_binary() is None
    assert find_binary() is None
