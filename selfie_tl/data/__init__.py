"""Evaluation data shipped with selfie_tl (package data; provenance in ``README.md`` here).

Read it through :mod:`selfie_tl.eval.data` (``load_known_facts``, ``load_harmful_behaviors``,
``load_ethical_override``), which also honours ``SELFIE_TL_DATA`` and explicit paths.
"""
