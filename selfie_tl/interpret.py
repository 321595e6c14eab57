"""SelfIE interpretation: let the model describe its own embeddings in words.

Data flow: :func:`~selfie_tl.hooks.capture` the residual stream of the original prompt at
(layer, token) -> inject each vector at the placeholder positions of an
:class:`~selfie_tl.prompts.InterpretationPrompt` at layer ``k`` during the prefill ->
:func:`~selfie_tl.generation.generate` with the KV cache -> score with
:mod:`~selfie_tl.relevancy` -> a pandas DataFrame.

Bad input fails at the door: every argument and setting is checked before any forward pass,
with one of the exceptions of :mod:`selfie_tl.errors` naming the value and what is allowed
(see ``docs/troubleshooting.md``). That includes the context length: the original prompt,
and the interpretation prompt plus ``max_new_tokens``, must fit ``model.cfg.n_ctx``.

Non-finite states: if an injected vector (after norm matching, the adapter and the scale)
overflows, or the logits become NaN or inf during generation, :class:`~selfie_tl.errors.
NumericalError` is raised, naming the vectors concerned. Nothing is returned for such a call:
an interpretation generated from NaN logits is meaningless (it used to come back as ``""``
with NaN relevancy and no warning).

Threads: hooks are global on a model, so selfie_tl serialises its work per model. Every
function here (and :func:`~selfie_tl.capture`, :func:`~selfie_tl.generate`,
:func:`~selfie_tl.complete`, the control and adapter training loops, attaching an edit) holds
the model's re-entrant lock, :func:`selfie_tl.hooks.model_lock`, while it installs hooks
and runs the model. Several threads may call these functions on one model: the calls run one
after the other and each gets exactly the result it would get alone. Different models run in
parallel. Your own forward passes or ``model.hooks(...)`` blocks on a shared model are not
covered unless you hold ``model_lock(model)`` around them.

Interrupting (Ctrl-C, ``KeyboardInterrupt``) or any exception at any point, including inside
a user hook, leaves the model as it was: no hook, no instance ``forward``, no changed weight,
and the lock released.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.adapter import SelfInterpretationAdapter, as_adapter
from selfie_tl.config import ConfigMixin, resolve_config
from selfie_tl.errors import InvalidArgumentError, NumericalError
from selfie_tl.fast.shared_prefill import (
    SharedPrefill,
    check_shared_prefill,
    shared_prefill_applies,
    shared_prefill_pays,
)
from selfie_tl.generation import check_decoding, generate
from selfie_tl.hooks import (
    HookFn,
    capture,
    check_fwd_hooks,
    check_layer,
    check_positions,
    check_vectors,
    injection_hooks,
    prompt_tokens,
    serialized,
)
from selfie_tl.presets import Preset, get_preset
from selfie_tl.prompts import InterpretationPrompt, as_prompt
from selfie_tl.relevancy import (
    PromptBaseline,
    baseline_probs,
    content_relevancy,
    relevancy_scores,
    relevant_spans,
)
from selfie_tl.scaling import DEFAULT_AUTO_SCALES, choose_scales, placeholder_norm, scale_criteria
from selfie_tl.validation import (
    as_bool,
    as_float,
    as_int,
    as_optional_int,
    check_context,
    check_model,
    check_sequence,
    is_int,
)

RESULT_COLUMNS = [
    "prompt", "layer", "token", "token_decoded", "interpretation", "relevancy",
    "mean_relevancy", "content_relevancy", "relevant_text", "generated_tokens", "scale",
]  # fmt: skip
SPAN_THRESHOLD = 0.1
"""Relevancy above which a generated token counts as coming from the embedding."""
AUTO_SCALE_COLUMNS = ("self_similarity", "entropy", "auto_scale_ok")


@dataclass
class InterpretationConfig(ConfigMixin):
    """Settings of one interpretation run (all keyword arguments of :func:`interpret`).

    Attributes:
        k: injection layer; the residual entering block ``k`` is overwritten.
        max_new_tokens: tokens generated per interpretation (>= 1).
        batch_size: interpretations generated together (>= 1).
        relevancy: compute the relevancy score (one extra forward per batch).
        mode: ``"replace"`` (the paper) or ``"add"``.
        overlay_strength: in [0, 1]; with ``mode="replace"`` the placeholder state becomes
            ``s * v + (1 - s) * h`` (1 = replace).
        scale: multiplier on the injected vector (both modes: ``replace`` writes
            ``scale * v``, ``add`` adds it), or ``"auto"``: per vector, the candidate of
            ``auto_scales`` chosen by :func:`selfie_tl.scaling.choose_scales`.
        norm_match: first rescale each vector to the typical norm of the prompt's own
            placeholder states at ``k`` (:func:`selfie_tl.scaling.placeholder_norm`).
        auto_scales: candidates for ``scale="auto"``.
        self_similarity_threshold: threshold of the automatic choice.
        inject_layers: inject at layers ``k .. k + inject_layers - 1``.
        repetition_penalty, no_repeat_ngram_size: decoding controls with Hugging Face
            semantics (:func:`selfie_tl.generation.process_logits`).
        adapter: path of a :class:`~selfie_tl.adapter.SelfInterpretationAdapter` applied to
            each vector first (functions also take the object via ``adapter=``).
        do_sample: sample instead of greedy decoding.
        temperature, top_k, top_p: sampling controls.
        seed: seed for sampling (reproducible when set).
        verbose: show a progress bar over batches.

    Example:
        >>> cfg = InterpretationConfig(k=3, max_new_tokens=10)
        >>> InterpretationConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    k: int = 2
    max_new_tokens: int = 30
    batch_size: int = 8
    relevancy: bool = True
    mode: str = "replace"
    overlay_strength: float = 1.0
    scale: float | str = 1.0
    norm_match: bool = False
    auto_scales: list[float] = field(default_factory=lambda: list(DEFAULT_AUTO_SCALES))
    self_similarity_threshold: float = 0.3
    inject_layers: int = 1
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    adapter: str | None = None
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    verbose: bool = False

    def validate(self, model: HookedTransformer) -> InterpretationConfig:
        """A checked copy with numpy numbers turned into Python ones.

        Every field is checked, sampling controls included when ``do_sample`` is off.

        Raises:
            InvalidArgumentError: (or :class:`~selfie_tl.errors.LayerOutOfRangeError` for
                ``k``) a field of the wrong type or out of range; the message names it.
        """
        k = check_layer(model, self.k, "injection")
        max_new_tokens = as_int(self.max_new_tokens, "max_new_tokens", 1)
        batch_size = as_int(self.batch_size, "batch_size", 1)
        flags = {name: as_bool(getattr(self, name), name) for name in ("relevancy", "norm_match", "do_sample", "verbose")}
        if not isinstance(self.mode, str) or self.mode not in ("replace", "add"):
            raise InvalidArgumentError(f"mode must be 'replace' or 'add', got {self.mode!r}")
        overlay = as_float(self.overlay_strength, "overlay_strength", 0.0, 1.0)
        if isinstance(self.scale, str) and self.scale == "auto":
            scale: float | str = "auto"
        else:
            try:
                scale = as_float(self.scale, "scale")
            except InvalidArgumentError:
                scale = 0.0
            if scale == 0.0:
                raise InvalidArgumentError(f"scale must be a finite non-zero number or 'auto', got {self.scale!r}")
        if isinstance(self.auto_scales, str) or not isinstance(self.auto_scales, Iterable):
            raise InvalidArgumentError(f"auto_scales must be a list of positive finite numbers, got {self.auto_scales!r}")
        try:
            auto_scales = [as_float(v, "auto_scales", 0.0, low_open=True) for v in self.auto_scales]
        except InvalidArgumentError:
            auto_scales = []
        if not auto_scales:
            raise InvalidArgumentError(f"auto_scales must be a list of positive finite numbers, got {self.auto_scales!r}")
        threshold = as_float(self.self_similarity_threshold, "self_similarity_threshold", -1.0, 1.0)
        inject_layers = as_int(self.inject_layers, "inject_layers", 1)
        if k + inject_layers > model.cfg.n_layers:
            raise InvalidArgumentError(
                f"k + inject_layers must be <= {model.cfg.n_layers}, got k={k}, inject_layers={inject_layers}"
            )
        decoding = check_decoding(
            model, do_sample=flags["do_sample"], temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
            repetition_penalty=self.repetition_penalty, no_repeat_ngram_size=self.no_repeat_ngram_size,
        )  # fmt: skip
        if self.adapter is not None and not isinstance(self.adapter, str | os.PathLike):
            raise InvalidArgumentError(f"adapter (in the config) must be None or a file path, got {self.adapter!r:.80}")
        seed = as_optional_int(self.seed, "seed", 0, 2**63 - 1)
        return dataclasses.replace(
            self, k=k, max_new_tokens=max_new_tokens, batch_size=batch_size, **flags, overlay_strength=overlay,
            scale=self.scale if type(self.scale) in (int, float) else scale,
            auto_scales=[v if type(v) in (int, float) else float(v) for v in self.auto_scales],
            self_similarity_threshold=threshold, inject_layers=inject_layers, seed=seed,
            **{name: value for name, value in decoding.items() if name != "do_sample"},
        )  # fmt: skip

    @property
    def strength(self) -> float:
        """Overlay strength handed to the injection hook (the scale is applied to the vector)."""
        return float(self.overlay_strength) if self.mode == "replace" else 1.0

    def decoding(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~selfie_tl.generation.generate` for decoding."""
        return {
            "do_sample": self.do_sample, "temperature": self.temperature, "top_k": self.top_k,
            "top_p": self.top_p, "repetition_penalty": float(self.repetition_penalty),
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }  # fmt: skip


@dataclass
class InterpretationBatch:
    """Everything one call of :func:`generate_interpretations` produced, row by row.

    Attributes:
        texts: decoded interpretation per vector (special tokens skipped).
        token_ids: generated ids per vector, up to (not including) end-of-sequence.
        tokens: the same ids decoded one by one (for per-token shading).
        probs: probability of each generated token with the vector injected, or ``None``
            when not recorded (``token_probs=False`` and no relevancy).
        relevancy: relevancy per generated token, or ``None`` when not computed.
        scales: the multiplier applied to each vector (after norm matching).
        self_similarity, entropy, auto_scale_ok: the automatic choice's criterion values
            per vector at the chosen scale (``None`` unless ``scale="auto"``).
    """

    texts: list[str]
    token_ids: list[list[int]] = field(repr=False)
    tokens: list[list[str]] = field(repr=False)
    probs: list[list[float]] | None = field(repr=False)
    relevancy: list[list[float]] | None = field(default=None, repr=False)
    scales: list[float] = field(default_factory=list, repr=False)
    self_similarity: list[float] | None = field(default=None, repr=False)
    entropy: list[float] | None = field(default=None, repr=False)
    auto_scale_ok: list[bool] | None = field(default=None, repr=False)


def _prepare_vectors(
    model: HookedTransformer,
    chunk: Float[Tensor, "n d_model"],
    prompt: InterpretationPrompt,
    config: InterpretationConfig,
    adapter: SelfInterpretationAdapter | None,
    target_norm: float | None,
) -> tuple[Float[Tensor, "n d_model"], Tensor, tuple[Tensor, Tensor, Tensor] | None]:
    """norm matching -> adapter -> scale (fixed or chosen): what is injected, and why."""
    if target_norm is not None:
        chunk = chunk * (target_norm / chunk.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    if adapter is not None:
        with torch.no_grad():
            chunk = adapter(chunk.to(adapter.bias.dtype)).to(chunk.dtype)
    if config.scale != "auto":
        scales = torch.full((chunk.shape[0],), float(config.scale), device=chunk.device, dtype=chunk.dtype)
        return chunk * scales[:, None], scales, None
    grid = torch.as_tensor([float(s) for s in config.auto_scales], device=chunk.device, dtype=chunk.dtype)
    sim, ent = scale_criteria(model, chunk, prompt, config.k, grid.tolist(), inject_layers=config.inject_layers)
    index, ok = choose_scales(sim, ent, config.self_similarity_threshold)
    rows = torch.arange(chunk.shape[0], device=chunk.device)
    scales = grid[index]
    return chunk * scales[:, None], scales, (sim[rows, index], ent[rows, index], ok)


def resolve_settings(
    model: HookedTransformer,
    preset: str | Preset | None,
    config: InterpretationConfig | None,
    overrides: dict[str, Any],
    interpretation_prompt: Any,
    adapter: Any,
) -> tuple[InterpretationConfig, InterpretationPrompt, SelfInterpretationAdapter | None]:
    """Settings of one call: preset (if any), then ``config``, then keyword overrides.

    ``None`` overrides are dropped, so a function's unset keywords never mask a preset.
    ``config`` may be a dict (:meth:`InterpretationConfig.from_dict`). The interpretation
    prompt plus ``max_new_tokens`` must fit the model's context.
    """
    check_model(model)
    if isinstance(config, Mapping):
        config = InterpretationConfig.from_dict(dict(config))
    elif config is not None and not isinstance(config, InterpretationConfig):
        raise InvalidArgumentError(
            f"config must be an InterpretationConfig, a dict of its fields or None, got {type(config).__name__} "
            f"{config!r:.60}"
        )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if preset is not None:
        chosen = get_preset(preset)
        base = chosen.config(**(config.to_dict() if config is not None else {}))
        if interpretation_prompt is None:
            interpretation_prompt = chosen.interpretation_prompt(model.tokenizer)
        if adapter is None:
            adapter = chosen.adapter_path()
    else:
        base = config
    resolved = resolve_config(InterpretationConfig, base, overrides).validate(model)
    prompt = as_prompt(model.tokenizer, interpretation_prompt)
    check_context(model, len(prompt), resolved.max_new_tokens, "interpretation prompt")
    return resolved, prompt, as_adapter(model, adapter if adapter is not None else resolved.adapter)


@serialized
def generate_interpretations(
    model: HookedTransformer,
    vectors: Float[Tensor, "n d_model"],
    interpretation_prompt: InterpretationPrompt | Sequence | None = None,
    config: InterpretationConfig | None = None,
    *,
    fwd_hooks: Sequence[tuple[str, HookFn]] = (),
    adapter: SelfInterpretationAdapter | str | None = None,
    preset: str | Preset | None = None,
    shared_prefill: bool | str = "auto",
    drop_finished: bool = True,
    token_probs: bool = True,
    progress: Callable[[int], Any] | None = None,
    **options: Any,
) -> InterpretationBatch:
    """Interpret vectors and return texts, tokens, probabilities and relevancy.

    The detailed form of :func:`interpret_vectors`. Hooks already on the model, and any
    ``fwd_hooks`` given here, are active for the whole generation; the injection hook only
    during each prefill. The model has exactly its original hooks after return or an
    exception.

    Args:
        model: the model.
        vectors: ``[n, d_model]`` vectors (residual states, SAE directions, means, ...).
        interpretation_prompt: an :class:`InterpretationPrompt`, a parts tuple, or ``None``
            for :func:`~selfie_tl.prompts.default_interpretation_prompt`.
        config: an :class:`InterpretationConfig`; keyword ``options`` override its fields.
        fwd_hooks: extra ``(hook_name, fn)`` pairs for the whole run (TransformerLens
            convention), e.g. an ablation to study together with SelfIE.
        adapter: a :class:`~selfie_tl.adapter.SelfInterpretationAdapter` (or its path)
            applied to every vector before injection; overrides ``config.adapter``.
        preset: a named preset (:mod:`selfie_tl.presets`, e.g. ``"best"``): its settings,
            prompt and adapter are the starting point that ``config``, ``options``,
            ``interpretation_prompt`` and ``adapter`` override.
        shared_prefill: compute the part of the prefill that is the same for every row
            (layers below ``k``, positions before the first placeholder) once per call
            (:mod:`selfie_tl.fast.shared_prefill`); used only while no hook is attached to the
            model (``fwd_hooks`` included). ``"auto"`` (default) shares when the work saved
            outweighs the extra batch-1 pass
            (:func:`~selfie_tl.fast.shared_prefill.shared_prefill_pays`), ``True`` whenever it
            applies, ``False`` never (the whole prefill per row).
        drop_finished: drop rows that have ended from the decode batch
            (:func:`~selfie_tl.generation.generate`'s switch).
        token_probs: record each generated token's probability (``probs``). ``False``
            (with relevancy off) skips the full-vocabulary softmax per step and lets greedy
            decoding choose through :mod:`selfie_tl.fast.screened_argmax` (same tokens);
            ``probs`` is then ``None``.
        progress: called after each batch with the number of vectors it interpreted (a
            progress bar's ``update``, say).

    Raises:
        VectorError: vectors of the wrong shape, or NaN/inf in them.
        ContextLengthError: the interpretation prompt + ``max_new_tokens`` exceeds the context.
        HookError: a ``fwd_hooks`` entry names no hook point or returns the wrong shape.
        NumericalError: a scaled vector or the logits became NaN/inf (nothing is returned).
        InvalidArgumentError: any other bad setting (the message names it).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> out = generate_interpretations(model, torch.randn(2, 64), max_new_tokens=4, k=1)
        >>> len(out.texts), len(out.relevancy[0]) <= 4
        (2, True)
    """
    config, prompt, adapter = resolve_settings(model, preset, config, options, interpretation_prompt, adapter)
    shared_prefill = check_shared_prefill(shared_prefill)
    drop_finished = as_bool(drop_finished, "drop_finished")
    record_probs = as_bool(token_probs, "token_probs") or config.relevancy
    vectors = check_vectors(model, vectors)
    fwd_hooks = check_fwd_hooks(model, fwd_hooks)
    generator = None
    if config.seed is not None:
        generator = torch.Generator(device=model.cfg.device).manual_seed(config.seed)
    base_ids = prompt.input_ids.to(model.cfg.device)
    tokenizer = model.tokenizer
    auto = config.scale == "auto"
    result = InterpretationBatch(
        texts=[], token_ids=[], tokens=[], probs=[] if record_probs else None,
        relevancy=[] if config.relevancy else None,
        self_similarity=[] if auto else None, entropy=[] if auto else None, auto_scale_ok=[] if auto else None,
    )  # fmt: skip
    starts = range(0, vectors.shape[0], config.batch_size)
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        shared = PromptBaseline.build(model, base_ids) if config.relevancy else None
        target_norm = placeholder_norm(model, prompt, config.k) if config.norm_match else None
        split = min(prompt.placeholder_positions)
        if shared_prefill == "auto":
            shared_prefill = shared_prefill_pays(model.cfg.n_layers, len(base_ids), config.k, split, len(vectors))
        common: SharedPrefill | None = None
        for start in tqdm(starts, desc="interpreting", unit="batch", disable=not config.verbose, leave=False):
            chunk, scales, criteria = _prepare_vectors(
                model, vectors[start : start + config.batch_size], prompt, config, adapter, target_norm
            )
            # inf/NaN, or so large that the norm layers' mean square overflows float32
            overflow = ~torch.isfinite(chunk.float().pow(2).mean(dim=-1))
            if bool(overflow.any()):
                rows = [start + r for r in overflow.nonzero().flatten().tolist()]
                raise NumericalError(
                    f"vectors {rows[:10]} are too large to inject once scaled (scale={config.scale!r}, "
                    f"norm_match={config.norm_match}): they or their mean square overflow float32, so the model's "
                    "norm layers would turn them into 0 or NaN. Lower the scale or use norm_match=True"
                )
            ids = base_ids[None].expand(chunk.shape[0], -1)
            hooks = injection_hooks(
                model, chunk, prompt.placeholder_positions, config.k, mode=config.mode,
                strength=config.strength, n_layers=config.inject_layers,
            )  # fmt: skip
            prefill = None
            if shared_prefill and shared_prefill_applies(model, config.k, split):
                if common is None:
                    common = SharedPrefill.build(model, base_ids, config.k, split)
                shifted = injection_hooks(
                    model, chunk, [p - split for p in prompt.placeholder_positions], config.k, mode=config.mode,
                    strength=config.strength, n_layers=config.inject_layers,
                )  # fmt: skip
                prefill = functools.partial(common.run, model, batch=chunk.shape[0], hooks=shifted)
            try:
                out = generate(
                    model, ids, config.max_new_tokens, prefill_hooks=hooks, generator=generator,
                    drop_finished=drop_finished, prefill=prefill, record_probs=record_probs, **config.decoding(),
                )  # fmt: skip
            except NumericalError as exc:
                rows = [start + r for r in getattr(exc, "rows", [])]
                norms = [round(float(n), 1) for n in chunk.float().norm(dim=-1)[getattr(exc, "rows", [])][:10]]
                raise NumericalError(
                    f"interpreting vectors {rows[:10]} (injected norms {norms}, scale={config.scale!r}, "
                    f"mode={config.mode!r}) made the model's logits NaN or inf. If the injected states are far "
                    "outside the residual stream's range, lower the scale or use norm_match=True; a hook (fwd_hooks, "
                    "an attached edit) writing NaN/inf does the same"
                ) from exc
            result.scales += scales.tolist()
            if criteria is not None:
                result.self_similarity += criteria[0].tolist()
                result.entropy += criteria[1].tolist()
                result.auto_scale_ok += criteria[2].tolist()
            rel = None
            if shared is not None:
                rel = relevancy_scores(out.probs, baseline_probs(model, base_ids, out.tokens, shared))
            for row, length in enumerate(out.lengths):
                ids_row = out.tokens[row, :length].tolist()
                result.token_ids.append(ids_row)
                result.texts.append(tokenizer.decode(ids_row, skip_special_tokens=True))
                result.tokens.append([tokenizer.decode([t]) for t in ids_row])
                if result.probs is not None:
                    result.probs.append(out.probs[row, :length].tolist())
                if rel is not None:
                    result.relevancy.append(rel[row, :length].tolist())
            if progress is not None:
                progress(chunk.shape[0])
    return result


def interpret_vectors(
    model: HookedTransformer,
    vectors: Float[Tensor, "n d_model"],
    interpretation_prompt: InterpretationPrompt | Sequence | None = None,
    k: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    *,
    fwd_hooks: Sequence[tuple[str, HookFn]] = (),
    adapter: SelfInterpretationAdapter | str | None = None,
    preset: str | Preset | None = None,
    progress: Callable[[int], Any] | None = None,
    **options: Any,
) -> list[str]:
    """Interpret arbitrary vectors (SAE decoder rows, steering vectors, means, ...).

    Each vector replaces the residual stream entering block ``k`` at every placeholder
    position of the interpretation prompt during the prefill; the model then generates
    greedily (by default) with its KV cache.

    Args:
        model: the model.
        vectors: ``[n, d_model]`` (or a single ``[d_model]`` vector).
        interpretation_prompt: prompt with placeholders (default: the paper's summary
            prompt in the model's chat format).
        k: injection layer in ``[0, n_layers - 1]`` (default: :class:`InterpretationConfig`'s,
            like every setting left ``None``).
        max_new_tokens: tokens to generate per vector.
        batch_size: vectors interpreted together.
        fwd_hooks: extra ``(hook_name, fn)`` pairs active for the whole run.
        adapter: a self-interpretation adapter (or its path) applied before injection.
        preset: a named preset (``"paper"``, ``"best"``) to start from.
        progress: called after each batch with the number of vectors done.
        **options: any other :class:`InterpretationConfig` field (``mode``,
            ``overlay_strength``, ``scale``, ``do_sample``, ``seed``, ``verbose``, ...).

    Returns:
        One interpretation string per vector.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> texts = interpret_vectors(model, torch.randn(3, 64), k=1, max_new_tokens=5)
        >>> len(texts)
        3
    """
    options.setdefault("relevancy", False)
    return generate_interpretations(
        model, vectors, interpretation_prompt, None, fwd_hooks=fwd_hooks, adapter=adapter, preset=preset,
        progress=progress, k=k, max_new_tokens=max_new_tokens, batch_size=batch_size, token_probs=False, **options,
    ).texts  # fmt: skip


def layer_token_pairs(layers: Iterable[int], tokens: Iterable[int]) -> list[tuple[int, int]]:
    """Every (layer, token) combination, layer-major, for :func:`interpret`.

    Example:
        >>> layer_token_pairs([0, 5], [-1])
        [(0, -1), (5, -1)]
    """
    layers = check_sequence(layers, "layers", "layer indices (parse text with selfie_tl.indices.parse_index_spec)")
    tokens = check_sequence(tokens, "tokens", "token positions (parse text with selfie_tl.indices.parse_index_spec)")
    return [(layer, token) for layer in layers for token in tokens]


def _check_pairs(model: HookedTransformer, pairs: Any, seq_len: int) -> list[tuple[int, int]]:
    pairs = check_sequence(pairs, "tokens_to_interpret", "(layer, token) pairs")
    if pairs and any(is_int(p) or isinstance(p, str) for p in pairs):
        raise InvalidArgumentError(
            f"tokens_to_interpret must be a list of (layer, token) pairs, got {pairs!r:.80}; "
            "for one pair write [(layer, token)]"
        )
    try:
        pairs = [tuple(p) for p in pairs]
    except TypeError as exc:
        raise InvalidArgumentError(
            f"tokens_to_interpret must be a list of (layer, token) pairs, got {pairs!r}"
        ) from exc
    if not pairs:
        raise InvalidArgumentError("tokens_to_interpret is empty; pass at least one (layer, token) pair")
    out = []
    for pair in pairs:
        if len(pair) != 2:
            raise InvalidArgumentError(
                f"each item of tokens_to_interpret must be (layer, token), got {pair!r}"
            )
        layer, token = pair
        out.append((check_layer(model, layer), check_positions([token], seq_len)[0]))
    return out


@serialized
def interpret(
    model: HookedTransformer,
    original_prompt: str | Tensor,
    tokens_to_interpret: Sequence[tuple[int, int]],
    interpretation_prompt: InterpretationPrompt | Sequence | None = None,
    k: int | None = None,
    max_new_tokens: int | None = None,
    batch_size: int | None = None,
    relevancy: bool | None = None,
    *,
    fwd_hooks: Sequence[tuple[str, HookFn]] = (),
    adapter: SelfInterpretationAdapter | str | None = None,
    preset: str | Preset | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Interpret the residual stream of a prompt at (layer, token) pairs.

    Args:
        model: the model.
        original_prompt: the text whose hidden states are interpreted. It is tokenized with
            the tokenizer's own defaults (no BOS unless the tokenizer adds one itself), so
            token positions are those of ``model.tokenizer(original_prompt).input_ids``.
        tokens_to_interpret: ``(layer, token)`` pairs. ``layer`` in ``[0, n_layers]``
            (``L < n_layers``: residual entering block L; ``n_layers``: last block's output),
            ``token`` a position (negative counts from the end). See
            :func:`layer_token_pairs` for grids.
        interpretation_prompt: prompt with placeholders (default: the paper's summary
            prompt in the model's chat format), or a parts tuple.
        k: injection layer. Settings left ``None`` take :class:`InterpretationConfig`'s
            defaults (``k=2``, 30 new tokens, batch 8, relevancy on) or the preset's.
        max_new_tokens: tokens generated per interpretation.
        batch_size: interpretations generated together.
        relevancy: add the per-token relevancy score (one extra forward per batch).
        fwd_hooks: extra hooks active during capture and generation.
        adapter: a self-interpretation adapter (or its path) applied before injection.
        preset: a named preset (``"paper"``, ``"best"``, :mod:`selfie_tl.presets`) to start
            from; explicit arguments override it.
        **options: other :class:`InterpretationConfig` fields.

    Returns:
        A DataFrame with one row per pair and columns ``prompt, layer, token,
        token_decoded, interpretation, relevancy`` (list of floats, one per generated
        token, or ``None``), ``mean_relevancy`` (over every generated token),
        ``content_relevancy`` (over content tokens only: whitespace, special tokens and
        repeated n-grams left out, :func:`selfie_tl.relevancy.content_relevancy`; what the
        pictures colour by), ``relevant_text`` (the spans with relevancy above
        :data:`SPAN_THRESHOLD`, joined by " … "), ``generated_tokens`` (list of str) and
        ``scale`` (the multiplier injected); with ``scale="auto"`` also
        ``self_similarity``, ``entropy`` and ``auto_scale_ok``. ``df.attrs`` holds the
        config, the interpretation prompt text and the model name.

    Raises:
        LayerOutOfRangeError, PositionOutOfRangeError: a pair names no layer or token.
        PromptError: an empty prompt, ids that are not ids of the model, a prompt without
            placeholders.
        ContextLengthError: the original prompt, or the interpretation prompt plus
            ``max_new_tokens``, does not fit ``model.cfg.n_ctx`` (checked before any work).
        HookError: a ``fwd_hooks`` entry names no hook point or returns the wrong shape.
        NumericalError: an injected vector or the logits became NaN/inf.
        InvalidArgumentError: any other bad argument or setting (the message names it).
        TypeError: an unknown keyword option.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> df = interpret(model, "The cat", [(1, -1), (2, 0)], k=1, max_new_tokens=4)
        >>> list(df[["layer", "token"]].itertuples(index=False, name=None))
        [(1, 6), (2, 0)]
    """
    config, prompt, adapter = resolve_settings(
        model, preset, None,
        dict(k=k, max_new_tokens=max_new_tokens, batch_size=batch_size, relevancy=relevancy, **options),
        interpretation_prompt, adapter,
    )  # fmt: skip
    ids = prompt_tokens(model, original_prompt, "original_prompt")
    if isinstance(original_prompt, str) and not original_prompt.strip():
        raise InvalidArgumentError(f"original_prompt is blank ({original_prompt!r}); give some text")
    pairs = _check_pairs(model, tokens_to_interpret, len(ids))
    fwd_hooks = check_fwd_hooks(model, fwd_hooks)
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        layers = sorted({layer for layer, _ in pairs})
        positions = sorted({token for _, token in pairs})
        grid = capture(model, ids, layers, positions)
    vectors = torch.stack([grid[layers.index(layer), positions.index(token)] for layer, token in pairs])
    batch = generate_interpretations(
        model, vectors, prompt, config, fwd_hooks=fwd_hooks, adapter=adapter, token_probs=False
    )
    text = original_prompt if isinstance(original_prompt, str) else model.tokenizer.decode(ids.tolist())
    specials = list(getattr(model.tokenizer, "all_special_tokens", []) or [])
    rows = []
    for i, (layer, token) in enumerate(pairs):
        rel = batch.relevancy[i] if batch.relevancy is not None else None
        rows.append(
            {
                "prompt": text,
                "layer": layer,
                "token": token,
                "token_decoded": model.tokenizer.decode([int(ids[token])]),
                "interpretation": batch.texts[i],
                "relevancy": rel,
                "mean_relevancy": (sum(rel) / len(rel) if rel else float("nan")) if rel is not None else None,
                "content_relevancy": (
                    content_relevancy(batch.tokens[i], rel, special_tokens=specials) if rel is not None else None
                ),
                "relevant_text": (
                    " … ".join(s.text.strip() for s in relevant_spans(batch.tokens[i], rel, SPAN_THRESHOLD))
                    if rel else ("" if rel is not None else None)
                ),
                "generated_tokens": batch.tokens[i],
                "scale": batch.scales[i],
                **(
                    {"self_similarity": batch.self_similarity[i], "entropy": batch.entropy[i],
                     "auto_scale_ok": batch.auto_scale_ok[i]}
                    if batch.self_similarity is not None else {}
                ),
            }
        )
    columns = RESULT_COLUMNS + ([*AUTO_SCALE_COLUMNS] if batch.self_similarity is not None else [])
    df = pd.DataFrame(rows, columns=columns)
    df.attrs["config"] = config.to_dict()
    df.attrs["preset"] = get_preset(preset).name if preset is not None else None
    df.attrs["interpretation_prompt"] = prompt.text
    df.attrs["model_name"] = str(model.cfg.model_name)
    return df


__all__ = [
    "InterpretationBatch",
    "InterpretationConfig",
    "generate_interpretations",
    "interpret",
    "interpret_vectors",
    "layer_token_pairs",
]
