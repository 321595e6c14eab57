"""Packaged data readers and the fixed known-facts split (selfie_tl.eval.data)."""

import hashlib
from pathlib import Path

import pandas as pd
import pytest

import selfie_tl
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.data import (
    DATA_ENV,
    SPLITS,
    check_split,
    data_dir,
    load_ethical_override,
    load_harmful_behaviors,
    load_known_facts,
    split_of,
)


@pytest.fixture(autouse=True)
def _no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)


def test_data_is_read_from_inside_the_package():
    assert Path(str(data_dir())) == Path(selfie_tl.__file__).parent / "data"
    facts = load_known_facts()
    assert len(facts) == 590
    assert list(facts.columns) == ["known_id", "subject", "attribute", "template", "prompt", "relation_id", "split"]
    assert len(load_harmful_behaviors()) == 271
    assert load_ethical_override().shape == (70, 3)
    assert (Path(str(data_dir())) / "README.md").is_file()


def test_limits():
    assert load_known_facts(limit=3).known_id.tolist() == [0, 2, 4]
    assert load_harmful_behaviors(limit=2) == load_harmful_behaviors()[:2]
    assert len(load_ethical_override(limit=5)) == 5
    for bad in (0, -1, 2.5, True):
        with pytest.raises(InvalidArgumentError, match="limit"):
            load_known_facts(limit=bad)


def test_split_rule_and_sizes():
    for known_id in (0, 2, 17, 1208, "abc"):
        bucket = int(hashlib.sha256(f"selfie_tl-split-v1:{known_id}".encode()).hexdigest(), 16) % 10
        assert split_of(known_id) == ("train" if bucket < 4 else "validation" if bucket < 6 else "test")
    facts = load_known_facts()
    assert facts.split.value_counts().to_dict() == {"train": 227, "validation": 120, "test": 243}
    parts = {s: load_known_facts(split=s) for s in SPLITS}
    assert {s: len(p) for s, p in parts.items()} == {"train": 227, "validation": 120, "test": 243}
    ids = [set(p.known_id) for p in parts.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set.union(*ids) == set(facts.known_id)
    for s, p in parts.items():
        assert (p.split == s).all() and p.index.tolist() == list(range(len(p)))
    # row order is the file's order within a split; limit takes the first rows of the split
    assert load_known_facts(split="test", limit=4).equals(parts["test"].head(4))
    assert load_known_facts(split="all").equals(facts) and load_known_facts(split=None).equals(facts)


def test_split_is_deterministic_and_stable_under_subsetting(tmp_path):
    full = load_known_facts()
    assert full.equals(load_known_facts())
    subset = full.drop(columns="split").sample(frac=0.3, random_state=1)
    path = tmp_path / "subset.csv"
    subset.to_csv(path, index=False)
    again = load_known_facts(path)
    expected = full.set_index("known_id").split
    assert again.split.tolist() == expected.loc[again.known_id].tolist()
    for s in SPLITS:
        assert set(load_known_facts(path, split=s).known_id) == set(subset.known_id) & set(full[full.split == s].known_id)


def test_split_errors():
    for bad in ("dev", "TEST", "", 3):
        with pytest.raises(InvalidArgumentError, match="split must be one of"):
            load_known_facts(split=bad)
    assert check_split("all") is None and check_split("train") == "train"


def test_known_facts_file_checks(tmp_path):
    base = pd.DataFrame({"known_id": [1, 2], "subject": ["Rome", "Oslo"], "attribute": ["Italy", "Norway"],
                         "prompt": ["Rome is in", "Oslo is in"]})  # fmt: skip
    minimal = tmp_path / "minimal.csv"
    base.to_csv(minimal, index=False)
    assert load_known_facts(minimal).split.tolist() == [split_of(1), split_of(2)]
    base.drop(columns="known_id").to_csv(tmp_path / "no_id.csv", index=False)
    with pytest.raises(InvalidArgumentError, match="lacks columns \\['known_id'\\]"):
        load_known_facts(tmp_path / "no_id.csv")
    base.assign(known_id=[1, 1]).to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(InvalidArgumentError, match="repeats known_id \\[1\\]"):
        load_known_facts(tmp_path / "dup.csv")
    with pytest.raises(InvalidArgumentError, match="not found"):
        load_known_facts(tmp_path / "missing.csv")


def test_selfie_tl_data_directory_overrides_the_packaged_files(tmp_path, monkeypatch):
    (tmp_path / "harmful_behaviors.txt").write_text("do a\n\n  do b  \n")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_dir() == tmp_path
    assert load_harmful_behaviors() == ["do a", "do b"]
    with pytest.raises(InvalidArgumentError, match=f"known_facts.csv in {DATA_ENV}="):
        load_known_facts()
    # an explicit path still wins
    packaged = Path(selfie_tl.__file__).parent / "data" / "known_facts.csv"
    assert len(load_known_facts(packaged)) == 590
