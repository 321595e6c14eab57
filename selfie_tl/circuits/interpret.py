"""Interpret component writes with SelfIE, at a scale the model can read.

Component writes are far shorter than the residual states SelfIE was made for, and their
lengths vary a lot. On SmolLM2-135M-Instruct, at the last token of "The Eiffel Tower is
located in the city of", head writes have norms from 2 to 99 (median 6.5) and MLP writes a
median of 45, while the default interpretation prompt's own residual at its placeholders
has norm 90 at the default injection layer ``k=2`` (210-230 at ``k=4..6``). Injected as
they are, what the model says depends on the length as much as on the direction: halving
the raw writes of the 36 heads of blocks 1, 3, 23 and 29 changed 28 of the 36
interpretations, and a grid of such rows compares lengths as much as contents. So
:func:`interpret_components` brings every write to one norm before injecting it:

* ``scale="norm"`` (the default): each write is rescaled to the mean norm of the
  interpretation prompt's own placeholder states at the injection layer ``k``
  (``norm_match=True`` of :class:`~selfie_tl.InterpretationConfig`, see
  :func:`selfie_tl.scaling.placeholder_norm`). A component is then read by its direction
  alone (tripling the writes above changed none of the 36 texts), at the length the model
  expects at ``k``; how much it writes is in the ``write_norm`` column. It costs one short
  prefill in all and is deterministic.
* ``scale="auto"``: the same norm matching, then a multiplier per write chosen by
  :func:`selfie_tl.scaling.choose_scales` from ``auto_scales`` (one extra prefill of
  ``n x len(auto_scales)`` rows). On the 36 heads above it took 3x as long (38 s against
  12 s on two CPU threads), chose the largest candidate (8x) for 33 of them and flagged 8
  as below the self-similarity threshold; use it for a handful of components, not a grid.
* a number: ``number * write``, injected as it is (``norm_match=True`` can still be
  passed): for studying the length itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

from selfie_tl.adapter import SelfInterpretationAdapter
from selfie_tl.circuits.writes import ComponentWrites, component_writes
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.hooks import HookFn, prompt_tokens
from selfie_tl.interpret import (
    AUTO_SCALE_COLUMNS,
    RESULT_COLUMNS,
    SPAN_THRESHOLD,
    InterpretationBatch,
    InterpretationConfig,
    generate_interpretations,
    resolve_settings,
)
from selfie_tl.presets import Preset, get_preset
from selfie_tl.relevancy import content_relevancy, relevant_spans
from selfie_tl.scaling import placeholder_norm

COMPONENT_COLUMNS = ["component", "kind", "write_norm"]
"""Columns :func:`interpret_components` adds to :func:`selfie_tl.interpret`'s."""

SCALES = ("norm", "auto")


