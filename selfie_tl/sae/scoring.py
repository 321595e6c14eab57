"""Scoring feature explanations automatically, with baselines that need no generation.

The score (:func:`score_explanations`): run each explanation text through the model and
encode it with the SAE. A good explanation of feature ``f`` should make ``f`` fire more
than the explanations of other features do. For each feature, the AUROC of separating its
own explanation (one positive) from the other features' explanations of the same method
(negatives) by ``f``'s largest activation over the explanation's tokens; 0.5 is chance, 1
is perfect. Explanation texts are text the SAE never trained on, so this is a held-out
test, but a narrow one: it rewards explanations that contain what the feature responds to
(often tokens), not ones that describe it abstractly.

Methods compared (:func:`baseline_explanations`):

* ``selfie``: the SelfIE explanation;
* ``top_tokens``: the feature's top-activating tokens on a corpus sample, joined (no
  generation; it sees the feature's activations, so it is a strong, partly circular baseline);
* ``logit_lens``: the top tokens of the decoder row read through the unembedding.

:func:`summarize_scores` gives means with 95% bootstrap intervals over features (and
paired differences to SelfIE); :func:`threshold_evaluation` asks whether a low
self-similarity (the automatic scale choice's failure flag) predicts a poor explanation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.sae._compat import check_features, sae_info
from selfie_tl.sae.activations import encode, residual_batch

SCORE_PREFIX = "\n"
"""Text put before each explanation: the SAE never saw position 0 in training (an attention
sink), so the explanation's own tokens start at position 1."""


def _join(tokens: Sequence[str] | None) -> str:
    if tokens is None:
        return ""
    if isinstance(tokens, str):
        return tokens
    return ", ".join(t.strip() for t in tokens if t and t.strip())


def baseline_explanations(df: pd.DataFrame, n_tokens: int = 5) -> dict[str, list[str]]:
    """Explanation texts per method from an :func:`~selfie_tl.sae.explain_features` frame.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"explanation": ["a river"], "top_tokens": [[" river", " stream"]],
        ...                    "logit_lens": [[" water", " flow"]]})
        >>> baseline_explanations(df)
        {'selfie': ['a river'], 'top_tokens': ['river, stream'], 'logit_lens': ['water, flow']}
    """
    out = {"selfie": [str(x) for x in df["explanation"]]}
    if "top_tokens" in df and df["top_tokens"].notna().all():
        out["top_tokens"] = [_join(list(t)[:n_tokens]) for t in df["top_tokens"]]
    if "logit_lens" in df and df["logit_lens"].notna().all():
        out["logit_lens"] = [_join(list(t)[:n_tokens]) for t in df["logit_lens"]]
    return out


