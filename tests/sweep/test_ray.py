"""The Ray engine on 2 CPU workers: same rows as the local engine, errors, resume.

Skipped when Ray is not installed, except under ``CI=true`` (where ``.ci/run`` installs the
``[ray]`` extra and these tests must run). One local Ray cluster serves the whole module.
"""

from __future__ import annotations

import os

import pandas as pd
import pytest

from selfie_tl import sweep
from selfie_tl.errors import ModelLoadError

pytestmark = pytest.mark.ray

if os.environ.get("CI") == "true":
    import ray  # must be installed on CI: an ImportError fails the module
else:
    ray = pytest.importorskip(
        "ray", reason="Ray not installed (pip install 'selfie_tl[ray]'); ray tests skipped"
    )


@pytest.fixture(scope="module")
def ray_cluster():
    from selfie_tl.sweep.ray_engine import ensure_ray

    started = ensure_ray(workers=2)
    yield
    if started:
        ray.shutdown()


def test_ray_rows_equal_local_rows(ray_cluster, make_job, tmp_path, prompts_file):
    local = make_job(name="local")
    remote = make_job(name="remote")
    sweep.run(local, progress=False)
    result = sweep.run(remote, engine="ray", workers=2, progress=False)
    assert result.extra["actors"] == 2 and result.shards_computed == 3
    # Same tokens and texts; scores equal up to float reduction order (Ray actors run one
    # torch thread, the local run the machine's default), hence the tolerance.
    _assert_same_rows(sweep.merge(local.output), sweep.merge(remote.output))
    # the prompts flavour too (capture on the worker)
    common = {"model": "tiny:gpt2", "prompts": str(prompts_file), "layers": [1], "tokens": [0, -1],
              "settings": {"k": 1, "max_new_tokens": 3}, "shard_size": 2}  # fmt: skip
    a = sweep.SweepJob(output=str(tmp_path / "pl"), **common)
    b = sweep.SweepJob(output=str(tmp_path / "pr"), **common)
    sweep.run(a, progress=False)
    sweep.run(b, engine="ray", workers=2, progress=False)
    _assert_same_rows(sweep.merge(a.output), sweep.merge(b.output))


def _assert_same_rows(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(left, right, check_exact=False, rtol=1e-3, atol=1e-5)
    for column in ("interpretation", "generated_tokens"):
        if column in left:
            assert left[column].map(list if column == "generated_tokens" else str).tolist() == right[column].map(
                list if column == "generated_tokens" else str
            ).tolist()


def test_ray_resumes_a_local_run(ray_cluster, make_job, monkeypatch):
    from selfie_tl.sweep import core

    job = make_job()
    real = core.write_shard
    state = {"n": 0}

    def crash_after_two(directory, shard, rows):
        if state["n"] == 2:
            raise KeyboardInterrupt
        state["n"] += 1
        return real(directory, shard, rows)

    monkeypatch.setattr(core, "write_shard", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(job, engine="ray", workers=2, progress=False)
    monkeypatch.setattr(core, "write_shard", real)
    again = sweep.run(job, engine="ray", workers=2, progress=False)
    assert (again.shards_skipped, again.shards_computed) == (2, 1)
    df = sweep.merge(job.output)
    assert list(df["item_index"]) == list(range(7)) and df["item_id"].is_unique


def test_model_that_does_not_load_on_a_worker(ray_cluster, make_job):
    with pytest.raises(ModelLoadError, match="ray worker 0 could not load model 'tiny:nope'"):
        sweep.run(make_job(model="tiny:nope"), engine="ray", workers=1, progress=False)


def test_dead_worker_is_restarted_and_its_shard_retried(ray_cluster, make_job, tmp_path, monkeypatch):
    from selfie_tl.sweep.ray_engine import FAULT_ONCE

    marker = tmp_path / "crashed"
    monkeypatch.setenv(FAULT_ONCE, str(marker))
    job = make_job()
    result = sweep.run(job, engine="ray", workers=1, progress=False)
    assert marker.exists(), "no worker died: the fault was not injected"
    assert result.shards_computed == 3
    df = sweep.merge(job.output)
    assert list(df["item_index"]) == list(range(7)) and df["item_id"].is_unique
