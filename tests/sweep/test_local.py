"""The local engine: results, resume after a crash, conflicts, merge, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from selfie_tl import sweep
from selfie_tl.errors import ModelLoadError
from selfie_tl.interpret import generate_interpretations
from selfie_tl.sweep import core
from selfie_tl.sweep.cli import main as sweep_main
from selfie_tl.testing import tiny_model


def test_rows_match_generate_interpretations(make_job, vectors_file):
    import numpy as np
    import torch

    job = make_job()
    result = sweep.run(job, progress=False)
    assert (result.n_items, result.n_shards, result.shards_computed) == (7, 3, 3)
    df = sweep.merge(job.output)
    assert list(df["vector_index"]) == list(range(7)) and df["item_id"].is_unique
    expected = generate_interpretations(tiny_model("llama"), torch.as_tensor(np.load(vectors_file)),
                                        k=1, max_new_tokens=4, batch_size=2)  # fmt: skip
    # shards are interpreted separately (batches never straddle shards): same greedy texts
    assert list(df["interpretation"]) == expected.texts
    manifest = sweep.read_manifest(job.output)
    assert manifest["fingerprint"] == job.fingerprint() and all(s["done"] for s in manifest["shards"])
    assert set(df["settings_hash"]) == {job.settings_hash()} and set(df["k"]) == {1}


def test_prompts_job(tmp_path, prompts_file):
    job = sweep.SweepJob(output=str(tmp_path / "o"), model="tiny:gpt2", prompts=str(prompts_file), layers=[0, 2],
                         tokens=[-1], settings={"k": 1, "max_new_tokens": 3}, shard_size=3)  # fmt: skip
    sweep.run(job, progress=False)
    df = sweep.merge(job.output)
    assert len(df) == 4 and list(df["layer"]) == [0, 2, 0, 2]
    assert list(df["token_decoded"]) == ["t", "t", "y", "y"]
    assert df["relevancy"].map(len).tolist() == df["generated_tokens"].map(len).tolist()


def test_resume_after_crash_each_item_exactly_once(make_job, monkeypatch):
    job = make_job()
    real = core.write_shard
    calls = []

    def crash_after_one(directory, shard, rows):
        if len(calls) == 1:
            # a half-written shard left behind by a killed process
            (directory / "shards" / ".shard-00001.parquet.abc.tmp").write_bytes(b"PAR1 trunc")
            raise KeyboardInterrupt
        calls.append(shard.index)
        return real(directory, shard, rows)

    monkeypatch.setattr(core, "write_shard", crash_after_one)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(job, progress=False)
    monkeypatch.setattr(core, "write_shard", real)
    with pytest.raises(Exception, match="unfinished"):
        sweep.merge(job.output)
    assert len(sweep.merge(job.output, allow_partial=True)) == 3
    again = sweep.run(job, progress=False)
    assert (again.shards_skipped, again.shards_computed, again.items_computed) == (1, 2, 4)
    df = sweep.merge(job.output)
    assert list(df["item_index"]) == list(range(7)) and df["item_id"].is_unique
    assert not list(Path(job.output).glob("shards/.*.tmp"))
    # a third run has nothing to do
    assert sweep.run(job, progress=False).shards_computed == 0
    fresh = make_job(name="fresh")
    sweep.run(fresh, progress=False)
    pd.testing.assert_frame_equal(df, sweep.merge(fresh.output))


def test_corrupt_shard_is_redone(make_job):
    job = make_job()
    sweep.run(job, progress=False)
    path = Path(job.output) / "shards" / "shard-00002.parquet"
    path.write_bytes(b"garbage")
    again = sweep.run(job, progress=False)
    assert again.shards_computed == 1 and pq.read_table(path).num_rows == 1


def test_other_job_in_output_is_refused(make_job):
    sweep.run(make_job(), progress=False)
    with pytest.raises(sweep.OutputConflictError, match="another job"):
        sweep.run(make_job(settings={"k": 2, "max_new_tokens": 4}), progress=False)


def test_model_that_does_not_load(make_job):
    with pytest.raises(ModelLoadError, match="tiny:nope"):
        sweep.run(make_job(model="tiny:nope"), progress=False)


def test_cli_run_merge_and_errors(make_job, tmp_path, capsys):
    job = make_job()
    config = tmp_path / "job.json"
    config.write_text(json.dumps(job.to_dict()))
    assert sweep_main([str(config), "--no-progress"]) == 0
    assert "items/s" in capsys.readouterr().out
    assert sweep_main(["merge", job.output, "-o", str(tmp_path / "all.csv")]) == 0
    csv = pd.read_csv(tmp_path / "all.csv")
    assert len(csv) == 7 and json.loads(csv["generated_tokens"][0])
    # errors: one line, exit 2
    (tmp_path / "bad.json").write_text(json.dumps({"output": "x", "model": "tiny:llama"}))
    assert sweep_main([str(tmp_path / "bad.json")]) == 2
    other = dict(job.to_dict(), shard_size=5)
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert sweep_main([str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err
    assert "exactly one of" in err and "another job" in err
    assert sweep_main([str(config), "--workers", "2"]) == 2


def test_prompts_rows_match_interpretations_of_captured_states(tmp_path, prompts_file):
    from selfie_tl.hooks import capture

    job = sweep.SweepJob(output=str(tmp_path / "o"), model="tiny:llama", prompts=str(prompts_file), layers=[1, 2],
                         tokens=[0, -1], settings={"k": 1, "max_new_tokens": 3, "relevancy": False}, shard_size=8)  # fmt: skip
    sweep.run(job, progress=False)
    df = sweep.merge(job.output)
    model = tiny_model("llama")
    states = [capture(model, p, [layer], [tok])[0, 0] for p in ["The cat sat", "Paris is a city"]
              for layer in (1, 2) for tok in (0, -1)]  # fmt: skip
    import torch

    expected = generate_interpretations(model, torch.stack(states), k=1, max_new_tokens=3, relevancy=False)
    assert list(df["interpretation"]) == expected.texts
    assert df["relevancy"].isna().all() and df["mean_relevancy"].isna().all()


def test_bad_item_names_its_shard(tmp_path, prompts_file):
    job = sweep.SweepJob(output=str(tmp_path / "o"), model="tiny:llama", prompts=str(prompts_file), layers=[1],
                         tokens=[40], settings={"k": 1, "max_new_tokens": 2})  # fmt: skip
    with pytest.raises(sweep.SweepItemError, match="shard 0"):
        sweep.run(job, progress=False)


def test_killed_process_resumes(make_job, tmp_path, vectors_file):
    """SIGKILL a real ``sweep`` process once a shard is on disk; the re-run completes the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    many = tmp_path / "many.npy"
    np.save(many, np.random.default_rng(1).normal(size=(60, 64)).astype("float32"))
    job = make_job(vectors=str(many), shard_size=2, settings={"k": 1, "max_new_tokens": 8, "batch_size": 2})
    config = tmp_path / "job.json"
    config.write_text(json.dumps(job.to_dict()))
    env = dict(os.environ, PYTHONPATH=str(Path(sweep.__file__).parents[2]), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "selfie_tl.sweep.cli", str(config), "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    shards = Path(job.output) / "shards"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not list(shards.glob("shard-*.parquet")):
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = len(list(shards.glob("shard-*.parquet")))
    assert finished < 30, "the process finished before it could be killed"
    again = sweep.run(job, progress=False)
    assert again.shards_skipped == finished and again.shards_computed == 30 - finished
    df = sweep.merge(job.output)
    assert list(df["item_index"]) == list(range(60)) and df["item_id"].is_unique
