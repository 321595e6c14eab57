"""A lean decode loop over a HookedTransformer and its KV cache.

``HookedTransformer.generate`` unembeds every prompt position at the prefill and does
bookkeeping on each step that a batch of equal-length SelfIE prompts does not need. This
loop runs the blocks through the model's own ``forward`` (``stop_at_layer``), so every hook
on the model fires, then applies the final norm and the unembedding to the last position
only. It returns the chosen tokens together with the probability the model gave each one,
which the relevancy score reuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens import HookedTransformer
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl.errors import InvalidArgumentError, NumericalError
from selfie_tl.fast.attention import fast_decode_attention, init_decode_cache
from selfie_tl.fast.block import shared_ln1 as _shared_ln1
from selfie_tl.fast.lean_decode import LeanDecoder, supports_lean_decode
from selfie_tl.fast.row_compaction import any_hook_attached, select_cache_rows
from selfie_tl.fast.screened_argmax import screen_applies
from selfie_tl.fast.screened_argmax import screened_argmax as _screened_argmax
from selfie_tl.fast.unembed import unembed, unembed_watched
from selfie_tl.hooks import HookFn, check_fwd_hooks, serialized
from selfie_tl.validation import (
    as_bool,
    as_float,
    as_int,
    as_optional_int,
    check_context,
    check_model,
    check_sequence,
    check_token_ids,
    is_int,
)


@dataclass
class GenerationOutput:
    """Tokens chosen by :func:`generate`.

    Attributes:
        tokens: ``[batch, steps]`` chosen ids; after a row's end-of-sequence token the row
            holds that token repeated.
        probs: ``[batch, steps]`` probability of each chosen token (temperature 1, before any
            sampling filter), from the generation pass itself; all NaN when ``generate`` was
            called with ``record_probs=False``. After a row's end the values are padding: the
            probability of repeating the end token while the row stayed in the batch, NaN
            once it was dropped (``drop_finished``).
        lengths: per row, the number of tokens before the first end-of-sequence token.
    """

    tokens: Int[Tensor, "batch steps"]
    probs: Float[Tensor, "batch steps"]
    lengths: list[int]


def final_logits(model: HookedTransformer, resid: Float[Tensor, "batch pos d_model"], apply_ln: bool = True) -> Tensor:
    """Final norm, unembedding and logit soft-cap, as ``HookedTransformer.forward`` does
    (the unembedding in column blocks on the CPU, bit-identical: :mod:`selfie_tl.fast.unembed`).
    ``apply_ln=False`` skips the final norm (the logit lens without it)."""
    if apply_ln and model.cfg.normalization_type is not None:
        resid = model.ln_final(resid)
    logits = unembed(model, resid)
    cap = model.cfg.output_logits_soft_cap
    if cap > 0.0:
        logits = cap * torch.tanh(logits / cap)
    return logits


def residual_stream(
    model: HookedTransformer,
    tokens: Int[Tensor, "batch pos"],
    past_kv_cache: TransformerLensKeyValueCache | None = None,
    attention_mask: Int[Tensor, "batch pos"] | None = None,
) -> Float[Tensor, "batch pos d_model"]:
    """Run every block and return the residual before the final norm.

    The attention mask is always passed explicitly (all ones unless given: SelfIE batches
    share one prompt, so there is no padding). Without it TransformerLens would treat any
    pad-token id in the text - for SmolLM2 the pad token is ``<|im_end|>`` - as padding.
    """
    mask = torch.ones_like(tokens) if attention_mask is None else attention_mask.to(tokens.device)
    return model(tokens, past_kv_cache=past_kv_cache, attention_mask=mask, stop_at_layer=model.cfg.n_layers)


def process_logits(
    logits: Float[Tensor, "batch vocab"],
    history: Int[Tensor, "batch seq"],
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
) -> Float[Tensor, "batch vocab"]:
    """Decoding controls with Hugging Face ``generate`` semantics, applied before choosing.

    * ``repetition_penalty`` (CTRL, Keskar et al. 2019): the logit of every token already
      in ``history`` (prompt and generated so far) is divided by the penalty when positive
      and multiplied by it when negative; 1.0 does nothing.
    * ``no_repeat_ngram_size`` ``n``: a token that would complete an ``n``-gram already
      present in ``history`` gets logit ``-inf``; 0 does nothing.

    Example:
        >>> import torch
        >>> process_logits(torch.tensor([[2.0, -2.0, 1.0]]), torch.tensor([[0, 1]]), 2.0).tolist()
        [[1.0, -4.0, 1.0]]
        >>> process_logits(torch.zeros(1, 3), torch.tensor([[1, 2, 1]]), no_repeat_ngram_size=2).tolist()
        [[0.0, 0.0, -inf]]
    """
    if repetition_penalty != 1.0:
        seen = logits.gather(1, history)
        seen = torch.where(seen < 0, seen * repetition_penalty, seen / repetition_penalty)
        logits = logits.scatter(1, history, seen)
    n = no_repeat_ngram_size
    if n > 0 and history.shape[1] >= n - 1 and history.shape[1] >= 1:
        if n == 1:
            banned = torch.zeros_like(logits, dtype=torch.long).scatter_add(1, history, torch.ones_like(history))
        else:
            grams = history.unfold(1, n, 1)  # [batch, windows, n]
            prefix = history[:, history.shape[1] - (n - 1) :]
            hits = (grams[:, :, :-1] == prefix[:, None, :]).all(-1).long()
            banned = torch.zeros_like(logits, dtype=torch.long).scatter_add(1, grams[:, :, -1], hits)
        logits = logits.masked_fill(banned > 0, float("-inf"))
    return logits


def _choose(
    logits: Float[Tensor, "batch vocab"],
    do_sample: bool,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> Int[Tensor, " batch"]:
    if not do_sample:
        return logits.argmax(dim=-1)
    scores = logits / temperature
    if top_k is not None and top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cum = sorted_scores.softmax(-1).cumsum(-1)
        drop = cum - sorted_scores.softmax(-1) > top_p  # keep the token that crosses top_p
        scores = scores.scatter(-1, order, sorted_scores.masked_fill(drop, float("-inf")))
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def check_decoding(
    model: HookedTransformer,
    *,
    do_sample: Any = False,
    temperature: Any = 1.0,
    top_k: Any = None,
    top_p: Any = None,
    repetition_penalty: Any = 1.0,
    no_repeat_ngram_size: Any = 0,
) -> dict[str, Any]:
    """The decoding controls of :func:`generate`, checked and normalised (Python types).

    Every control is checked whether or not sampling is on, so a typo never waits for the
    day ``do_sample=True`` is passed.

    Raises:
        InvalidArgumentError: a control of the wrong type or out of range.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_decoding(tiny_model(), do_sample=True, top_k=5)["top_k"]
        5
    """
    return {
        "do_sample": as_bool(do_sample, "do_sample"),
        "temperature": as_float(temperature, "temperature", 0.0, low_open=True),
        "top_k": as_optional_int(top_k, "top_k", 1),
        "top_p": None if top_p is None else as_float(top_p, "top_p", 0.0, 1.0, low_open=True),
        "repetition_penalty": as_float(repetition_penalty, "repetition_penalty (1.0 = off)", 0.0, low_open=True),
        "no_repeat_ngram_size": as_int(no_repeat_ngram_size, "no_repeat_ngram_size (0 = off)", 0),
    }


def _check_eos(model: HookedTransformer, eos_token_ids: Any) -> list[int]:
    if eos_token_ids is None:
        eos = getattr(model.tokenizer, "eos_token_id", None) if model.tokenizer is not None else None
        return [] if eos is None else [int(eos)]
    items = [eos_token_ids] if is_int(eos_token_ids) else check_sequence(eos_token_ids, "eos_token_ids", "token ids")
    vocab = int(model.cfg.d_vocab)
    for t in items:
        if not is_int(t) or not 0 <= int(t) < vocab:
            raise InvalidArgumentError(f"eos_token_ids must be token ids in [0, {vocab - 1}], got {eos_token_ids!r:.80}")
    return [int(t) for t in items]


def _maybe_nonfinite(logits: Tensor) -> Tensor:
    """A 0-dim flag, no host sync: ``False`` proves every logit finite (a NaN or inf in any
    one makes the sum NaN or inf). One pass over the logits, against four for
    ``isfinite(...).all()`` (abs, two compares, and): 3% of a decode step at 128 rows.
    ``True`` may also mean a sum that overflowed, so :func:`_all_finite` confirms it."""
    return ~torch.isfinite(logits.sum())


def _all_finite(logits: Tensor, flag: Tensor | bool | None = None) -> bool:
    """Whether every logit is finite; ``flag`` is :func:`_maybe_nonfinite`'s, if taken."""
    if flag is None:
        flag = _maybe_nonfinite(logits)
    return not bool(flag) or bool(torch.isfinite(logits).all())


