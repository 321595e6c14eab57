"""SelfIE x sparse autoencoders, with SAELens (install the ``sae`` extra).

* train a small SAE for a model with SAELens' trainer, offline and on a CPU
  (:func:`load_or_train`, ``python -m selfie_tl.sae.train``);
* explain its features with SelfIE (:func:`explain_features`): decoder rows injected into
  ``What does "_" mean?``, with the automatic scale, relevancy, logit lens and
  top-activating tokens; batched, resumable, with an HTML page (:func:`write_features_html`);
* score explanations against baselines without generation (:func:`score_explanations`,
  :func:`summarize_scores`, :func:`threshold_evaluation`);
* ablate features in vectors, as hooks, and see the effect on interpretations and answers
  (:func:`ablate_features`, :func:`ablation_hooks`, :func:`ablation_flow`);
* work inside SAELens' ``HookedSAETransformer`` with SAEs spliced in
  (:func:`as_hooked_sae_transformer`, :func:`spliced`, :func:`capture_features`).

SAELens SAE objects are accepted wherever this package takes an SAE; their hook name
and model name are read from ``cfg.metadata`` (SAELens 6) or ``cfg`` (SAELens 5) and
checked against the model (:func:`check_sae`). Only training and splicing import SAELens;
the rest works with any object that has ``W_dec``, ``encode``, ``decode`` and a config
naming its hook.

Example:
    >>> import torch
    >>> from selfie_tl.testing import tiny_model
    >>> from selfie_tl.sae import explain_features, features_as_vectors
    >>> from selfie_tl.sae.testing import tiny_sae
    >>> model = tiny_model(); sae = tiny_sae(model)
    >>> features_as_vectors(sae, [1, 2], model=model).shape
    torch.Size([2, 64])
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from selfie_tl.sae._compat import (
    FeatureIndexError,
    SAEInfo,
    SAEMismatchError,
    check_features,
    check_sae,
    decoder_rows,
    residual_layer,
    sae_info,
)
from selfie_tl.sae.ablate import ablate_features, ablated, ablation_flow, ablation_hooks
from selfie_tl.sae.activations import (
    FeatureActivations,
    capture_features,
    collect_activations,
    feature_activations,
)
from selfie_tl.sae.explain import (
    EXPLAIN_COLUMNS,
    EXPLANATION_PROMPTS,
    corpus_sample,
    explain_features,
    explanation_prompt,
)
from selfie_tl.sae.report import features_html, write_features_html
from selfie_tl.sae.scoring import (
    baseline_explanations,
    bootstrap_ci,
    score_explanations,
    summarize_scores,
    text_activations,
    threshold_evaluation,
)
from selfie_tl.sae.splice import as_hooked_sae_transformer, attached_saes, check_injection_free, spliced
from selfie_tl.sae.train import SAETrainConfig, load_or_train, train_sae


def features_as_vectors(sae: Any, features: Any, *, model: Any = None, allow_other_model: bool = False) -> Tensor:
    """Decoder rows of ``features`` as ``[n, d_model]`` vectors for any selfie_tl function that
    takes vectors (:func:`selfie_tl.interpret_vectors`, :func:`selfie_tl.lens.logit_lens`, ...).

    With ``model`` the SAE is checked against it first (:func:`check_sae`).
    """
    if model is not None:
        info = check_sae(model, sae, allow_other_model=allow_other_model)
        d_sae = info.d_sae
    else:
        d_sae = sae_info(sae).d_sae
    return decoder_rows(sae, check_features(features, d_sae))


__all__ = [
    "EXPLAIN_COLUMNS",
    "EXPLANATION_PROMPTS",
    "FeatureActivations",
    "FeatureIndexError",
    "SAEInfo",
    "SAEMismatchError",
    "SAETrainConfig",
    "ablate_features",
    "ablated",
    "ablation_flow",
    "ablation_hooks",
    "as_hooked_sae_transformer",
    "attached_saes",
    "baseline_explanations",
    "bootstrap_ci",
    "capture_features",
    "check_features",
    "check_injection_free",
    "check_sae",
    "collect_activations",
    "corpus_sample",
    "explain_features",
    "explanation_prompt",
    "feature_activations",
    "features_as_vectors",
    "features_html",
    "load_or_train",
    "residual_layer",
    "sae_info",
    "score_explanations",
    "spliced",
    "summarize_scores",
    "text_activations",
    "threshold_evaluation",
    "train_sae",
    "write_features_html",
]
