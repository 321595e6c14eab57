"""Evaluation: data readers, fact completion, attribute extraction and baselines.

* :func:`evaluate_attributes`: SelfIE, no-injection control, logit lens and token-identity
  patchscope on the subject's last token of known facts, per layer.
* :func:`compare_prompts`: SelfIE with several interpretation templates side by side.
* :func:`summarize`, :func:`format_table`, :func:`plot_accuracy`: accuracy with bootstrap
  intervals, a terminal table and a PNG.
* ``selfie-tl eval`` (:mod:`selfie_tl.eval.cli`): all of it in one command.
"""

from selfie_tl.eval.attributes import (
    AttributeEvalConfig,
    bootstrap_ci,
    evaluate_attributes,
    logit_lens_topk,
    no_injection_text,
    subject_last_token,
    subject_vectors,
)
from selfie_tl.eval.data import (
    load_ethical_override,
    load_harmful_behaviors,
    load_known_facts,
    shared_data_dir,
)
from selfie_tl.eval.facts import attribute_match, fact_completion, normalize
from selfie_tl.eval.prompts_compare import compare_prompts
from selfie_tl.eval.report import best_layers, format_table, plot_accuracy, selfie_vs_control, summarize
from selfie_tl.eval.templates import TEMPLATES, identity_prompt, template_names, template_prompt

__all__ = [
    "TEMPLATES",
    "AttributeEvalConfig",
    "attribute_match",
    "best_layers",
    "bootstrap_ci",
    "compare_prompts",
    "evaluate_attributes",
    "fact_completion",
    "format_table",
    "identity_prompt",
    "load_ethical_override",
    "load_harmful_behaviors",
    "load_known_facts",
    "logit_lens_topk",
    "no_injection_text",
    "normalize",
    "plot_accuracy",
    "selfie_vs_control",
    "shared_data_dir",
    "subject_last_token",
    "subject_vectors",
    "summarize",
    "template_names",
    "template_prompt",
]
