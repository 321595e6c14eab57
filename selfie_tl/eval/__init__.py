"""Evaluation: data readers, fact completion, attribute extraction and baselines.

One trade per module:

* :mod:`~selfie_tl.eval.data`: the packaged data (known facts with their fixed
  train / validation / test split, harmful requests, ethical-override prompts).
* :mod:`~selfie_tl.eval.facts`: the matching rule and fact completion.
* :mod:`~selfie_tl.eval.templates`: interpretation templates of the evaluation.
* :mod:`~selfie_tl.eval.methods`: SelfIE, no-injection control, logit lens and
  token-identity patchscope, one function each.
* :mod:`~selfie_tl.eval.attributes`: :func:`evaluate_attributes` (config, subject location,
  capture, the methods in turn).
* :mod:`~selfie_tl.eval.stats`: bootstrap intervals, :func:`summarize` and comparisons;
  :mod:`~selfie_tl.eval.report`: terminal table and PNG.
* :mod:`~selfie_tl.eval.prompts_compare`: :func:`compare_prompts`, templates side by side.
* :mod:`~selfie_tl.eval.control_supervised`, :mod:`~selfie_tl.eval.control_reinforcement`:
  the control evaluations.
* ``selfie-tl eval`` (:mod:`selfie_tl.eval.cli`) and ``selfie-tl control-eval``
  (:mod:`selfie_tl.eval.control_cli`): the command lines.
"""

from selfie_tl.eval.attributes import (
    AttributeEvalConfig,
    evaluate_attributes,
    subject_last_token,
    subject_vectors,
)
from selfie_tl.eval.data import (
    SPLITS,
    data_dir,
    load_ethical_override,
    load_harmful_behaviors,
    load_known_facts,
    split_of,
)
from selfie_tl.eval.facts import attribute_match, fact_completion, normalize
from selfie_tl.eval.methods import (
    control_rows,
    logit_lens_rows,
    no_injection_text,
    patchscope_rows,
    selfie_rows,
)
from selfie_tl.eval.prompts_compare import compare_prompts
from selfie_tl.eval.report import format_table, plot_accuracy
from selfie_tl.eval.stats import (
    best_layers,
    bootstrap_ci,
    logit_lens_vs_selfie,
    selfie_vs_control,
    summarize,
)
from selfie_tl.eval.templates import TEMPLATES, identity_prompt, template_names, template_prompt
from selfie_tl.lens import logit_lens_topk

__all__ = [
    "SPLITS",
    "TEMPLATES",
    "AttributeEvalConfig",
    "attribute_match",
    "best_layers",
    "bootstrap_ci",
    "compare_prompts",
    "control_rows",
    "data_dir",
    "evaluate_attributes",
    "fact_completion",
    "format_table",
    "identity_prompt",
    "load_ethical_override",
    "load_harmful_behaviors",
    "load_known_facts",
    "logit_lens_rows",
    "logit_lens_topk",
    "logit_lens_vs_selfie",
    "no_injection_text",
    "normalize",
    "patchscope_rows",
    "plot_accuracy",
    "selfie_rows",
    "selfie_vs_control",
    "split_of",
    "subject_last_token",
    "subject_vectors",
    "summarize",
    "template_names",
    "template_prompt",
]
