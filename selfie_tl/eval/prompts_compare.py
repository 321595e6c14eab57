"""Interpretation-prompt comparison: SelfIE with several templates side by side, each
against its own no-injection control.

Prompt choice moves attribute-extraction accuracy more than anything else, so this runs
the same facts and layers through every template in
:data:`~selfie_tl.eval.templates.TEMPLATES` (plus the per-fact ``relation`` template) and
ranks them by best-layer accuracy above their control.

Example:
    >>> import pandas as pd
    >>> from selfie_tl.testing import tiny_model
    >>> facts = pd.DataFrame({"subject": ["Rome"], "attribute": ["Italy"],
    ...                       "prompt": ["Rome is in"], "template": ["{} is in"]})
    >>> rows, ranking = compare_prompts(tiny_model(), facts, ["summary", "relation"], layers=[1],
    ...                                 max_new_tokens=2, k=1, verbose=False)
    >>> sorted(ranking.template)
    ['relation', 'summary']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from transformer_lens import HookedTransformer

from selfie_tl.config import resolve_config
from selfie_tl.eval.attributes import AttributeEvalConfig, evaluate_attributes
from selfie_tl.eval.stats import selfie_vs_control, summarize


def compare_prompts(
    model: HookedTransformer,
    facts: pd.DataFrame,
    templates: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    model_knows: Sequence[bool] | None = None,
    **options: Any,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run SelfIE and its control for each template on the same facts and layers.

    Args:
        model: the model.
        facts: fact rows (``subject``, ``attribute``, ``prompt``, ``template``).
        templates: template names (see :func:`~selfie_tl.eval.templates.template_names`).
        layers: layers to read (default every 3rd).
        model_knows: optional per-fact fact-completion outcome.
        **options: other :class:`~selfie_tl.eval.attributes.AttributeEvalConfig` fields
            (``n_bootstrap`` and ``seed`` also set the ranking's intervals).

    Returns:
        ``(rows, ranking)``: every row, and one line per template with its best layer,
        accuracy and interval, its control's accuracy and interval, and ``margin`` (SelfIE
        minus control), best first.
    """
    config = AttributeEvalConfig(
        layers=None if layers is None else list(layers), methods=["selfie", "control"], templates=list(templates)
    )
    config = resolve_config(AttributeEvalConfig, config, options)
    rows = evaluate_attributes(model, facts, config, model_knows=model_knows)
    summary = summarize(rows, config.n_bootstrap, config.seed)
    ranking = pd.DataFrame(selfie_vs_control(summary))
    ranking["margin"] = ranking["selfie_accuracy"] - ranking["control_accuracy"]
    ranking = ranking.sort_values(["selfie_accuracy", "margin"], ascending=False).reset_index(drop=True)
    return rows, ranking
