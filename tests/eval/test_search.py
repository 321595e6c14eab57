"""The validation search and the test ablation (``selfie_tl.eval.search``, ``selfie-tl eval --search``)."""

import argparse
import json

import pandas as pd
import pytest

import selfie_tl.eval.search as search_mod
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.cli import register, run_eval
from selfie_tl.eval.data import load_known_facts
from selfie_tl.eval.search import SearchResult, SearchSpace, ablation, preset_document, search_settings
from selfie_tl.presets import Preset


def _scripted(monkeypatch, scores):
    """Replace the interpretation runs with fixed accuracies per (template, settings)."""
    calls = []

    def fake_run(model, facts, vecs, layers, template, settings, k, max_new_tokens, batch_size):
        calls.append((template, dict(settings)))
        acc = scores.get((template, json.dumps(settings, sort_keys=True)), 0.0)
        n = len(facts)
        return {layer: [i < round(acc * n) for i in range(n)] for layer in layers}

    monkeypatch.setattr(search_mod, "_run", fake_run)
    return calls


def test_greedy_search_keeps_only_improvements(tiny_llama, monkeypatch):
    facts = load_known_facts(limit=10)
    scores = {
        ("summary", "{}"): 0.1, ("facts", "{}"): 0.3,
        ("facts", '{"no_repeat_ngram_size": 3}'): 0.4,       # kept
        ("facts", '{"no_repeat_ngram_size": 3, "scale": 0.5}'): 0.4,  # a tie is not kept
        ("facts", '{"k": 1, "no_repeat_ngram_size": 3}'): 0.5,        # kept
    }  # fmt: skip
    calls = _scripted(monkeypatch, scores)
    space = SearchSpace(templates=["summary", "facts"],
                        levers={"decoding": [{"no_repeat_ngram_size": 3}], "scale": [{"scale": 0.5}], "k": [{"k": 1}]})  # fmt: skip
    found = search_settings(tiny_llama, facts, [1, 2], space, k=1, verbose=False)
    assert found.template == "facts"
    assert found.settings == {"no_repeat_ngram_size": 3, "k": 1}
    assert found.trials.kept.tolist() == [False, True, True, False, True]
    assert found.levers() == {"decoding": {"no_repeat_ngram_size": 3}, "k": {"k": 1}}
    assert [c[0] for c in calls] == ["summary", "facts", "facts", "facts", "facts"]


def test_an_adapter_lever_drops_the_scale(tiny_llama, monkeypatch):
    facts = load_known_facts(limit=4)
    calls = _scripted(monkeypatch, {("summary", '{"scale": 0.5}'): 0.5})
    space = SearchSpace(templates=["summary"], levers={"scale": [{"scale": 0.5}], "adapter": [{"adapter": "a.st"}]})
    found = search_settings(tiny_llama, facts, [1], space, k=1, verbose=False)
    assert calls[-1] == ("summary", {"adapter": "a.st"})
    assert found.settings == {"scale": 0.5}


def test_real_runs_on_a_tiny_model(tiny_llama):
    facts = load_known_facts(limit=4)
    space = SearchSpace(templates=["summary", "wiki_is"], levers={"decoding": [{"no_repeat_ngram_size": 2}]})
    found = search_settings(tiny_llama, facts, [1, 2], space, k=1, max_new_tokens=3, verbose=False)
    assert len(found.trials) == 3 and {"acc_L1", "acc_L2"} <= set(found.trials.columns)
    table = ablation(tiny_llama, facts, [1, 2], found, k=1, max_new_tokens=3, n_bootstrap=20, verbose=False)
    assert table.config.iloc[0] == "paper"
    assert table.config.iloc[-3].startswith("control") and table.config.iloc[-2] == "logit lens"
    assert table.config.iloc[-1].startswith("reading the name")
    assert "chosen (all combined)" in table.config.tolist()
    assert ((table.ci_low <= table.accuracy) & (table.accuracy <= table.ci_high)).all()


def test_preset_document_builds_the_chosen_prompt(tiny_llama):
    found = SearchResult("wiki_is", {"scale": 0.5, "no_repeat_ngram_size": 3}, pd.DataFrame(), 10, [3])
    doc = json.loads(json.dumps(preset_document(found)))
    preset = Preset(name="chosen", prompt=doc["prompt"], settings=doc["settings"], adapter=doc["adapter"])
    assert preset.interpretation_prompt(tiny_llama.tokenizer).text.endswith("_ _ _ _ _ is")
    assert preset.config().scale == 0.5


def test_space_is_validated():
    with pytest.raises(InvalidArgumentError, match="relation"):
        SearchSpace(templates=["relation"]).validate()
    with pytest.raises(InvalidArgumentError, match="list of non-empty dicts"):
        SearchSpace(levers={"scale": {"scale": 2}}).validate()


