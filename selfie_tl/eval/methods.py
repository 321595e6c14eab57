"""The four ways :func:`~selfie_tl.eval.attributes.evaluate_attributes` turns a fact's
subject vector into text, one function each.

* :func:`selfie_rows`: SelfIE with an interpretation template (method ``selfie:<template>``);
* :func:`control_rows`: the same template with the placeholders left as they are (no
  injection: one text per template group, the same for every fact, so it scores the
  prompt's prior; method ``control:<template>``, layer ``-1``);
* :func:`logit_lens_rows`: the top-k tokens of the logit lens
  (:func:`selfie_tl.lens.logit_lens_topk`);
* :func:`patchscope_rows`: the token-identity patchscope
  (:func:`~selfie_tl.eval.templates.identity_prompt`), the vector injected at the layer it
  was read from (capped at ``n_layers - 1``).

Each takes the model and the facts (``attribute`` column; ``template`` for the
``relation`` template) and, for the layer-dependent methods, the captured vectors
``[fact, layer, d_model]`` (from :func:`~selfie_tl.eval.attributes.subject_vectors`) with
their ``layers``. Each returns a list of rows: dicts with ``fact`` (the position of the
fact in ``facts``) and :data:`METHOD_COLUMNS`. A row is ``correct`` when
:func:`~selfie_tl.eval.facts.attribute_match` finds the attribute in ``output``; for the
logit lens ``output`` joins the top-k tokens with ``" | "`` and a hit needs one token that
spells the whole attribute, while ``first_token_hit`` records the looser rule "one of the
top-k ids is the attribute's first token".

Example:
    >>> import pandas as pd, torch
    >>> from selfie_tl.testing import tiny_model
    >>> model = tiny_model()
    >>> facts = pd.DataFrame({"attribute": ["France", "Italy"]})
    >>> vectors = torch.randn(2, 1, 64)
    >>> rows = logit_lens_rows(model, facts, vectors, [1], k=3)
    >>> [(r["fact"], r["method"], r["layer"], len(r["output"].split(" | "))) for r in rows]
    [(0, 'logit_lens', 1, 3), (1, 'logit_lens', 1, 3)]
    >>> rows = selfie_rows(model, facts, vectors, [1], "summary", k=1, max_new_tokens=2)
    >>> [(r["method"], r["template"]) for r in rows]
    [('selfie:summary', 'summary'), ('selfie:summary', 'summary')]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.eval.facts import attribute_match, normalize
from selfie_tl.eval.templates import identity_prompt, template_groups
from selfie_tl.generation import generate
from selfie_tl.interpret import interpret_vectors
from selfie_tl.lens import logit_lens_topk
from selfie_tl.prompts import InterpretationPrompt, tokenize
from selfie_tl.workers import InterpretPool

BATCH_SIZE = 128
"""Interpretations generated together in the evaluation. Per interpretation on 2 CPU cores
(SmolLM2-135M, 20 new tokens, paper prompt): 128 rows ran 7% faster than 64 and 33% faster
than 32 (decode steps read every weight once per step, whatever the batch)."""

METHOD_COLUMNS = ["method", "template", "layer", "output", "correct", "first_token_hit"]
"""The columns each method fills (besides ``fact``)."""

Progress = Callable[[int], Any] | None
"""Optional callback told how many interpretations were just produced (a progress bar's
``update``)."""


def method_row(
    facts: pd.DataFrame, i: int, method: str, template: str | None, layer: int, output: str,
    first_token_hit: bool | None = None,
) -> dict[str, Any]:  # fmt: skip
    """One row for fact ``i``, scored with :func:`~selfie_tl.eval.facts.attribute_match`.

    Example:
        >>> facts = pd.DataFrame({"attribute": ["France"]})
        >>> method_row(facts, 0, "selfie:summary", "summary", 3, "It is in France.")["correct"]
        True
    """
    return {
        "fact": i, "method": method, "template": template, "layer": layer, "output": output,
        "correct": attribute_match(output, facts["attribute"].iloc[i]), "first_token_hit": first_token_hit,
    }  # fmt: skip


def no_injection_text(model: HookedTransformer, prompt: InterpretationPrompt, max_new_tokens: int) -> str:
    """Greedy continuation of the interpretation prompt with the placeholders left as they
    are (the no-injection control)."""
    out = generate(model, prompt.input_ids[None], max_new_tokens, record_probs=False)
    return model.tokenizer.decode(out.tokens[0, : out.lengths[0]].tolist(), skip_special_tokens=True)


def first_token(tokenizer: Any, attribute: str) -> int:
    """Id of the first token of ``" " + attribute`` (the logit lens' looser target).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> tiny_tokenizer().decode([first_token(tiny_tokenizer(), "Italy")])
        ' '
    """
    return int(tokenize(tokenizer, " " + attribute)[0])


def token_hit(token_text: str, attribute: str) -> bool:
    """The logit lens' strict rule: one decoded token that spells the whole attribute.

    Example:
        >>> token_hit(" Italy", "Italy"), token_hit(" It", "Italy"), token_hit(" ", "Italy")
        (True, False, False)
    """
    return bool(normalize(token_text)) and attribute_match(token_text, attribute)


def logit_lens_rows(
    model: HookedTransformer,
    facts: pd.DataFrame,
    vectors: Float[Tensor, "fact layer d_model"],
    layers: Sequence[int],
    k: int = 20,
) -> list[dict[str, Any]]:
    """Logit-lens rows, layer by layer, each fact's top-``k`` tokens of
    :func:`selfie_tl.lens.logit_lens_topk` on its vector at that layer."""
    tok = model.tokenizer
    attributes = list(facts["attribute"])
    firsts = [first_token(tok, a) for a in attributes]
    rows = []
    for li, layer in enumerate(layers):
        top = logit_lens_topk(model, vectors[:, li], k)
        for i, attribute in enumerate(attributes):
            ids = top[i].tolist()
            words = [tok.decode([t]) for t in ids]
            row = method_row(facts, i, "logit_lens", None, layer, " | ".join(words), firsts[i] in ids)
            row["correct"] = any(token_hit(w, attribute) for w in words)
            rows.append(row)
    return rows


def control_rows(
    model: HookedTransformer, facts: pd.DataFrame, template: str, max_new_tokens: int, n_placeholders: int | None = None
) -> list[dict[str, Any]]:
    """No-injection control rows for interpretation template ``template`` (with
    ``n_placeholders`` per run when given): the greedy continuation of each template
    group's prompt (:func:`no_injection_text`), ``layer`` -1."""
    rows = []
    for prompt, idx in template_groups(model.tokenizer, facts, template, n_placeholders):
        text = no_injection_text(model, prompt, max_new_tokens)
        rows.extend(method_row(facts, i, f"control:{template}", template, -1, text) for i in idx)
    return rows


def _runner(model: HookedTransformer, pool: InterpretPool | None) -> Callable[..., list[str]]:
    """``interpret_vectors`` on ``model`` here, or the pool's (the same call, in its processes)."""
    if pool is None:
        return functools.partial(interpret_vectors, model)
    return pool.interpret_vectors


def selfie_rows(
    model: HookedTransformer,
    facts: pd.DataFrame,
    vectors: Float[Tensor, "fact layer d_model"],
    layers: Sequence[int],
    template: str,
    *,
    k: int | None,
    max_new_tokens: int,
    batch_size: int = BATCH_SIZE,
    progress: Progress = None,
    preset: str | None = None,
    n_placeholders: int | None = None,
    pool: InterpretPool | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """SelfIE rows: each fact's vector at each layer interpreted with ``template``
    (:func:`selfie_tl.interpret.interpret_vectors`, injection at layer ``k``; ``preset``
    and ``options`` are its settings, e.g. ``scale`` or ``no_repeat_ngram_size``;
    ``n_placeholders`` replaces the template's placeholder count; with ``pool``, the
    batches run in its worker processes).

    Every layer's vectors of a template group go to one call, so batches fill across layers
    (590 facts x 11 layers at 128 rows: 51 batches instead of 11 x 5 with a 78-row tail
    each); rows come back layer by layer, as if each layer ran alone."""
    groups = template_groups(model.tokenizer, facts, template, n_placeholders)
    run = _runner(model, pool)
    texts = [  # per group, layer-major: every fact at the first layer, then at the next, ...
        run(
            vectors[idx].transpose(0, 1).reshape(-1, vectors.shape[-1]), prompt, k=k,
            max_new_tokens=max_new_tokens, batch_size=batch_size, preset=preset, progress=progress, **options,
        )
        for prompt, idx in groups
    ]  # fmt: skip
    rows = []
    for li, layer in enumerate(layers):
        for (_, idx), out in zip(groups, texts):
            layer_texts = out[li * len(idx) : (li + 1) * len(idx)]
            rows.extend(method_row(facts, i, f"selfie:{template}", template, layer, t) for i, t in zip(idx, layer_texts))
    return rows


def patchscope_rows(
    model: HookedTransformer,
    facts: pd.DataFrame,
    vectors: Float[Tensor, "fact layer d_model"],
    layers: Sequence[int],
    *,
    max_new_tokens: int = 8,
    batch_size: int = BATCH_SIZE,
    progress: Progress = None,
    pool: InterpretPool | None = None,
) -> list[dict[str, Any]]:
    """Token-identity patchscope rows: each vector injected into
    :func:`~selfie_tl.eval.templates.identity_prompt` at the layer it was read from
    (``min(layer, n_layers - 1)``); with ``pool``, in its worker processes."""
    run = _runner(model, pool)
    rows = []
    prompt = identity_prompt(model.tokenizer)
    last_block = model.cfg.n_layers - 1
    for li, layer in enumerate(layers):
        texts = run(
            vectors[:, li], prompt, k=min(layer, last_block), max_new_tokens=max_new_tokens,
            batch_size=batch_size, progress=progress,
        )  # fmt: skip
        rows.extend(method_row(facts, i, "patchscope", "identity", layer, t) for i, t in enumerate(texts))
    return rows
