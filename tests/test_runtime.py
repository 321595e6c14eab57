"""runtime.keep_freed_memory: applied once by the command line, harmless to repeat."""

import sys

import pytest

from selfie_tl import cli, runtime


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_applies_on_glibc_and_repeats_harmlessly():
    assert runtime.keep_freed_memory() is True
    assert runtime.keep_freed_memory() is True


def test_the_command_line_applies_it_before_running_a_command(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append("memory") or True)
    monkeypatch.setattr(cli, "run_interpret", lambda *a, **k: calls.append("interpret") or 0)
    assert cli.main(["interpret", "hello"]) == 0
    assert calls == ["memory", "interpret"]
