"""Explain SAE features with SelfIE: the model describes each feature's decoder row.

:func:`explain_features` injects decoder rows (norm-matched, then scaled by the automatic
choice of :mod:`selfie_tl.scaling`) into a short question such as ``What does "_" mean?``
and returns one row per feature with the explanation, the chosen scale and its criterion
values, relevancy, the logit lens of the decoder row, and the feature's top-activating
tokens on a corpus sample. Large dictionaries are explained in chunks written to a folder,
so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.interpret import InterpretationConfig, generate_interpretations
from selfie_tl.prompts import InterpretationPrompt, as_prompt, chat_parts, default_interpretation_prompt
from selfie_tl.relevancy import content_relevancy, relevant_spans
from selfie_tl.sae._compat import check_features, check_sae, decoder_rows
from selfie_tl.sae.activations import FeatureActivations, feature_activations

EXPLANATION_PROMPTS: dict[str, tuple[str, str, str, int]] = {
    # name: (user text before the placeholders, after them, assistant's first words, slots)
    "meaning": ('What does "', '" mean?', "It means", 1),
    "word": ('What is the meaning of the word "', '"?', 'The meaning of the word is "', 1),
    "summary": ("", "", "Sure, I will summarize the message:", 5),
}
"""Interpretation prompts for features, by name (see :func:`explanation_prompt`)."""

EXPLAIN_DEFAULTS: dict[str, Any] = {
    "k": 2, "max_new_tokens": 12, "batch_size": 64, "scale": "auto", "norm_match": True,
    "auto_scales": [0.5, 1.0, 2.0, 4.0], "relevancy": True,
}  # fmt: skip
"""Interpretation settings :func:`explain_features` starts from (any can be overridden)."""

EXPLAIN_COLUMNS = [
    "feature", "explanation", "scale", "self_similarity", "entropy", "auto_scale_ok", "mean_relevancy",
    "content_relevancy", "relevant_text", "top_tokens", "top_activations", "frequency", "max_activation",
    "logit_lens", "generated_tokens", "relevancy",
]  # fmt: skip


def explanation_prompt(tokenizer: Any, name: str | InterpretationPrompt | Sequence = "meaning") -> InterpretationPrompt:
    """A named explanation prompt (:data:`EXPLANATION_PROMPTS`) in the tokenizer's chat
    format, or anything :func:`selfie_tl.prompts.as_prompt` accepts.

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> explanation_prompt(tiny_tokenizer()).text
        '<|im_start|>user\\nWhat does "_ " mean?<|im_end|>\\n<|im_start|>assistant\\nIt means'
    """
    if isinstance(name, str) and name in EXPLANATION_PROMPTS:
        before, after, reply, slots = EXPLANATION_PROMPTS[name]
        if name == "summary":
            return default_interpretation_prompt(tokenizer)
        return InterpretationPrompt(tokenizer, chat_parts(tokenizer, before, after, reply, slots))
    if isinstance(name, str) and "{}" not in name:
        raise InvalidArgumentError(
            f"unknown explanation prompt {name!r}; choose from {list(EXPLANATION_PROMPTS)} or give text with {{}}"
        )
    return as_prompt(tokenizer, name)


def corpus_sample(
    model: HookedTransformer,
    n_tokens: int = 8192,
    *,
    corpus: str = "auto",
    context_size: int = 64,
    split: str = "train",
    heldout_fraction: float = 0.05,
    seed: int = 0,
) -> torch.Tensor:
    """``[n, context_size]`` token contexts from a corpus (:mod:`selfie_tl.sae.corpus`) for
    finding top-activating tokens; ``split="heldout"`` takes them from the held-out part."""
    from selfie_tl.sae.corpus import load_corpus, split_texts, token_contexts

    train, held = split_texts(load_corpus(corpus, model=model, seed=seed), heldout_fraction)
    texts = train if split == "train" else held
    if split == "train":  # a different slice from the SAE's first training tokens
        texts = texts[len(texts) // 2 :]
    return token_contexts(model.tokenizer, texts, context_size, max_tokens=n_tokens)


def _settings_key(features: list[int], prompt: InterpretationPrompt, config: InterpretationConfig, extra: dict) -> str:
    blob = json.dumps(
        {"features": features, "prompt": prompt.text, "config": config.to_dict(), **extra}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _chunk_rows(
    model: HookedTransformer,
    sae: Any,
    feats: list[int],
    prompt: InterpretationPrompt,
    config: InterpretationConfig,
    stats: FeatureActivations | None,
    top_tokens: int,
    logit_lens_k: int,
) -> pd.DataFrame:
    from selfie_tl.lens import logit_lens

    vectors = decoder_rows(sae, feats)
    batch = generate_interpretations(model, vectors, prompt, config, token_probs=False)
    lens = logit_lens(model, vectors.to(model.cfg.dtype), top_k=logit_lens_k)
    specials = list(getattr(model.tokenizer, "all_special_tokens", []) or [])
    rows = []
    for i, f in enumerate(feats):
        rel = batch.relevancy[i] if batch.relevancy is not None else None
        row: dict[str, Any] = {
            "feature": f,
            "explanation": batch.texts[i].strip(),
            "scale": batch.scales[i],
            "self_similarity": batch.self_similarity[i] if batch.self_similarity is not None else None,
            "entropy": batch.entropy[i] if batch.entropy is not None else None,
            "auto_scale_ok": batch.auto_scale_ok[i] if batch.auto_scale_ok is not None else None,
            "mean_relevancy": (sum(rel) / len(rel) if rel else float("nan")) if rel is not None else None,
            "content_relevancy": content_relevancy(batch.tokens[i], rel, special_tokens=specials) if rel is not None else None,
            "relevant_text": " … ".join(s.text.strip() for s in relevant_spans(batch.tokens[i], rel, 0.1)) if rel else "",
            "logit_lens": [tok for tok, _ in lens[i]],
            "generated_tokens": batch.tokens[i],
            "relevancy": rel,
        }
        if stats is not None:
            r = stats.row(f)
            row["top_tokens"] = stats.top_tokens(model.tokenizer, f, top_tokens)
            row["top_activations"] = [round(v, 4) for v in stats.top_values[r, :top_tokens].tolist()]
            row["frequency"] = float(stats.frequency[r])
            row["max_activation"] = float(stats.max_activation[r])
        else:
            row.update(top_tokens=None, top_activations=None, frequency=None, max_activation=None)
        rows.append(row)
    return pd.DataFrame(rows, columns=EXPLAIN_COLUMNS)


def explain_features(
    model: HookedTransformer,
    sae: Any,
    features: int | Sequence[int] | None = None,
    *,
    prompt: str | InterpretationPrompt | Sequence = "meaning",
    contexts: torch.Tensor | None = None,
    stats: FeatureActivations | None = None,
    n_context_tokens: int = 8192,
    top_tokens: int = 8,
    logit_lens_k: int = 8,
    chunk_size: int = 256,
    out_dir: str | Path | None = None,
    verbose: bool = True,
    allow_other_model: bool = False,
    config: InterpretationConfig | None = None,
    **options: Any,
) -> pd.DataFrame:
    """SelfIE explanations of SAE features, one row per feature.

    Args:
        model: the model (a ``HookedTransformer`` or SAELens' ``HookedSAETransformer``).
        sae: a SAELens SAE (or any object with ``W_dec``, ``encode`` and a config naming
            its hook); checked against the model (:func:`~selfie_tl.sae.check_sae`).
        features: feature indices (default: all).
        prompt: ``"meaning"`` (``What does "_" mean?`` / ``It means``), ``"word"``,
            ``"summary"`` (the paper's prompt), or a custom prompt.
        contexts: ``[n, pos]`` token contexts for the top-activating tokens (default:
            :func:`corpus_sample` of ``n_context_tokens`` tokens); ``stats``: already
            computed :func:`~selfie_tl.sae.feature_activations` instead.
        top_tokens: top-activating tokens (and activations) kept per feature.
        logit_lens_k: tokens of the decoder row's logit lens kept per feature.
        chunk_size: features per chunk (progress and resume granularity).
        out_dir: folder for finished chunks (``chunk-00000.jsonl``, ...) and a
            ``manifest.json``; a rerun with the same settings skips finished chunks. A
            folder holding a run with other settings raises.
        verbose: progress bar over chunks.
        allow_other_model: skip the check that the SAE was trained on this model.
        config, **options: :class:`~selfie_tl.InterpretationConfig` settings; they start
            from :data:`EXPLAIN_DEFAULTS` (``scale="auto"`` with norm matching, 12 new
            tokens, ``k=2``).

    Returns:
        DataFrame with columns :data:`EXPLAIN_COLUMNS`; ``df.attrs`` holds the prompt,
        settings, SAE hook and model name.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> from selfie_tl.sae.testing import tiny_sae
        >>> model = tiny_model(); sae = tiny_sae(model)
        >>> df = explain_features(model, sae, [0, 3], contexts=torch.randint(0, 200, (4, 8)), max_new_tokens=3,
        ...                       verbose=False)
        >>> df.feature.tolist(), bool(df.auto_scale_ok.notna().all())
        ([0, 3], True)
    """
    info = check_sae(model, sae, allow_other_model=allow_other_model)
    feats = check_features(list(range(info.d_sae)) if features is None else features, info.d_sae)
    settings = {**EXPLAIN_DEFAULTS, **(config.to_dict() if config is not None else {}), **options}
    settings = {k: v for k, v in settings.items() if v is not None}
    cfg = InterpretationConfig.from_dict(settings).validate(model)
    from selfie_tl.sae.splice import check_injection_free

    check_injection_free(model, cfg.k, cfg.inject_layers)
    ip = explanation_prompt(model.tokenizer, prompt)
    extra = {"hook": info.hook_name, "d_sae": info.d_sae, "top_tokens": top_tokens, "logit_lens_k": logit_lens_k,
             "sae_digest": float(sae.W_dec.detach().float().sum())}  # fmt: skip
    key = _settings_key(feats, ip, cfg, extra)
    folder = Path(out_dir) if out_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = folder / "manifest.json"
        if manifest.exists():
            old = json.loads(manifest.read_text())
            if old.get("key") != key:
                raise InvalidArgumentError(
                    f"{folder} holds an explanation run with other settings (key {old.get('key')} vs {key}); "
                    "use another out_dir or delete it"
                )
        else:
            from selfie_tl.files import write_text

            write_text(manifest, json.dumps({"key": key, "features": feats, "prompt": ip.text,
                                             "config": cfg.to_dict(), **extra}, default=str))  # fmt: skip
    chunks = [feats[i : i + chunk_size] for i in range(0, len(feats), chunk_size)]
    todo = [i for i in range(len(chunks)) if folder is None or not (folder / f"chunk-{i:05d}.jsonl").exists()]
    if stats is None and todo:
        if contexts is None:
            contexts = corpus_sample(model, n_context_tokens)
        needed = sorted({f for i in todo for f in chunks[i]})
        stats = feature_activations(model, sae, contexts, needed, top_k=max(top_tokens * 4, 20), verbose=verbose)
    frames: list[pd.DataFrame] = []
    bar = tqdm(total=len(feats), desc="explaining features", unit="feature", disable=not verbose)
    for i, chunk in enumerate(chunks):
        path = folder / f"chunk-{i:05d}.jsonl" if folder is not None else None
        if path is not None and path.exists():
            frame = pd.read_json(path, orient="records", lines=True)
        else:
            frame = _chunk_rows(model, sae, chunk, ip, cfg, stats, top_tokens, logit_lens_k)
            if path is not None:
                from selfie_tl.files import write_text

                write_text(path, frame.to_json(orient="records", lines=True))
        frames.append(frame)
        bar.update(len(chunk))
    bar.close()
    df = pd.concat(frames, ignore_index=True)[EXPLAIN_COLUMNS]
    df.attrs.update(
        interpretation_prompt=ip.text, config=cfg.to_dict(), hook_name=info.hook_name,
        model_name=str(model.cfg.model_name), d_sae=info.d_sae, key=key,
    )  # fmt: skip
    return df


__all__ = [
    "EXPLAIN_COLUMNS",
    "EXPLAIN_DEFAULTS",
    "EXPLANATION_PROMPTS",
    "corpus_sample",
    "explain_features",
    "explanation_prompt",
]
