"""Doctest collection: the examples of ``train`` and ``splice`` need SAELens (the ``sae``
extra); without it they are skipped, the rest run on the SAELens-free ``SimpleSAE``."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("sae_lens") else ["train.py", "splice.py"]