def scale_options(scale: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The ``scale`` / ``norm_match`` settings that ``scale`` of :func:`interpret_components` means.

    Example:
        >>> scale_options("norm", {}), scale_options(2.0, {})
        ({'norm_match': True, 'scale': 1.0}, {'norm_match': False, 'scale': 2.0})
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            raise InvalidArgumentError(f"scale must be 'norm', 'auto' or a number, got {scale!r}")
        if options.get("norm_match") is False:
            raise InvalidArgumentError(
                f"scale={scale!r} norm-matches every write; norm_match=False contradicts it (pass a number)"
            )
        return {"norm_match": True, "scale": 1.0 if scale == "norm" else "auto"}
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise InvalidArgumentError(f"scale must be 'norm', 'auto' or a number, got {scale!r}")
    return {"norm_match": bool(options.get("norm_match", False)), "scale": float(scale)}


def _settings(
    model: HookedTransformer,
    scale: Any,
    preset: str | Preset | None,
    interpretation_prompt: Any,
    adapter: Any,
    options: dict[str, Any],
):
    options = dict(options)
    options.update(scale_options(scale, options))
    return resolve_settings(model, preset, None, options, interpretation_prompt, adapter)


def _row_fields(model: HookedTransformer, batch: InterpretationBatch, i: int) -> dict[str, Any]:
    """The columns :func:`selfie_tl.interpret` fills from one generated interpretation."""
    specials = list(getattr(model.tokenizer, "all_special_tokens", []) or [])
    rel = batch.relevancy[i] if batch.relevancy is not None else None
    tokens = batch.tokens[i]
    fields: dict[str, Any] = {
        "interpretation": batch.texts[i],
        "relevancy": rel,
        "mean_relevancy": (sum(rel) / len(rel) if rel else float("nan")) if rel is not None else None,
        "content_relevancy": content_relevancy(tokens, rel, special_tokens=specials)
        if rel is not None
        else None,
        "relevant_text": (
            " … ".join(s.text.strip() for s in relevant_spans(tokens, rel, SPAN_THRESHOLD))
            if rel
            else ("" if rel is not None else None)
        ),
        "generated_tokens": tokens,
        "scale": batch.scales[i],
    }
    if batch.self_similarity is not None:
        fields.update(
            self_similarity=batch.self_similarity[i],
            entropy=batch.entropy[i],
            auto_scale_ok=batch.auto_scale_ok[i],
        )
    return fields


def _text(model: HookedTransformer, prompt: str | Tensor, ids: Tensor) -> str:
    return prompt if isinstance(prompt, str) else model.tokenizer.decode(ids)


def _check_prompt(model: HookedTransformer, prompt: Any) -> Tensor:
    if isinstance(prompt, str) and not prompt.strip():
        raise InvalidArgumentError(f"prompt is blank ({prompt!r}); give some text")
    if not isinstance(prompt, str | Tensor):
        raise InvalidArgumentError(f"prompt must be text or 1-D token ids, got {type(prompt).__name__}")
    return prompt_tokens(model, prompt)


def _writes(
    model: HookedTransformer,
    prompt: str | Tensor,
    cache: ActivationCache | dict[str, Tensor] | None,
    layers: Any,
    kind: Any,
    position: int,
    hooks: Sequence[tuple[str, HookFn]],
    select: dict[str, Any],
) -> ComponentWrites:
    if cache is not None:
        return component_writes(model, cache, layers, kind, position, **select)
    with model.hooks(fwd_hooks=list(hooks)):
        return component_writes(model, prompt, layers, kind, position, **select)


def _attrs(df: pd.DataFrame, model: HookedTransformer, config: InterpretationConfig, prompt: Any,
           preset: Any, scale: Any, writes: ComponentWrites) -> None:  # fmt: skip
    df.attrs["config"] = config.to_dict()
    df.attrs["preset"] = get_preset(preset).name if preset is not None else None
    df.attrs["interpretation_prompt"] = prompt.text
    df.attrs["model_name"] = str(model.cfg.model_name)
    df.attrs["scale_mode"] = scale
    df.attrs["unit_neurons"] = writes.unit


def interpret_components(
    model: HookedTransformer,
    prompt: str | Tensor,
    layers: int | Iterable[int] | None,
    kind: str | Sequence[str] = "head",
    position: int = -1,
    *,
    heads: int | Sequence[int] | None = None,
    neurons: int | Sequence[int] | None = None,
    sources: int | Sequence[int] | None = None,
    unit: bool = False,
    components: Sequence[Any] | None = None,
    cache: ActivationCache | dict[str, Tensor] | None = None,
    scale: str | float = "norm",
    interpretation_prompt: Any = None,
    k: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    relevancy: bool | None = None,
    fwd_hooks: Sequence[tuple[str, HookFn]] = (),
    adapter: SelfInterpretationAdapter | str | None = None,
    preset: str | Preset | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Interpret what components write at one position of a prompt.

    The writes of :func:`~selfie_tl.circuits.component_writes` are interpreted with
    :func:`selfie_tl.generate_interpretations` (one call for all of them), each brought to
    the residual norm of the injection layer first (``scale="norm"``, see the module
    docstring for why and for the alternatives).

    Args:
        model: the model.
        prompt: text (tokenized with the tokenizer's defaults) or 1-D ids.
        layers: block index or indices (``blocks.l``; ``None`` for ``kind="embed"``).
        kind: ``"head"``, ``"attn"``, ``"mlp"``, ``"neuron"``, ``"embed"``, ``"source"`` or
            a list of them.
        position: destination position whose writes are read (negative from the end).
        heads, neurons, sources, unit: which heads / neurons / source positions, and unit
            neuron directions (as in :func:`~selfie_tl.circuits.component_writes`).
        components: an explicit list of components (labels such as ``"L23H4"``,
            ``"L0 MLP"``) instead of ``layers`` x ``kind``; pass ``layers=None``.
        cache: an ``ActivationCache`` of ``prompt`` to read instead of running it again.
        scale: ``"norm"`` (default), ``"auto"``, or a number (see the module docstring).
        interpretation_prompt, k, max_new_tokens, batch_size, relevancy, adapter, preset,
            **options: as in :func:`selfie_tl.interpret` (``scale`` and ``norm_match`` are
            set by ``scale`` here and override a preset's).
        fwd_hooks: hooks active while the writes are read (unless ``cache`` is given) and
            during generation, e.g. a control edit.

    Returns:
        :func:`selfie_tl.interpret`'s columns, one row per component, plus ``component``
        (label), ``kind`` and ``write_norm`` (L2 norm of the raw write). ``layer`` is the
        block index (``-1`` for the embedding), ``token`` / ``token_decoded`` the
        destination position, ``scale`` the multiplier applied after norm matching.
        ``df.attrs`` also holds ``target_norm`` (the norm writes were matched to, or
        ``None``) and ``scale_mode``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.hooks import hook_count
        >>> model = tiny_model()
        >>> df = interpret_components(model, "The cat", [1, 2], ["head", "mlp"], k=1, max_new_tokens=3)
        >>> df[["layer", "component"]].values.tolist()[:2], len(df), hook_count(model)
        ([[1, 'L1H0'], [1, 'L1H1']], 10, 0)
    """
    ids = _check_prompt(model, prompt)
    config, iprompt, adapter_obj = _settings(
        model, scale, preset, interpretation_prompt, adapter,
        dict(k=k, max_new_tokens=max_new_tokens, batch_size=batch_size, relevancy=relevancy, **options),
    )  # fmt: skip
    select = {"heads": heads, "neurons": neurons, "sources": sources, "unit": unit, "components": components}
    writes = _writes(model, prompt, cache, layers, kind, position, fwd_hooks, select)
    batch = generate_interpretations(
        model, writes.vectors, iprompt, config, fwd_hooks=fwd_hooks, adapter=adapter_obj, token_probs=False
    )
    text = _text(model, prompt, ids)
    decoded = model.tokenizer.decode([int(ids[writes.position])])
    norms = writes.norms.tolist()
    rows = []
    for i, c in enumerate(writes.components):
        rows.append(
            {"prompt": text, "layer": c.layer, "token": writes.position, "token_decoded": decoded,
             **_row_fields(model, batch, i), "component": c.label, "kind": c.kind, "write_norm": norms[i]}
        )  # fmt: skip
    auto = list(AUTO_SCALE_COLUMNS) if batch.self_similarity is not None else []
    df = pd.DataFrame(rows, columns=RESULT_COLUMNS + auto + COMPONENT_COLUMNS)
    _attrs(df, model, config, iprompt, preset, scale, writes)
    df.attrs["target_norm"] = _target_norm(model, iprompt, config, fwd_hooks)
    return df


def _target_norm(
    model: HookedTransformer, iprompt: Any, config: InterpretationConfig, hooks: Any
) -> float | None:
    if not config.norm_match:
        return None
    with model.hooks(fwd_hooks=list(hooks)):
        return placeholder_norm(model, iprompt, config.k)


def compare_components(
    model: HookedTransformer,
    clean_prompt: str | Tensor,
    corrupted_prompt: str | Tensor | None,
    layers: int | Iterable[int] | None,
    kind: str | Sequence[str] = "head",
    position: int = -1,
    *,
    patch: Sequence[tuple[str, HookFn]] = (),
    names: tuple[str, str] = ("clean", "corrupted"),
    heads: int | Sequence[int] | None = None,
    neurons: int | Sequence[int] | None = None,
    sources: int | Sequence[int] | None = None,
    unit: bool = False,
    components: Sequence[Any] | None = None,
    scale: str | float = "norm",
    interpretation_prompt: Any = None,
    k: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    relevancy: bool | None = None,
    fwd_hooks: Sequence[tuple[str, HookFn]] = (),
    adapter: SelfInterpretationAdapter | str | None = None,
    preset: str | Preset | None = None,
    **options: Any,
) -> pd.DataFrame:
    """The same components' writes in two runs, interpreted side by side.

    Run 1 is ``clean_prompt``; run 2 is ``corrupted_prompt`` (or ``clean_prompt`` again when
    it is ``None``) with the ``patch`` hooks active while its writes are read, e.g.
    :func:`~selfie_tl.circuits.patching_hooks` (copy upstream components from another run),
    an ablation, or a control edit. ``fwd_hooks`` apply to both runs and to generation;
    ``patch`` never touches the interpretation itself. All ``2 n`` writes are interpreted
    in one :func:`selfie_tl.generate_interpretations` call.

    Args:
        model: the model.
        clean_prompt: run 1.
        corrupted_prompt: run 2's prompt (``None``: the clean prompt, changed by ``patch``).
        layers, kind, position, heads, neurons, sources, unit, components: the components,
            as in :func:`interpret_components` (``position`` is resolved in each run).
        patch: hooks active while run 2's writes are read.
        names: column prefixes of the two runs.
        scale and the rest: as in :func:`interpret_components`.

    Returns:
        One row per component: ``component``, ``kind``, ``layer``, ``token``, then per run
        ``<name>_token_decoded``, ``<name>_interpretation``, ``<name>_content_relevancy``,
        ``<name>_relevant_text`` and ``<name>_write_norm``, and ``cosine``: the cosine
        similarity of the two raw writes.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> df = compare_components(model, "The cat", "The dog", 2, "mlp", k=1, max_new_tokens=3)
        >>> list(df.columns[:6])
        ['component', 'kind', 'layer', 'token', 'clean_token_decoded', 'clean_interpretation']
    """
    if (not isinstance(names, tuple | list) or len(names) != 2 or not all(isinstance(n, str) and n for n in names)
            or names[0] == names[1]):  # fmt: skip
        raise InvalidArgumentError(f"names must be two different non-empty strings, got {names!r}")
    other = clean_prompt if corrupted_prompt is None else corrupted_prompt
    runs = [(clean_prompt, _check_prompt(model, clean_prompt)), (other, _check_prompt(model, other))]
    config, iprompt, adapter_obj = _settings(
        model, scale, preset, interpretation_prompt, adapter,
        dict(k=k, max_new_tokens=max_new_tokens, batch_size=batch_size, relevancy=relevancy, **options),
    )  # fmt: skip
    select = {"heads": heads, "neurons": neurons, "sources": sources, "unit": unit, "components": components}
    first = _writes(model, clean_prompt, None, layers, kind, position, fwd_hooks, select)
    second = _writes(model, other, None, layers, kind, position, [*fwd_hooks, *patch], select)
    vectors = torch.cat([first.vectors, second.vectors])
    batch = generate_interpretations(
        model, vectors, iprompt, config, fwd_hooks=fwd_hooks, adapter=adapter_obj, token_probs=False
    )
    n = len(first)
    cosine = F.cosine_similarity(first.vectors, second.vectors, dim=-1).tolist()
    rows = []
    for i, c in enumerate(first.components):
        row: dict[str, Any] = {
            "component": c.label,
            "kind": c.kind,
            "layer": c.layer,
            "token": first.position,
        }
        for name, writes, offset, (_, ids) in zip(names, (first, second), (0, n), runs, strict=True):
            fields = _row_fields(model, batch, offset + i)
            row[f"{name}_token_decoded"] = model.tokenizer.decode([int(ids[writes.position])])
            for key in ("interpretation", "content_relevancy", "relevant_text"):
                row[f"{name}_{key}"] = fields[key]
            row[f"{name}_write_norm"] = float(writes.norms[i])
        row["cosine"] = cosine[i]
        rows.append(row)
    df = pd.DataFrame(rows)
    _attrs(df, model, config, iprompt, preset, scale, first)
    df.attrs["target_norm"] = _target_norm(model, iprompt, config, fwd_hooks)
    df.attrs["prompts"] = {names[0]: _text(model, *runs[0]), names[1]: _text(model, *runs[1])}
    return df


__all__ = ["COMPONENT_COLUMNS", "compare_components", "interpret_components", "scale_options"]
