"""Choose SelfIE's settings by measurement: a greedy search on one split, an ablation on
another.

:func:`search_settings` tries interpretation templates first (paper recipe otherwise),
then one lever at a time (decoding, scale, ``k``, ``inject_layers``, adapters, and the
placeholder count ``{"n_placeholders": N}`` when a space lists it), keeping a lever when the
mean accuracy over layers improves. It only ever sees the facts it is given:
pass the **validation** split. :func:`ablation` then scores, on facts the search never saw
(the **test** split), the paper recipe, each lever of the winner alone, and the winner,
with 95% bootstrap intervals at each configuration's best layer.

``selfie-tl eval --search`` runs both (validation, then test) and writes the chosen
settings as a preset file.

Example:
    >>> from selfie_tl.eval import load_known_facts
    >>> from selfie_tl.testing import tiny_model
    >>> model = tiny_model()
    >>> facts = load_known_facts(limit=3)
    >>> space = SearchSpace(templates=["summary", "tell_me"], levers={"decoding": [{"no_repeat_ngram_size": 2}]})
    >>> found = search_settings(model, facts, [1, 2], space, k=1, max_new_tokens=3, verbose=False)
    >>> list(found.trials.columns[:3]), len(found.trials)
    (['stage', 'template', 'settings'], 3)
    >>> table = ablation(model, facts, [1, 2], found, k=1, max_new_tokens=3, n_bootstrap=50, verbose=False)
    >>> table.config.iloc[0]
    'paper'
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from tqdm.auto import tqdm
from transformer_lens import HookedTransformer

from selfie_tl.config import ConfigMixin
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.attributes import subject_vectors
from selfie_tl.eval.methods import BATCH_SIZE, control_rows, logit_lens_rows, selfie_rows
from selfie_tl.eval.stats import bootstrap_ci
from selfie_tl.eval.templates import RELATION, template_names, template_spec
from selfie_tl.prompts import check_n_placeholders, spec_with_placeholders

PAPER_TEMPLATE = "summary"

DEFAULT_LEVERS: dict[str, list[dict[str, Any]]] = {
    "decoding": [{"no_repeat_ngram_size": 3}, {"repetition_penalty": 1.3}],
    "scale": [{"scale": 0.5}, {"scale": 2.0}, {"scale": "auto"}, {"norm_match": True}],
    "k": [{"k": 1}, {"k": 4}],
    "inject_layers": [{"inject_layers": 2}],
}
"""The lever stages searched after the template, in order; each holds alternatives."""

ADAPTER_REPLACES = ("scale", "norm_match")
"""Settings an adapter takes over (it learns its own scale): dropped when one is tried."""


@dataclass
class SearchSpace(ConfigMixin):
    """What :func:`search_settings` tries.

    Attributes:
        templates: interpretation templates (names from
            :func:`~selfie_tl.eval.templates.template_names`; not ``relation``, which
            needs each fact's own relation and so cannot make a preset).
        levers: stage name -> alternatives (dicts of
            :class:`~selfie_tl.interpret.InterpretationConfig` fields, ``{"adapter": PATH}``,
            or ``{"n_placeholders": N}``: every run of the template's placeholders made ``N``
            long, stored in the preset's prompt), tried in order after the template stage.

    Example:
        >>> SearchSpace.from_dict(SearchSpace().to_dict()) == SearchSpace()
        True
    """

    templates: list[str] = field(default_factory=lambda: ["summary", "facts", "where_from", "tell_me", "wiki_is"])
    levers: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: json.loads(json.dumps(DEFAULT_LEVERS)))

    def validate(self) -> SearchSpace:
        """Raise :class:`InvalidArgumentError` on an unknown template or a malformed lever."""
        known = template_names()
        bad = [t for t in self.templates if t not in known or t == RELATION]
        if bad or not self.templates:
            raise InvalidArgumentError(
                f"search templates must be a non-empty list from {[t for t in known if t != RELATION]}, got {bad or self.templates}"
            )
        for stage, options in self.levers.items():
            if not isinstance(options, list) or not all(isinstance(o, dict) and o for o in options):
                raise InvalidArgumentError(f"lever stage {stage!r} must be a list of non-empty dicts, got {options!r}")
        counts = [o["n_placeholders"] for options in self.levers.values() for o in options if "n_placeholders" in o]
        for n in counts:
            check_n_placeholders(n)
        if counts and (unsized := [t for t in self.templates if template_spec(t) is None]):
            raise InvalidArgumentError(
                f"templates {unsized} are the model's default prompt, which a preset stores without a placeholder "
                "count; an n_placeholders lever needs templates with a stored prompt"
            )
        return self


@dataclass
class SearchResult:
    """The outcome of :func:`search_settings`.

    Attributes:
        template: the chosen template.
        settings: the chosen interpretation settings (may hold ``adapter``: a path).
        trials: one row per configuration tried: ``stage, template, settings, mean,
            best_layer, best, kept, seconds`` and ``acc_L<layer>`` per layer.
        n_facts: facts the search saw.
        layers: layers it averaged over.
    """

    template: str
    settings: dict[str, Any]
    trials: pd.DataFrame
    n_facts: int
    layers: list[int]

    def levers(self) -> dict[str, dict[str, Any]]:
        """The kept lever settings per stage (the ablation's "each lever alone")."""
        kept = self.trials[self.trials.kept & (self.trials.stage != "template")]
        return {row.stage: json.loads(row.settings_delta) for row in kept.itertuples()}


def _accuracy_by_layer(rows: list[dict[str, Any]], layers: Sequence[int]) -> dict[int, list[bool]]:
    by_layer: dict[int, list[bool]] = {layer: [] for layer in layers}
    for row in rows:
        by_layer[row["layer"]].append(bool(row["correct"]))
    return by_layer


def _layer_accuracy(hits: dict[int, list[bool]]) -> tuple[dict[int, float], int]:
    """Accuracy per layer and the best layer (the shallower on ties)."""
    acc = {layer: sum(h) / len(h) for layer, h in hits.items()}
    return acc, max(acc, key=lambda layer: (acc[layer], -layer))


def _run(model, facts, vecs, layers, template, settings, k, max_new_tokens, batch_size) -> dict[int, list[bool]]:
    options = dict(settings)
    k_used = options.pop("k", k)
    rows = selfie_rows(
        model, facts, vecs, layers, template, k=k_used, max_new_tokens=max_new_tokens, batch_size=batch_size, **options
    )  # "n_placeholders" (a property of the prompt, not an interpretation setting) is selfie_rows' own
    return _accuracy_by_layer(rows, layers)


def _with_lever(settings: dict[str, Any], lever: dict[str, Any]) -> dict[str, Any]:
    out = dict(settings)
    if "adapter" in lever:
        for name in ADAPTER_REPLACES:
            out.pop(name, None)
    out.update(lever)
    return out


def search_settings(
    model: HookedTransformer,
    facts: pd.DataFrame,
    layers: Sequence[int],
    space: SearchSpace | None = None,
    *,
    k: int = 2,
    max_new_tokens: int = 20,
    batch_size: int = BATCH_SIZE,
    verbose: bool = True,
) -> SearchResult:
    """Greedy search: the best template by mean accuracy over ``layers``, then each lever
    stage in turn, keeping the alternative that beats the current best (ties keep the
    current settings).

    Args:
        model: the model.
        facts: the facts to choose on (the validation split; never the test split).
        layers: residual layers whose subject states are interpreted.
        space: templates and lever stages (default :class:`SearchSpace`).
        k: injection layer unless a lever sets ``k``.
        max_new_tokens: tokens per interpretation.
        batch_size: interpretations generated together.
        verbose: a progress line per trial.

    Returns:
        A :class:`SearchResult`.
    """
    space = (space or SearchSpace()).validate()
    layers = list(layers)
    vecs, _, _ = subject_vectors(model, facts, layers)
    trials: list[dict[str, Any]] = []

    def trial(stage: str, template: str, settings: dict[str, Any], delta: dict[str, Any]) -> float:
        t0 = time.perf_counter()
        acc, best = _layer_accuracy(_run(model, facts, vecs, layers, template, settings, k, max_new_tokens, batch_size))
        mean = sum(acc.values()) / len(acc)
        trials.append({
            "stage": stage, "template": template, "settings": json.dumps(settings, sort_keys=True),
            "settings_delta": json.dumps(delta, sort_keys=True), "mean": mean, "best_layer": best,
            "best": acc[best], "kept": False, "seconds": time.perf_counter() - t0,
            **{f"acc_L{layer}": a for layer, a in acc.items()},
        })  # fmt: skip
        if verbose:
            tqdm.write(f"[{stage}] {template} {json.dumps(settings)}: mean {100 * mean:.1f}%, best L{best} {100 * acc[best]:.1f}%")
        return mean

    scores = {template: trial("template", template, {}, {}) for template in space.templates}
    template = max(space.templates, key=lambda t: scores[t])  # first listed wins ties
    trials[space.templates.index(template)]["kept"] = True
    best, settings = scores[template], {}
    for stage, alternatives in space.levers.items():
        chosen = None
        for lever in alternatives:
            candidate = _with_lever(settings, lever)
            score = trial(stage, template, candidate, lever)
            if score > best:
                best, chosen = score, len(trials) - 1
        if chosen is not None:
            trials[chosen]["kept"] = True
            settings = json.loads(trials[chosen]["settings"])
    return SearchResult(template, settings, pd.DataFrame(trials), len(facts), layers)


ABLATION_COLUMNS = ["config", "template", "settings", "mean", "best_layer", "accuracy", "ci_low", "ci_high", "n"]


def ablation(
    model: HookedTransformer,
    facts: pd.DataFrame,
    layers: Sequence[int],
    result: SearchResult,
    *,
    k: int = 2,
    max_new_tokens: int = 20,
    batch_size: int = BATCH_SIZE,
    logit_lens_k: int = 20,
    n_bootstrap: int = 1000,
    seed: int = 0,
    verbose: bool = True,
) -> pd.DataFrame:
    """Score the paper recipe, each kept lever alone, the chosen template alone and the
    full chosen configuration, plus the no-injection control and the logit lens, on
    ``facts`` (the test split: facts the search never saw).

    Each configuration's row is its best layer on these facts (as the evaluation reports)
    with a 95% bootstrap interval, and its mean over layers.

    Returns:
        DataFrame with columns :data:`ABLATION_COLUMNS`, the paper recipe first.
    """
    layers = list(layers)
    vecs, _, _ = subject_vectors(model, facts, layers)
    configs: list[tuple[str, str, dict[str, Any]]] = [("paper", PAPER_TEMPLATE, {})]
    if result.template != PAPER_TEMPLATE:
        configs.append((f"template {result.template}", result.template, {}))
    for stage, lever in result.levers().items():
        configs.append((f"paper + {stage}", PAPER_TEMPLATE, _with_lever({}, lever)))
    configs.append(("chosen (all combined)", result.template, dict(result.settings)))
    table = []

    def add(name: str, template: str | None, settings: dict[str, Any] | None, hits: dict[int, list[bool]]) -> None:
        acc, best = _layer_accuracy(hits)
        mean, low, high = bootstrap_ci(hits[best], n_bootstrap, seed)
        table.append({
            "config": name, "template": template, "settings": None if settings is None else json.dumps(settings, sort_keys=True),
            "mean": sum(acc.values()) / len(acc), "best_layer": best, "accuracy": mean, "ci_low": low,
            "ci_high": high, "n": len(hits[best]),
        })  # fmt: skip

    for name, template, settings in tqdm(configs, desc="ablation", disable=not verbose, leave=False):
        add(name, template, settings, _run(model, facts, vecs, layers, template, settings, k, max_new_tokens, batch_size))
    control = control_rows(model, facts, result.template, max_new_tokens, result.settings.get("n_placeholders"))
    add(f"control (no injection, {result.template})", result.template, None,
        {-1: [bool(r["correct"]) for r in control]})  # fmt: skip
    add("logit lens", None, None, _accuracy_by_layer(logit_lens_rows(model, facts, vecs, layers, logit_lens_k), layers))
    if "subject" in facts.columns:
        add(f"reading the name ({result.template}, subject spelled out)", result.template, None,
            {-1: spelled_out_hits(model, facts, result.template, max_new_tokens, batch_size)})  # fmt: skip
    return pd.DataFrame(table, columns=ABLATION_COLUMNS)


def spelled_out_hits(
    model: HookedTransformer, facts: pd.DataFrame, template: str, max_new_tokens: int = 20, batch_size: int = BATCH_SIZE
) -> list[bool]:
    """Per fact, whether the model names the attribute when the template's placeholders are
    replaced by the subject's name (:meth:`~selfie_tl.prompts.InterpretationPrompt.filled`):
    what the prompt gets when the model *reads* the entity, the reference SelfIE's
    injected state is aiming at. Greedy, no decoding controls.

    Example:
        >>> from selfie_tl.eval import load_known_facts
        >>> from selfie_tl.testing import tiny_model
        >>> len(spelled_out_hits(tiny_model(), load_known_facts(limit=2), "tell_me", max_new_tokens=2))
        2
    """
    from selfie_tl.eval.facts import fact_completion
    from selfie_tl.eval.templates import template_prompt

    prompt = template_prompt(model.tokenizer, template)
    spelled = facts.assign(prompt=[prompt.filled(s) for s in facts["subject"]])
    return fact_completion(model, spelled, max_new_tokens, batch_size)["correct"].tolist()


def preset_document(result: SearchResult, ablation_table: pd.DataFrame | None = None, **notes: Any) -> dict[str, Any]:
    """The chosen settings as a preset JSON document (see :mod:`selfie_tl.presets`).

    Example:
        >>> r = SearchResult("tell_me", {"scale": 0.5}, pd.DataFrame(), 10, [3])
        >>> preset_document(r)["settings"]
        {'scale': 0.5}
    """
    settings = dict(result.settings)
    adapter = settings.pop("adapter", None)
    prompt = template_spec(result.template)
    if (n := settings.pop("n_placeholders", None)) is not None:  # a property of the prompt, stored there
        if prompt is None:
            raise InvalidArgumentError(
                f"template {result.template!r} is the model's default prompt, stored without a placeholder count; "
                f"n_placeholders={n!r} cannot be stored with it"
            )
        prompt = spec_with_placeholders(prompt, n)
    notes = {"what": f"chosen by selfie_tl.eval.search on {result.n_facts} facts, layers {result.layers}", **notes}
    if ablation_table is not None:
        notes["ablation"] = ablation_table.to_dict(orient="records")
    return {"format_version": 1, "prompt": prompt, "settings": settings,
            "adapter": adapter, "notes": notes}  # fmt: skip


__all__ = [
    "ABLATION_COLUMNS",
    "DEFAULT_LEVERS",
    "SearchResult",
    "SearchSpace",
    "ablation",
    "preset_document",
    "search_settings",
    "spelled_out_hits",
]
