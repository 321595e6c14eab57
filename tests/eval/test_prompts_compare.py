"""compare_prompts: templates side by side against their controls."""

import pytest

from selfie_tl.eval.attributes import evaluate_attributes
from selfie_tl.eval.prompts_compare import compare_prompts
from selfie_tl.eval.stats import selfie_vs_control, summarize
from tests.eval.test_attributes import FACTS


def test_compare_prompts_rows_and_ranking(tiny_llama):
    rows, ranking = compare_prompts(tiny_llama, FACTS, ["summary", "relation", "tell_me"], layers=[1, 2],
                                    max_new_tokens=3, k=1, verbose=False, n_bootstrap=50)  # fmt: skip
    # only SelfIE and its control, for every template
    assert set(rows.method) == {f"{m}:{t}" for m in ("selfie", "control") for t in ("summary", "relation", "tell_me")}
    # the same rows evaluate_attributes gives for those settings
    expected = evaluate_attributes(tiny_llama, FACTS, layers=[1, 2], methods=["selfie", "control"],
                                   templates=["summary", "relation", "tell_me"], max_new_tokens=3, k=1,
                                   verbose=False, n_bootstrap=50)  # fmt: skip
    assert rows.equals(expected)
    assert sorted(ranking.template) == ["relation", "summary", "tell_me"]
    assert list(ranking.columns[-1:]) == ["margin"]
    assert (ranking.margin == ranking.selfie_accuracy - ranking.control_accuracy).all()
    # best first: SelfIE accuracy, then margin, both descending
    keys = list(zip(ranking.selfie_accuracy, ranking.margin))
    assert keys == sorted(keys, reverse=True)
    by_template = {e["template"]: e for e in selfie_vs_control(summarize(rows, 50))}
    for r in ranking.itertuples():  # the intervals use the n_bootstrap given
        assert r.best_layer == by_template[r.template]["best_layer"]
        assert r.selfie_ci == by_template[r.template]["selfie_ci"]


def test_compare_prompts_passes_model_knows_and_rejects_bad_templates(tiny_llama):
    rows, _ = compare_prompts(tiny_llama, FACTS, ["summary"], layers=[1], model_knows=[True, False, True],
                              max_new_tokens=2, k=1, verbose=False)  # fmt: skip
    assert rows.groupby("known_id").model_knows.first().tolist() == [True, False, True]
    with pytest.raises(ValueError, match="unknown templates"):
        compare_prompts(tiny_llama, FACTS, ["bogus"], layers=[1])
    with pytest.raises(TypeError, match="unexpected keyword"):
        compare_prompts(tiny_llama, FACTS, ["summary"], layers=[1], bogus=1)
