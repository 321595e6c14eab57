"""Relevancy: how much each generated token depends on the injected embedding.

SelfIE's relevancy score for a generated token ``t`` is
``|p(t | embedding injected) - p(t | placeholders left as they are)|``. A token with high
relevancy came from the embedding; one with low relevancy would have been written anyway,
driven by the interpretation prompt alone.

``p(t | injected)`` is recorded during generation. The baseline needs one teacher-forced
pass over the generated tokens; because nothing is injected, the interpretation prompt is
the same for every row, so its keys and values are computed once per call
(:class:`PromptBaseline`) and shared by every batch. Each batch then only feeds its
generated tokens, and positions that rows share (the same tokens so far) are computed once
(:mod:`selfie_tl.fast.prefix_sharing`; ``share_prefixes=False``, or
``selfie_tl.fast.prefix_sharing.ENABLED = False`` for every call, turns that off).

Reading the scores back from a result: :func:`tokens_and_relevancy` takes a result row (or
token and score lists) apart, :func:`relevant_spans` returns the stretches of an
interpretation whose relevancy exceeds a threshold, and :func:`content_relevancy` is the
one score of a whole interpretation that the pictures colour by (mean relevancy over its
content tokens; :func:`token_kinds` says which tokens those are).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from selfie_tl._values import as_list, float_or_nan
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast import prefix_sharing
from selfie_tl.fast.prefix_sharing import forward_stages, plan_prefixes
from selfie_tl.fast.row_compaction import any_hook_attached
from selfie_tl.generation import final_logits, residual_stream
from selfie_tl.hooks import model_lock, serialized
from selfie_tl.validation import check_model, check_token_ids


@dataclass
class PromptBaseline:
    """The uninjected interpretation prompt, run once: its KV cache and next-token log-probs.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> base = PromptBaseline.build(model, model.to_tokens("ab")[0])
        >>> tuple(base.first_logprobs.shape)
        (259,)
    """

    cache: TransformerLensKeyValueCache
    first_logprobs: Float[Tensor, " vocab"]

    @classmethod
    @torch.no_grad()
    def build(cls, model: HookedTransformer, prompt_ids: Int[Tensor, " pos"]) -> PromptBaseline:
        ids = check_token_ids(check_model(model), prompt_ids, "prompt_ids", ndim=1).to(model.cfg.device)[None]
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 1)
        with model_lock(model):
            resid = residual_stream(model, ids, cache)
        logprobs = final_logits(model, resid[:, -1]).float().log_softmax(-1)[0]
        return cls(cache=cache, first_logprobs=logprobs)

    def expanded(self, batch: int, frozen: bool = True) -> TransformerLensKeyValueCache:
        """A view of the cache for ``batch`` rows (no copy). Frozen, a forward reads it and
        leaves it as it is; unfrozen, a forward appends to it (into new tensors: the shared
        prompt entries are never written)."""
        entries = [
            TransformerLensKeyValueCacheEntry(
                past_keys=e.past_keys.expand(batch, -1, -1, -1),
                past_values=e.past_values.expand(batch, -1, -1, -1),
                frozen=frozen,
            )
            for e in self.cache.entries
        ]
        mask = self.cache.previous_attention_mask.expand(batch, -1)
        return TransformerLensKeyValueCache(entries=entries, previous_attention_mask=mask, frozen=frozen)


@serialized
@torch.no_grad()
def baseline_probs(
    model: HookedTransformer,
    prompt_ids: Int[Tensor, " pos"] | Int[Tensor, "batch pos"],
    generated: Int[Tensor, "batch steps"],
    prompt_baseline: PromptBaseline | None = None,
    *,
    share_prefixes: bool | None = None,
) -> Float[Tensor, "batch steps"]:
    """Probability of each generated token with nothing injected (teacher forcing).

    Args:
        model: the model.
        prompt_ids: the interpretation prompt (1-D, or ``[batch, pos]`` of identical rows).
        generated: ``[batch, steps]`` tokens generated with the embedding injected.
        prompt_baseline: the prompt's shared cache from :meth:`PromptBaseline.build`
            (built here when not given; pass it to reuse it across batches).
        share_prefixes: compute positions that rows share (the same tokens so far) once
            (:mod:`selfie_tl.fast.prefix_sharing`), when that saves work and no hook is
            attached to the model; ``False``: one pass over every row. The two agree to
            float rounding (different batch shapes). ``None``:
            ``selfie_tl.fast.prefix_sharing.ENABLED`` (on).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> p = baseline_probs(model, model.to_tokens("ab")[0], torch.tensor([[99, 100]]))
        >>> tuple(p.shape)
        (1, 2)
    """
    check_model(model)
    device = model.cfg.device
    if not isinstance(generated, Tensor) or generated.ndim != 2:
        shape = tuple(generated.shape) if isinstance(generated, Tensor) else type(generated).__name__
        raise InvalidArgumentError(f"generated must be a [batch, steps] tensor of token ids, got {shape}")
    generated = check_token_ids(model, generated, "generated", ndim=2).to(device)
    if prompt_baseline is None:
        ids = check_token_ids(model, prompt_ids, "prompt_ids")
        prompt_baseline = PromptBaseline.build(model, ids if ids.ndim == 1 else ids[0])
    batch, steps = generated.shape
    first = prompt_baseline.first_logprobs[generated[:, 0]]
    if steps == 1:
        return first.exp()[:, None]
    # The last generated token predicts nothing we score, so it is not fed.
    fed, targets = generated[:, :-1], generated[:, 1:]
    if share_prefixes is None:
        share_prefixes = prefix_sharing.ENABLED
    plan = plan_prefixes(fed) if share_prefixes and not any_hook_attached(model) else None
    if plan is None or plan.total >= fed.numel():
        resid = residual_stream(model, fed, prompt_baseline.expanded(batch))
        rest = final_logits(model, resid).float().log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    else:
        stages = forward_stages(
            fed, plan, lambda rows: prompt_baseline.expanded(rows, frozen=False),
            lambda tokens, cache: residual_stream(model, tokens, cache),
        )  # fmt: skip
        rest = torch.empty(fed.shape, dtype=torch.float32, device=device)
        for i, resid in enumerate(stages):
            start, end = plan.cuts[i], plan.cuts[i + 1]
            logprobs = final_logits(model, resid).float().log_softmax(-1)  # one row per distinct prefix
            at = torch.arange(end - start, device=device)
            rest[:, start:end] = logprobs[plan.member[i][:, None], at[None, :], targets[:, start:end]]
    return torch.cat([first[:, None], rest], dim=1).exp()


def relevancy_scores(
    injected_probs: Float[Tensor, "batch steps"], baseline: Float[Tensor, "batch steps"]
) -> Float[Tensor, "batch steps"]:
    """``|p_injected - p_baseline|`` per generated token (values in [0, 1]).

    Example:
        >>> import torch
        >>> relevancy_scores(torch.tensor([[0.9, 0.5]]), torch.tensor([[0.1, 0.5]]))
        tensor([[0.8000, 0.0000]])
    """
    for name, value in (("injected_probs", injected_probs), ("baseline", baseline)):
        if not isinstance(value, Tensor):
            raise InvalidArgumentError(f"{name} must be a tensor, got {type(value).__name__}")
    if injected_probs.shape != baseline.shape:
        raise InvalidArgumentError(
            f"injected_probs has shape {tuple(injected_probs.shape)} but baseline has shape "
            f"{tuple(baseline.shape)}; they must be the same [batch, steps]"
        )
    return (injected_probs - baseline).abs()


# --------------------------------------------------------------------------- reading results


def tokens_and_relevancy(
    tokens: Sequence[str] | Mapping[str, Any],
    relevancy: Sequence[float] | None = None,
    *,
    require_relevancy: bool = False,
) -> tuple[list[str], list[float] | None]:
    """Generated tokens and their scores, from lists or from a result row.

    Args:
        tokens: the generated tokens, or a row of :func:`selfie_tl.interpret`'s DataFrame
            (``df.iloc[i]``, a dict, or a ``df.itertuples()`` tuple) with
            ``generated_tokens`` and ``relevancy``.
        relevancy: one score per token (ignored when a row is given).
        require_relevancy: raise when there are no scores.

    Returns:
        ``(tokens, scores)``: tokens as strings, scores as floats (NaN for missing ones), or
        ``None`` when there are none.

    Raises:
        InvalidArgumentError: ``tokens`` is one string, a row lacks the columns, lengths
            differ, or (with ``require_relevancy``) there are no scores.

    Example:
        >>> tokens_and_relevancy({"generated_tokens": ["a", "b"], "relevancy": [0.1, None]})
        (['a', 'b'], [0.1, nan])
    """
    if hasattr(tokens, "_asdict"):  # a row from df.itertuples()
        tokens = tokens._asdict()
    if isinstance(tokens, (Mapping, pd.Series)):
        row = tokens
        if require_relevancy and ("generated_tokens" not in row or "relevancy" not in row):
            raise InvalidArgumentError("row needs 'generated_tokens' and 'relevancy' columns")
        if "generated_tokens" not in row:
            raise InvalidArgumentError("row has no 'generated_tokens'; pass tokens and relevancy instead")
        tokens, relevancy = as_list(row["generated_tokens"]) or [], as_list(row.get("relevancy"))
    if isinstance(tokens, str):
        raise InvalidArgumentError("tokens must be a list of token strings, not one string")
    if relevancy is None and require_relevancy:
        raise InvalidArgumentError("no relevancy scores; run interpret with relevancy=True")
    tokens = [str(t) for t in tokens]
    rel = None if relevancy is None else [float_or_nan(r) for r in relevancy]
    if rel is not None and len(rel) != len(tokens):
        raise InvalidArgumentError(f"{len(tokens)} tokens but {len(rel)} relevancy scores; they must align")
    return tokens, rel


@dataclass(frozen=True)
class RelevantSpan:
    """A run of consecutive generated tokens whose relevancy exceeds a threshold.

    Attributes:
        start: index of the first token.
        end: one past the last token.
        text: the tokens joined.
        max_relevancy, mean_relevancy: over the span.
    """

    start: int
    end: int
    text: str
    max_relevancy: float
    mean_relevancy: float


def relevant_spans(
    tokens: Sequence[str] | Mapping[str, Any],
    relevancy: Sequence[float] | None = None,
    threshold: float = 0.1,
) -> list[RelevantSpan]:
    """The stretches of an interpretation that came from the embedding.

    A token belongs to a span when its relevancy is strictly greater than ``threshold``;
    neighbouring such tokens merge into one span. Tokens with low relevancy are what the
    interpretation prompt would have produced anyway.

    Args:
        tokens: generated tokens, or a result row with ``generated_tokens`` and ``relevancy``.
        relevancy: one score per token (ignored when a row is given).
        threshold: scores above it count as relevant.

    Raises:
        InvalidArgumentError: no relevancy (interpret ran with ``relevancy=False``) or
            lengths that do not match.

    Example:
        >>> spans = relevant_spans(["The", " Himal", "ayas", " are"], [0.0, 0.5, 0.4, 0.05], 0.1)
        >>> [(s.start, s.end, s.text) for s in spans]
        [(1, 3, ' Himalayas')]
    """
    tokens, rel = tokens_and_relevancy(tokens, relevancy, require_relevancy=True)
    if not isinstance(threshold, int | float) or math.isnan(threshold):
        raise InvalidArgumentError(f"threshold must be a number, got {threshold!r}")
    spans, start = [], None
    for i, r in enumerate([*rel, float("nan")]):  # NaN sentinel closes a trailing span
        above = not math.isnan(r) and r > threshold
        if above and start is None:
            start = i
        elif not above and start is not None:
            chunk = rel[start:i]
            spans.append(
                RelevantSpan(start, i, "".join(tokens[start:i]), max(chunk), sum(chunk) / len(chunk))
            )
            start = None
    return spans


# --------------------------------------------------------------------------- one score per reply

SPECIAL_TOKEN_PATTERN = re.compile(
    r"<\|[^|<>\s]*\|>|</?s>|<(?:eos|bos|pad|unk|mask|sep|cls|end_of_turn|start_of_turn)>|\[/?INST\]",
    re.IGNORECASE,
)
"""Special tokens recognised without a tokenizer: ``<|im_end|>``, ``<|endoftext|>``,
``<|eot_id|>``, ``</s>``, ``<eos>``, ``<end_of_turn>``, ``[INST]`` and the like."""

REPEAT_NGRAM = 3
"""Default ``ngram`` of :func:`token_kinds`: a token that completes a 3-gram already seen
is a repetition."""


def token_kinds(
    tokens: Sequence[str],
    *,
    special_tokens: Sequence[str] | None = None,
    ngram: int = REPEAT_NGRAM,
) -> list[str]:
    """What each generated token is: ``"content"``, ``"whitespace"``, ``"special"`` or ``"repeat"``.

    * ``"whitespace"``: the token is empty or only whitespace (spaces, newlines, tabs);
    * ``"special"``: the token is one of ``special_tokens`` (e.g.
      ``tokenizer.all_special_tokens``) or, whether or not those are given, matches
      :data:`SPECIAL_TOKEN_PATTERN` (``<|im_end|>``, ``</s>``, ``<eos>``, ...);
    * ``"repeat"``: among the other tokens (compared without surrounding whitespace and
      case), it completes an ``ngram``-gram that already occurred earlier in the reply;
    * ``"content"``: everything else.

    Example:
        >>> token_kinds(["Paris", ",", " Paris", ",", " Paris", ",", "\\n", "<|im_end|>"])
        ['content', 'content', 'content', 'content', 'repeat', 'repeat', 'whitespace', 'special']
    """
    if not isinstance(ngram, int) or isinstance(ngram, bool) or ngram < 1:
        raise InvalidArgumentError(f"ngram must be an int >= 1, got {ngram!r}")
    specials = {str(t) for t in special_tokens or ()}
    kinds: list[str] = []
    words: list[str] = []  # normalised non-whitespace, non-special tokens so far
    seen: set[tuple[str, ...]] = set()
    for tok in tokens:
        tok = str(tok)
        if not tok.strip():
            kinds.append("whitespace")
            continue
        if tok in specials or SPECIAL_TOKEN_PATTERN.fullmatch(tok.strip()):
            kinds.append("special")
            continue
        words.append(tok.strip().lower())
        gram = tuple(words[-ngram:]) if len(words) >= ngram else None
        kinds.append("repeat" if gram is not None and gram in seen else "content")
        if gram is not None:
            seen.add(gram)
    return kinds


def content_relevancy(
    tokens: Sequence[str] | Mapping[str, Any],
    relevancy: Sequence[float] | None = None,
    *,
    special_tokens: Sequence[str] | None = None,
    ngram: int = REPEAT_NGRAM,
) -> float:
    """The score of one interpretation: mean relevancy over its content tokens.

    Content tokens are those :func:`token_kinds` calls ``"content"``: whitespace-only
    tokens, special/end tokens and repetitions (a token completing an ``ngram``-gram
    already generated) are left out, so that replies of newlines, end tokens or a phrase
    said over and over do not score high on the relevancy of their filler. Tokens with a
    missing score are left out too.

    This is the colour of a cell in :func:`selfie_tl.viz.plot_grid`,
    :func:`selfie_tl.viz.grid_html` and the HTML report; :func:`content_relevancy_column`
    computes it for every row of a result.

    Args:
        tokens: generated tokens, or a result row with ``generated_tokens`` and ``relevancy``.
        relevancy: one score per token (ignored when a row is given).
        special_tokens: exact special-token strings (e.g. ``tokenizer.all_special_tokens``),
            in addition to :data:`SPECIAL_TOKEN_PATTERN`.
        ngram: n-gram length for repetitions.

    Returns:
        The mean, or NaN when there are no scores (``relevancy=False``) or no content
        tokens (an empty or whitespace-only reply).

    Example:
        >>> content_relevancy(["\\n", "Mount", " Everest", "\\n", "<|im_end|>"], [0.9, 0.1, 0.5, 0.9, 0.9])
        0.3
        >>> content_relevancy(["\\n", "\\n"], [0.9, 0.9])
        nan
    """
    tokens, rel = tokens_and_relevancy(tokens, relevancy)
    if rel is None:
        return float("nan")
    kinds = token_kinds(tokens, special_tokens=special_tokens, ngram=ngram)
    chosen = [r for r, kind in zip(rel, kinds, strict=True) if kind == "content" and not math.isnan(r)]
    return sum(chosen) / len(chosen) if chosen else float("nan")


def content_relevancy_column(
    df: pd.DataFrame, *, special_tokens: Sequence[str] | None = None, ngram: int = REPEAT_NGRAM
) -> pd.Series:
    """:func:`content_relevancy` of every row of a result, as a Series named ``content_relevancy``.

    Meant for ``df["content_relevancy"] = content_relevancy_column(df, special_tokens=
    model.tokenizer.all_special_tokens)``; the pictures read that column when present and
    compute the same score from ``generated_tokens`` and ``relevancy`` otherwise.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"generated_tokens": [["a", " b"], [" "]], "relevancy": [[0.2, 0.4], [0.9]]})
        >>> content_relevancy_column(df).round(3).tolist()
        [0.3, nan]
    """
    for column in ("generated_tokens", "relevancy"):
        if column not in df.columns:
            raise InvalidArgumentError(f"DataFrame has no {column!r} column; pass the result of interpret")
    values = [
        content_relevancy(toks, rel, special_tokens=special_tokens, ngram=ngram) if as_list(toks) is not None
        else float("nan")
        for toks, rel in zip(df["generated_tokens"], df["relevancy"], strict=True)
    ]  # fmt: skip
    return pd.Series(values, index=df.index, name="content_relevancy", dtype=float)


__all__ = [
    "REPEAT_NGRAM",
    "SPECIAL_TOKEN_PATTERN",
    "PromptBaseline",
    "RelevantSpan",
    "baseline_probs",
    "content_relevancy",
    "content_relevancy_column",
    "relevancy_scores",
    "relevant_spans",
    "token_kinds",
    "tokens_and_relevancy",
]