def _nonfinite(logits: Tensor, step: int, batch_rows: Tensor | None = None) -> NumericalError:
    bad = (~torch.isfinite(logits).all(dim=-1)).nonzero().flatten()
    rows = (bad if batch_rows is None else batch_rows[bad]).tolist()
    where = "the prefill" if step == 0 else f"decode step {step}"
    error = NumericalError(
        f"the model's logits became NaN or inf at {where} for batch rows {rows[:10]}; the residual stream "
        "overflowed. If vectors were injected, they are far too large: lower the scale, use norm_match=True, "
        "or check the vectors' norms (selfie_tl.interop.typical_norm gives the model's usual scale)"
    )
    error.rows = rows  # type: ignore[attr-defined]
    return error


@serialized
@torch.no_grad()
def generate(
    model: HookedTransformer,
    input_ids: Int[Tensor, "batch pos"],
    max_new_tokens: int,
    *,
    prefill_hooks: Sequence[tuple[str, HookFn]] = (),
    attention_mask: Int[Tensor, "batch pos"] | None = None,
    eos_token_ids: Sequence[int] | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    fast_attention: bool = True,
    repetition_penalty: float = 1.0,
    no_repeat_ngram_size: int = 0,
    shared_ln1: bool = True,
    drop_finished: bool = True,
    lean_decode: bool = True,
    prefill: Callable[[TransformerLensKeyValueCache], Tensor] | None = None,
    record_probs: bool = True,
    screened_argmax: bool = True,
) -> GenerationOutput:
    """Generate up to ``max_new_tokens`` tokens for a batch of equal-length prompts.

    Args:
        model: the model; hooks already on it fire on every forward.
        input_ids: ``[batch, pos]`` prompt ids; rows of different lengths must be
            left-padded and described by ``attention_mask``.
        max_new_tokens: upper bound on generated tokens; stops early once every row has
            produced an end-of-sequence token.
        prefill_hooks: ``(hook_name, fn)`` pairs active during the prefill only (this is
            how SelfIE injects embeddings).
        attention_mask: ``[batch, pos]`` 1 for real tokens, 0 for left padding.
        eos_token_ids: ids that end a row (default: the tokenizer's EOS, if any).
        do_sample: sample instead of greedy argmax.
        temperature, top_k, top_p: sampling controls (ignored when greedy).
        generator: a seeded ``torch.Generator`` for reproducible sampling.
        repetition_penalty, no_repeat_ngram_size: decoding controls with Hugging Face
            semantics (:func:`process_logits`); the recorded probabilities stay the model's
            own, before these controls.
        fast_attention: for rotary models, run the cached decode steps through
            :mod:`selfie_tl.fast.attention` (same hooks and tokens, fewer copies); installed
            on the model only while this call runs. ``False`` uses TransformerLens' own
            attention and KV cache throughout.
        shared_ln1: normalise each block's attention input once instead of three times
            (:mod:`selfie_tl.fast.block`; bypassed while a hook watches ``ln1``); ``False``
            runs TransformerLens' blocks unchanged.
        drop_finished: in greedy decoding, drop rows that have ended from the batch (and
            their KV cache, :mod:`selfie_tl.fast.row_compaction`) so they stop costing compute;
            kept while any hook is attached to the model (hooks then see the full batch)
            and when sampling (the random stream would change). Tokens and lengths are
            those of ``False``; ``probs`` after a dropped row's end are NaN (not computed)
            instead of the probability of repeating its end token.
        lean_decode: with ``fast_attention``, take :mod:`selfie_tl.fast.lean_decode`'s decode step
            (the same arithmetic without hook points and per-layer bookkeeping;
            bit-identical residuals) on every step where no hook of any kind is attached to
            a supported model; ``False`` always runs ``HookedTransformer.forward``.
        prefill: replaces the prefill forward (then ``prefill_hooks`` are not used): called
            with the fresh, empty KV cache, it must fill it for every prompt position and
            return the residual before the final norm whose last position is the prompt's
            last (as :meth:`selfie_tl.fast.shared_prefill.SharedPrefill.run` does).
        record_probs: record each chosen token's probability (a softmax over the whole
            vocabulary per step); ``False`` leaves ``probs`` NaN.
        screened_argmax: with ``record_probs=False``, greedy decoding and no logit
            processors, choose each token by :mod:`selfie_tl.fast.screened_argmax` (a
            bfloat16 screen of the vocabulary, then float32 logits of the tokens that could
            win: the same choices) where it applies; ``False`` always unembeds in full.

    Returns:
        A :class:`GenerationOutput`.

    Raises:
        PromptError: ``input_ids`` are not integer ids of the model.
        ContextLengthError: prompt length + ``max_new_tokens`` exceeds ``model.cfg.n_ctx``.
        HookError: a prefill hook names no hook point, or returns the wrong shape.
        NumericalError: the logits became NaN or inf (e.g. an injected vector far too large).
        InvalidArgumentError: any other argument of the wrong type or out of range.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> out = generate(model, model.to_tokens("ab"), max_new_tokens=3)
        >>> tuple(out.tokens.shape)
        (1, 3)
    """
    check_model(model)
    input_ids = check_token_ids(model, input_ids, "input_ids", ndim=2)
    max_new_tokens = as_int(max_new_tokens, "max_new_tokens", 1)
    check_context(model, input_ids.shape[1], max_new_tokens)
    if attention_mask is not None:
        if not isinstance(attention_mask, Tensor) or attention_mask.shape != input_ids.shape:
            got = tuple(attention_mask.shape) if isinstance(attention_mask, Tensor) else type(attention_mask).__name__
            raise InvalidArgumentError(f"attention_mask must be a tensor of input_ids' shape {tuple(input_ids.shape)}, got {got}")
        if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise InvalidArgumentError("attention_mask must hold only 0 (left padding) and 1 (real tokens)")
    controls = check_decoding(
        model, do_sample=do_sample, temperature=temperature, top_k=top_k, top_p=top_p,
        repetition_penalty=repetition_penalty, no_repeat_ngram_size=no_repeat_ngram_size,
    )  # fmt: skip
    do_sample, temperature, top_k, top_p = (controls[k] for k in ("do_sample", "temperature", "top_k", "top_p"))
    repetition_penalty, no_repeat_ngram_size = controls["repetition_penalty"], controls["no_repeat_ngram_size"]
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InvalidArgumentError(f"generator must be None or a torch.Generator, got {generator!r:.80}")
    fast_attention = as_bool(fast_attention, "fast_attention")
    shared_ln1 = as_bool(shared_ln1, "shared_ln1")
    drop_finished = as_bool(drop_finished, "drop_finished") and not do_sample
    lean_decode = as_bool(lean_decode, "lean_decode")
    record_probs = as_bool(record_probs, "record_probs")
    screen = (
        as_bool(screened_argmax, "screened_argmax")
        and not record_probs
        and not do_sample
        and repetition_penalty == 1.0
        and no_repeat_ngram_size == 0
        and screen_applies(model)
    )
    if prefill is not None and not callable(prefill):
        raise InvalidArgumentError(f"prefill must be None or a callable taking the cache, got {prefill!r:.80}")
    prefill_hooks = check_fwd_hooks(model, prefill_hooks, "prefill_hooks")
    device = model.cfg.device
    input_ids = input_ids.to(device)
    batch = input_ids.shape[0]
    eos_ids = torch.tensor(_check_eos(model, eos_token_ids), dtype=torch.long, device=device)

    if fast_attention:
        cache = init_decode_cache(model, batch, input_ids.shape[1] + max_new_tokens)
        scope = fast_decode_attention(model)
        lean = LeanDecoder(model) if lean_decode and max_new_tokens > 1 and supports_lean_decode(model) else None
    else:
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, device, batch)
        scope = contextlib.nullcontext()
        lean = None
    norm_scope = _shared_ln1(model) if shared_ln1 else contextlib.nullcontext()

    def next_token(resid: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(logits, None), or (None, the greedy choice) where the screen applies."""
        if screen and not unembed_watched(model):  # the rest of screen_applies holds all call
            chosen = _screened_argmax(model, resid[:, -1])
            if chosen is not None:
                return None, chosen
        return final_logits(model, resid[:, -1]), None

    with scope, norm_scope:
        if prefill is not None:
            resid = prefill(cache)
        else:
            with model.hooks(fwd_hooks=list(prefill_hooks)):
                resid = residual_stream(model, input_ids, cache, attention_mask)
        logits, chosen = next_token(resid)
        if logits is not None and not _all_finite(logits):
            raise _nonfinite(logits, 0)

        tokens = torch.empty(batch, 0, dtype=torch.long, device=device)
        probs = torch.empty(batch, 0, device=device)
        lengths = torch.full((batch,), -1, dtype=torch.long, device=device)
        # The compute batch: `rows` (full-batch indices; None = all rows, in order) and the
        # per-row state of those rows. Rows leave it only through `_drop`.
        rows: Tensor | None = None
        prompt_ids = input_ids
        finished = torch.zeros(batch, dtype=torch.bool, device=device)
        nonfinite, logits_seen = torch.zeros((), dtype=torch.bool, device=device), logits  # set by each step
        for step in range(max_new_tokens):
            own = tokens if rows is None else tokens.index_select(0, rows)
            if logits is None:  # the screen chose (greedy, no processors)
                choice = chosen
            else:
                logits = logits.float()
                scores = logits
                if repetition_penalty != 1.0 or no_repeat_ngram_size > 0:
                    history = torch.cat([prompt_ids, own], dim=1)
                    scores = process_logits(logits, history, repetition_penalty, no_repeat_ngram_size)
                choice = _choose(scores, do_sample, temperature, top_k, top_p, generator)
            # Finished rows keep emitting their EOS so the batch stays rectangular.
            choice = torch.where(finished, own[:, -1] if step else choice, choice)
            if record_probs and logits is not None:
                prob = logits.softmax(dim=-1).gather(-1, choice[:, None])
            else:
                prob = torch.full((choice.shape[0], 1), float("nan"), device=device)
            if rows is None:
                full_choice, full_prob = choice, prob
            else:  # dropped rows repeat their end token; their probability is not computed
                full_choice = tokens[:, -1].index_copy(0, rows, choice)
                full_prob = torch.full((batch, 1), float("nan"), device=device).index_copy(0, rows, prob)
            tokens = torch.cat([tokens, full_choice[:, None]], dim=1)
            probs = torch.cat([probs, full_prob], dim=1)
            hit_eos = torch.isin(choice, eos_ids) & ~finished
            here = torch.where(hit_eos, torch.tensor(step, device=device), lengths if rows is None else lengths[rows])
            lengths = here if rows is None else lengths.index_copy(0, rows, here)
            finished |= hit_eos
            # One host sync per greedy step: how many rows are done (whether to stop, and
            # whether to drop rows), folded with the finiteness check of the logits just
            # chosen from (argmax of NaN is harmless; the error names the same step as a
            # check right after the forward would).
            if step == 0:
                done = int(finished.sum())
            else:
                flags = torch.stack([finished.sum(), nonfinite.long()]).tolist()
                if flags[1] and not _all_finite(logits_seen, True):
                    raise _nonfinite(logits_seen, step, rows)
                done = flags[0]
            if done == finished.shape[0] or step == max_new_tokens - 1:
                break
            if drop_finished and done > 0 and not any_hook_attached(model):
                keep = (~finished).nonzero().flatten()
                select_cache_rows(cache, keep)
                rows = keep if rows is None else rows.index_select(0, keep)
                prompt_ids = input_ids.index_select(0, rows)
                choice = choice.index_select(0, keep)
                finished = finished.index_select(0, keep)
            if lean is not None and lean.ready(cache):
                resid = lean.step(choice[:, None], cache)
            else:
                resid = residual_stream(model, choice[:, None], cache)
            logits, chosen = next_token(resid)
            if logits is None:  # the screen checked the final norm's output is finite
                nonfinite = torch.zeros((), dtype=torch.bool, device=device)
                continue
            nonfinite = _maybe_nonfinite(logits)
            logits_seen = logits
            if do_sample and not _all_finite(logits, nonfinite):  # sampling cannot choose from NaN: check now
                raise _nonfinite(logits, step + 1, rows)
    lengths = torch.where(lengths < 0, torch.tensor(tokens.shape[1], device=device), lengths)
    return GenerationOutput(tokens=tokens, probs=probs, lengths=lengths.tolist())


def pad_id(tokenizer: Any) -> int:
    """The id used for padding: the tokenizer's pad token, else 0 (masked out either way)."""
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def left_pad(
    sequences: Sequence[Int[Tensor, " pos"]], pad: int = 0
) -> tuple[Int[Tensor, "batch pos"], Int[Tensor, "batch pos"]]:
    """Stack 1-D id tensors into a left-padded batch and its attention mask.

    Left padding keeps every row's last real token in the last column, where generation
    and next-token readings look. The mask is 1 on real tokens, 0 on padding.

    Example:
        >>> import torch
        >>> ids, mask = left_pad([torch.tensor([5, 6, 7]), torch.tensor([8])], pad=0)
        >>> ids.tolist(), mask.tolist()
        ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    if not sequences:
        raise InvalidArgumentError("left_pad needs at least one sequence")
    width = max(len(seq) for seq in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    return ids, mask


@serialized
def complete(
    model: HookedTransformer,
    prompts: Sequence[str],
    max_new_tokens: int = 20,
    batch_size: int = 16,
    *,
    verbose: bool = False,
) -> list[str]:
    """Greedy continuations of text prompts (left-padded batches), decoded without specials.

    Prompts are tokenized with the tokenizer's own defaults, like everything in selfie_tl.
    Hooks on the model (e.g. an attached control edit) are active.

    Raises:
        InvalidArgumentError: ``prompts`` is one string (pass ``[text]``) or not a list, or a
            size is not an int >= 1.
        PromptError: a prompt is not a non-empty string.
        ContextLengthError: a prompt + ``max_new_tokens`` exceeds the model's context.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> len(complete(model, ["ab", "abcdef"], max_new_tokens=3))
        2
    """
    from tqdm.auto import tqdm

    from selfie_tl.prompts import tokenize

    check_model(model)
    if isinstance(prompts, str):
        raise InvalidArgumentError(
            f"prompts must be a list of strings, got one string {prompts[:40]!r}; wrap it: complete(model, [text])"
        )
    prompts = check_sequence(prompts, "prompts", "strings")
    max_new_tokens = as_int(max_new_tokens, "max_new_tokens", 1)
    batch_size = as_int(batch_size, "batch_size", 1)
    encoded = [tokenize(model.tokenizer, p) for p in prompts]
    if encoded:
        longest = max(range(len(encoded)), key=lambda i: len(encoded[i]))
        check_context(model, len(encoded[longest]), max_new_tokens, f"prompt {longest}")
    texts: list[str] = []
    for start in tqdm(range(0, len(encoded), batch_size), desc="completing", disable=not verbose, leave=False):
        ids, mask = left_pad(encoded[start : start + batch_size], pad_id(model.tokenizer))
        out = generate(model, ids, max_new_tokens, attention_mask=mask, record_probs=False)
        for row, length in enumerate(out.lengths):
            texts.append(model.tokenizer.decode(out.tokens[row, :length].tolist(), skip_special_tokens=True))
    return texts