@torch.no_grad()
def text_activations(
    model: HookedTransformer,
    sae: Any,
    texts: Sequence[str],
    features: Sequence[int],
    *,
    prefix: str = SCORE_PREFIX,
    batch_size: int = 32,
    verbose: bool = False,
) -> torch.Tensor:
    """``[len(texts), len(features)]``: each feature's largest activation over each text's tokens
    (after ``prefix``; an empty text scores 0).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> text_activations(model, sae, ["cat", "a dog", ""], [0, 1]).shape
        torch.Size([3, 2])
    """
    from selfie_tl.generation import pad_id

    info = sae_info(sae)
    feats = torch.as_tensor(check_features(list(features), info.d_sae))
    tok = model.tokenizer
    n_prefix = len(tok(prefix).input_ids) if prefix else 0
    out = torch.zeros(len(texts), len(feats))
    encoded = [tok(prefix + t).input_ids if t.strip() else [] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    order = [i for i in order if len(encoded[i]) > n_prefix]
    for start in tqdm(range(0, len(order), batch_size), desc="scoring", disable=not verbose, leave=False):
        rows = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in rows)
        # right padding: causal attention keeps real tokens unaffected by the padding after them
        ids = torch.full((len(rows), width), pad_id(tok), dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.bool)
        for j, i in enumerate(rows):
            ids[j, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[j, n_prefix : len(encoded[i])] = True
        acts = encode(sae, residual_batch(model, ids, info.hook_name))[..., feats.to(sae.W_dec.device)].cpu()
        acts = acts.masked_fill(~mask[..., None], 0.0)
        out[rows] = acts.amax(dim=1).clamp_min(0.0)
    return out


def own_vs_others_auroc(matrix: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per feature ``j`` (column), the AUROC of ``matrix[j, j]`` (its own explanation) against
    ``matrix[i, j]`` for ``i != j`` (the others'), ties counted half.

    Example:
        >>> import torch
        >>> own_vs_others_auroc(torch.tensor([[3.0, 0.0], [1.0, 0.0]])).tolist()
        [1.0, 0.5]
    """
    m = np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    if m.ndim != 2 or m.shape[1] != n or n < 2:
        raise InvalidArgumentError(f"need a square matrix of at least 2 x 2, got shape {m.shape}")
    own = np.diag(m)
    others = m.copy()
    np.fill_diagonal(others, np.nan)
    greater = np.nansum(others < own[None, :], axis=0)
    ties = np.nansum(others == own[None, :], axis=0)
    return (greater + 0.5 * ties) / (n - 1)


def score_explanations(
    model: HookedTransformer,
    sae: Any,
    features: Sequence[int],
    explanations: Mapping[str, Sequence[str]],
    *,
    batch_size: int = 32,
    verbose: bool = False,
) -> pd.DataFrame:
    """The own-vs-others AUROC of every method's explanation of every feature.

    Args:
        model, sae: the model and SAE.
        features: feature indices (at least 2).
        explanations: method name -> one text per feature (same order).

    Returns:
        Long DataFrame: ``method, feature, text, own_activation, auroc``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> s = score_explanations(model, sae, [0, 1, 2], {"a": ["x", "y", "z"]})
        >>> list(s.columns), len(s)
        (['method', 'feature', 'text', 'own_activation', 'auroc'], 3)
    """
    feats = list(features)
    rows = []
    for method, texts in explanations.items():
        texts = [str(t) for t in texts]
        if len(texts) != len(feats):
            raise InvalidArgumentError(f"method {method!r} has {len(texts)} explanations for {len(feats)} features")
        m = text_activations(model, sae, texts, feats, batch_size=batch_size, verbose=verbose)
        auroc = own_vs_others_auroc(m)
        for j, f in enumerate(feats):
            rows.append({"method": method, "feature": f, "text": texts[j], "own_activation": float(m[j, j]),
                         "auroc": float(auroc[j])})  # fmt: skip
    return pd.DataFrame(rows, columns=["method", "feature", "text", "own_activation", "auroc"])


def bootstrap_ci(values: Sequence[float], n_bootstrap: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean.

    Example:
        >>> m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0], n_bootstrap=200)
        >>> lo <= m <= hi
        True
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_bootstrap, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(x.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def summarize_scores(scores: pd.DataFrame, n_bootstrap: int = 1000, seed: int = 0, reference: str = "selfie") -> pd.DataFrame:
    """Per method: mean AUROC with a 95% bootstrap interval over features, the share of
    features scored >= 0.9, and the paired difference to ``reference`` with its interval.

    Example:
        >>> import pandas as pd
        >>> s = pd.DataFrame({"method": ["selfie", "selfie", "b", "b"], "feature": [0, 1, 0, 1],
        ...                   "auroc": [1.0, 0.5, 0.5, 0.5]})
        >>> summarize_scores(s, 100).method.tolist()
        ['selfie', 'b']
    """
    out = []
    wide = scores.pivot_table(index="feature", columns="method", values="auroc")
    for method in dict.fromkeys(scores["method"]):
        vals = wide[method].to_numpy()
        mean, lo, hi = bootstrap_ci(vals, n_bootstrap, seed)
        row = {"method": method, "n_features": int(np.isfinite(vals).sum()), "mean_auroc": mean, "ci_low": lo,
               "ci_high": hi, "share_auroc_ge_0.9": float(np.nanmean(vals >= 0.9))}  # fmt: skip
        if reference in wide and method != reference:
            d_mean, d_lo, d_hi = bootstrap_ci(wide[reference].to_numpy() - vals, n_bootstrap, seed)
            row.update({f"{reference}_minus_this": d_mean, "diff_ci_low": d_lo, "diff_ci_high": d_hi})
        out.append(row)
    return pd.DataFrame(out)


def threshold_evaluation(
    explained: pd.DataFrame,
    scores: pd.DataFrame,
    thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5),
    *,
    success: float = 0.9,
    method: str = "selfie",
) -> pd.DataFrame:
    """Does a low self-similarity flag a bad explanation?

    For each threshold ``t``, features with ``self_similarity < t`` are flagged. Reported:
    how many are flagged, the mean AUROC of flagged and kept features, and the precision
    and recall of the flag as a detector of failures (AUROC < ``success``). The row
    ``threshold="rank"`` gives the AUROC of self-similarity itself as a predictor of success.

    Example:
        >>> import pandas as pd
        >>> ex = pd.DataFrame({"feature": [0, 1, 2, 3], "self_similarity": [0.1, 0.2, 0.6, 0.7]})
        >>> sc = pd.DataFrame({"method": "selfie", "feature": [0, 1, 2, 3], "auroc": [0.4, 0.5, 0.95, 1.0]})
        >>> float(threshold_evaluation(ex, sc, [0.3]).loc[0, "flag_precision"])
        1.0
    """
    if "self_similarity" not in explained or explained["self_similarity"].isna().all():
        raise InvalidArgumentError("explained has no self_similarity values; explain with scale='auto'")
    merged = explained[["feature", "self_similarity"]].merge(
        scores[scores["method"] == method][["feature", "auroc"]], on="feature"
    )
    sim = merged["self_similarity"].to_numpy(dtype=float)
    auroc = merged["auroc"].to_numpy(dtype=float)
    fail = auroc < success
    rows = []
    for t in thresholds:
        flag = sim < t
        rows.append({
            "threshold": t, "n_flagged": int(flag.sum()), "n_kept": int((~flag).sum()),
            "mean_auroc_flagged": float(auroc[flag].mean()) if flag.any() else float("nan"),
            "mean_auroc_kept": float(auroc[~flag].mean()) if (~flag).any() else float("nan"),
            "flag_precision": float(fail[flag].mean()) if flag.any() else float("nan"),
            "flag_recall": float(flag[fail].mean()) if fail.any() else float("nan"),
        })  # fmt: skip
    ok = ~fail
    if ok.any() and fail.any():
        greater = (sim[ok][:, None] > sim[fail][None, :]).mean() + 0.5 * (sim[ok][:, None] == sim[fail][None, :]).mean()
        rank = float(greater)
    else:
        rank = float("nan")
    rows.append({"threshold": "rank", "n_flagged": int(fail.sum()), "n_kept": int(ok.sum()),
                 "mean_auroc_flagged": float("nan"), "mean_auroc_kept": float("nan"),
                 "flag_precision": float("nan"), "flag_recall": float("nan"), "self_similarity_auroc": rank})  # fmt: skip
    return pd.DataFrame(rows)


__all__ = [
    "SCORE_PREFIX",
    "baseline_explanations",
    "bootstrap_ci",
    "own_vs_others_auroc",
    "score_explanations",
    "summarize_scores",
    "text_activations",
    "threshold_evaluation",
]
