"""One small run on the default model."""

import pytest

from selfie_tl.eval import evaluate_attributes, load_known_facts


@pytest.mark.integration
def test_default_model_attribute_extraction(default_model, shared_data):
    facts = load_known_facts(shared_data / "known_facts.csv", limit=4)
    rows = evaluate_attributes(default_model, facts, layers=[12, 30], max_new_tokens=6, verbose=False)
    assert len(rows) == 4 * 2 * 3 + 4
    # at the last layer the logit lens is the model's prediction for the next token of the
    # fact prompt: "Vinson Massif is located in the continent of" -> " Antarctica" among its top-20
    ll = rows[(rows.method == "logit_lens") & (rows.layer == 30)]
    assert ll.first_token_hit.iloc[0]
    assert (rows[rows.method == "control:summary"].output.nunique()) == 1
