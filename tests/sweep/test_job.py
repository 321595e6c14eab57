"""SweepJob: config round trips, fingerprints, item ids, errors at the door."""

from __future__ import annotations

import json

import pytest

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sweep import SweepConfigError, SweepJob, work_items


def test_dict_and_json_round_trip(make_job, tmp_path, vectors_file):
    job = make_job(preset="paper")
    assert SweepJob.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    # a config file with relative paths: relative to the file
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"output": "o", "model": "tiny:llama", "vectors": vectors_file.name}))
    loaded = SweepJob.load(config)
    assert loaded.vectors == str(tmp_path / vectors_file.name) and loaded.output == str(tmp_path / "o")


def test_yaml_config(tmp_path, prompts_file):
    pytest.importorskip("yaml")
    config = tmp_path / "job.yaml"
    config.write_text("output: o\nmodel: 'tiny:gpt2'\nprompts: prompts.txt\nlayers: [0, 2]\ntokens: [-1]\n"
                      "settings: {k: 1, max_new_tokens: 3}\n")  # fmt: skip
    job = SweepJob.load(config)
    assert job.layers == [0, 2] and job.settings["k"] == 1
    assert len(work_items(job)) == 2 * 2 * 1


def test_fingerprint_and_ids_are_stable(make_job, vectors_file):
    a, b = make_job(), make_job(name="elsewhere")
    assert a.fingerprint() == b.fingerprint()  # the output directory is not part of it
    assert [i["item_id"] for i in work_items(a)] == [i["item_id"] for i in work_items(b)]
    assert make_job(settings={"k": 2}).fingerprint() != a.fingerprint()
    ids = [i["item_id"] for i in work_items(a)]
    assert len(set(ids)) == len(ids) == 7


@pytest.mark.parametrize(
    "change, match",
    [
        ({"bogus": 1}, "unknown sweep config keys"),
        ({"vectors": None}, "exactly one of"),
        ({"prompts": "p.txt"}, "exactly one of"),
        ({"vectors": "missing.npy"}, "does not exist"),
        ({"preset": "nope"}, "unknown preset"),
        ({"settings": {"kk": 1}}, "unknown InterpretationConfig keys"),
        ({"shard_size": 0}, "shard_size"),
        ({"settings": {"do_sample": True}}, "seed"),
    ],
)
def test_bad_config(make_job, change, match):
    data = make_job().to_dict()
    data.update(change)
    with pytest.raises(SweepConfigError, match=match):
        SweepJob.from_dict(data).check()


def test_bad_config_file(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SweepConfigError, match="not valid"):
        SweepJob.load(tmp_path / "bad.json")
    with pytest.raises(SweepConfigError, match="does not exist"):
        SweepJob.load(tmp_path / "missing.json")
    assert issubclass(SweepConfigError, InvalidArgumentError)


def test_prompts_jsonl(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('"a b"\n{"prompt": "c d"}\n')
    job = SweepJob(
        output=str(tmp_path / "o"), model="tiny:llama", prompts=str(path), layers=[1], tokens=[0, -1]
    )
    items = work_items(job.check())
    assert [(i["prompt"], i["token"]) for i in items] == [("a b", 0), ("a b", -1), ("c d", 0), ("c d", -1)]
