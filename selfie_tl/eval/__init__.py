"""Evaluation: data readers, fact completion, attribute extraction and baselines."""

from selfie_tl.eval.data import load_ethical_override, load_harmful_behaviors, load_known_facts, shared_data_dir
from selfie_tl.eval.facts import attribute_match, fact_completion

__all__ = [
    "attribute_match",
    "fact_completion",
    "load_ethical_override",
    "load_harmful_behaviors",
    "load_known_facts",
    "shared_data_dir",
]
