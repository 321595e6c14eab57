"""One small run on the default model."""

import pytest

from selfie_tl.eval import evaluate_attributes, load_known_facts
from selfie_tl.generation import complete


@pytest.mark.integration
def test_default_model_attribute_extraction(default_model, packaged_data):
    facts = load_known_facts(packaged_data / "known_facts.csv", limit=3)
    rows = evaluate_attributes(default_model, facts, layers=[12, 30], max_new_tokens=4, verbose=False,
                               patchscope_max_new_tokens=2)  # fmt: skip
    assert len(rows) == 3 * 2 * 3 + 3
    # the last layer's logit lens on the subject's last token is the model's own next-token
    # prediction after the subject ("Vinson Massif" -> " is" ...)
    ll = rows[(rows.method == "logit_lens") & (rows.layer == 30)]
    for (_, fact), (_, row) in zip(facts.iterrows(), ll.iterrows()):
        prefix = fact.prompt[: fact.prompt.find(fact.subject) + len(fact.subject)]
        nxt = complete(default_model, [prefix], max_new_tokens=1)[0]
        assert row.output.split(" | ")[0] == nxt
    assert rows[rows.method == "control:summary"].output.nunique() == 1


@pytest.mark.integration
def test_selfie_tl_eval_command_exits_zero(default_model, packaged_data, tmp_path, capsys):
    from selfie_tl import cli

    code = cli.main(["eval", "--data", str(packaged_data / "known_facts.csv"), "--limit", "2", "--layers", "12",
                     "--methods", "selfie", "--max-new-tokens", "3", "--no-fact-completion", "--quiet",
                     "--n-bootstrap", "10", "--out", str(tmp_path)])  # fmt: skip
    assert code == 0
    assert (tmp_path / "summary.json").exists() and "Attribute extraction on 2 facts" in capsys.readouterr().out