def _parse(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["eval", *argv])


def test_cli_search_writes_its_files(tiny_llama, tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"templates": ["summary", "tell_me"], "levers": {"scale": [{"scale": 2.0}]}}))
    args = _parse(["--search", "--search-space", str(space), "--limit", "3", "--layers", "1,2", "--k", "1",
                   "--max-new-tokens", "2", "--n-bootstrap", "20", "--quiet", "--out", str(tmp_path / "out")])  # fmt: skip
    result = run_eval(args, model=tiny_llama)
    assert result["n_validation"] == 3 and result["n_test"] == 3
    for name in ("search.csv", "ablation.csv", "chosen_preset.json", "search.json"):
        assert (tmp_path / "out" / name).is_file()
    doc = json.loads((tmp_path / "out" / "chosen_preset.json").read_text())
    assert doc["prompt"] is not None and doc["notes"]["n_test"] == 3
    assert "Test split" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, match",
    [(["--split", "test"], "drop --split"), (["--preset", "best"], "drop --preset"),
     (["--search-space", "/nonexistent.json"], "--search-space"), (["--search-adapter", "/nonexistent"], "not a file"),
     (["--search-templates", "relation"], "search templates")],
)  # fmt: skip
def test_cli_search_rejects(tiny_llama, argv, match, tmp_path):
    args = _parse(["--search", "--limit", "2", "--layers", "1", "--quiet", "--out", str(tmp_path / "o"), *argv])
    with pytest.raises(InvalidArgumentError, match=match):
        run_eval(args, model=tiny_llama)
    assert not (tmp_path / "o").exists()


def test_placeholder_count_is_a_lever(tiny_llama):
    facts = load_known_facts(limit=3)
    space = SearchSpace(templates=["wiki_is"], levers={"placeholders": [{"n_placeholders": 2}]})
    found = search_settings(tiny_llama, facts, [1], space, k=1, max_new_tokens=2, verbose=False)
    assert json.loads(found.trials.settings.iloc[1]) == {"n_placeholders": 2}
    # the lever reaches the prompt: the same run by hand, with the two-slot template
    from selfie_tl.eval import methods

    rows = methods.selfie_rows(tiny_llama, facts, _vectors(tiny_llama, facts, [1]), [1], "wiki_is", k=1,
                               max_new_tokens=2, n_placeholders=2)  # fmt: skip
    by_hand = search_mod._run(tiny_llama, facts, _vectors(tiny_llama, facts, [1]), [1], "wiki_is",
                              {"n_placeholders": 2}, 1, 2, 128)  # fmt: skip
    assert by_hand == {1: [bool(r["correct"]) for r in rows]}
    # stored in the preset's prompt, not as an interpretation setting
    doc = preset_document(SearchResult("wiki_is", {"n_placeholders": 2, "k": 1}, pd.DataFrame(), 3, [1]))
    assert doc["settings"] == {"k": 1} and doc["prompt"]["parts"].count(0) == 2
    preset = Preset(name="chosen", prompt=doc["prompt"], settings=doc["settings"], adapter=doc["adapter"])
    assert preset.interpretation_prompt(tiny_llama.tokenizer).text.endswith("\n\n_ _ is")
    # the control rows (which the ablation runs with the chosen count) read the resized prompt
    from selfie_tl.eval.templates import template_prompt

    two = methods.no_injection_text(tiny_llama, template_prompt(tiny_llama.tokenizer, "wiki_is", n_placeholders=2), 2)
    assert two != methods.no_injection_text(tiny_llama, template_prompt(tiny_llama.tokenizer, "wiki_is"), 2)
    assert [r["output"] for r in methods.control_rows(tiny_llama, facts, "wiki_is", 2, 2)] == [two] * 3


def _vectors(model, facts, layers):
    from selfie_tl.eval.attributes import subject_vectors

    return subject_vectors(model, facts, layers)[0]


def test_placeholder_lever_is_validated():
    with pytest.raises(InvalidArgumentError, match="n_placeholders must be an int >= 1, got 0"):
        SearchSpace(templates=["wiki_is"], levers={"p": [{"n_placeholders": 0}]}).validate()
    with pytest.raises(InvalidArgumentError, match=r"\['preset:paper'\] are the model's default prompt"):
        SearchSpace(templates=["preset:paper"], levers={"p": [{"n_placeholders": 2}]}).validate()
    with pytest.raises(InvalidArgumentError, match="stored without a placeholder count"):
        preset_document(SearchResult("preset:paper", {"n_placeholders": 2}, pd.DataFrame(), 3, [1]))
