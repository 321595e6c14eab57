"""``selfie-tl sweep`` through the package's main CLI, once ``selfie_tl/cli.py`` registers it
(skipped until then; ``python -m selfie_tl.sweep.cli`` is tested in test_local.py)."""

from __future__ import annotations

import json

import pytest

from selfie_tl import cli


def _wired() -> bool:
    try:
        cli.build_parser().parse_args(["sweep", "x.json"])
    except SystemExit:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _wired(), reason="the sweep sub-command is not registered in selfie_tl/cli.py yet"
)


def test_selfie_tl_sweep(make_job, tmp_path, capsys):
    job = make_job()
    config = tmp_path / "job.json"
    config.write_text(json.dumps(job.to_dict()))
    assert cli.main(["sweep", str(config), "--no-progress"]) == 0
    assert "items/s" in capsys.readouterr().out
    assert cli.main(["sweep", "merge", job.output]) == 0
    assert "7 rows" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("[]")
    assert cli.main(["sweep", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
