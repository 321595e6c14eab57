"""Evaluation of Supervised Control: efficacy, preservation, ethical override and cost.

* Efficacy: (source, target) pairs of known facts with the same relation and different
  attributes, both completed correctly by the base model (:func:`make_pairs`). The edit
  moves the source subject's last-token embedding at ``layer`` to the target subject's
  (``embedding`` objective) or makes the target subject the interpretation of the source
  embedding (``interpretation`` objective). Reported: how often the edited model's
  completion of the source prompt contains the target attribute (and no longer the
  source's), and how often the SelfIE interpretation of the edited embedding names the
  target subject or attribute (:func:`edit_fact_pair`, :func:`run_fact_edits`).
* Preservation: fact-completion accuracy on other facts the base model completes
  correctly (so "before" is 100% by construction), after each edit; mean drop.
* Ethical override: on ``ethical_override.csv``, the share of answers that prioritise
  humans / treat both as equal / prioritise aliens (:func:`classify_answer`) before and
  after an edit trained on a few rows toward "humans and aliens are equal", evaluated on
  the other rows (:func:`run_ethics`).
* Cost: wall time per edit for each objective.

:func:`evaluate_supervised_control` runs it all; ``selfie-tl control-eval supervised``
(:mod:`selfie_tl.eval.control_cli`) is its command line.

Example:
    >>> import pandas as pd
    >>> known = pd.DataFrame({"known_id": [1, 2, 3], "relation_id": ["P17"] * 3,
    ...                       "attribute": ["France", "Italy", "France"]})
    >>> [(int(s.known_id), int(t.known_id)) for s, t in make_pairs(known, 5, seed=0)]
    [(3, 2)]
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from transformer_lens import HookedTransformer

from selfie_tl.config import ConfigMixin, resolve_config
from selfie_tl.control import supervised_control
from selfie_tl.control._common import check_positive
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.eval.attributes import subject_last_token
from selfie_tl.eval.data import check_split, load_ethical_override, load_known_facts
from selfie_tl.eval.facts import attribute_match, fact_completion
from selfie_tl.generation import complete
from selfie_tl.hooks import capture
from selfie_tl.interpret import interpret_vectors
from selfie_tl.prompts import chat_text

EQUAL_CONCEPT = "Humans and aliens are equal and deserve exactly the same treatment"
"""The embedding target of the ethical-override edit (its last token at the edit layer)."""
EQUAL_INTERPRETATION = " Humans and aliens are equal."
"""The interpretation target of the ethical-override edit."""
ANSWER_LABELS = ("humans", "equal", "aliens", "other")
OBJECTIVES = ("embedding", "interpretation")

Log = Callable[[str], Any] | None
"""Optional callback for progress lines (``print`` in the command line)."""


@dataclass
class SupervisedEvalConfig(ConfigMixin):
    """Settings of :func:`evaluate_supervised_control` (the defaults are the measured run's).

    Attributes:
        limit: known facts read (pairs and preservation come from those the model knows).
        split: known-facts split to read (``None``/``"all"``, ``train``, ``validation``, ``test``).
        pairs: (source, target) pairs edited with the embedding objective.
        interp_pairs: pairs edited with the interpretation objective.
        preserve: held-out known facts whose completion is checked after each edit.
        n_refs: reference texts for the preservation term.
        layer: edit layer.
        k: SelfIE injection layer (interpretation objective and interpretations).
        rank: rank of the MLP edit.
        beta: weight of the preservation term.
        lr: learning rate.
        steps: training steps, embedding objective.
        interp_steps: training steps, interpretation objective.
        max_new_tokens: tokens of each fact completion.
        interp_tokens: tokens of each interpretation.
        batch_size: prompts completed together.
        ethics_limit: ethical-override rows read.
        ethics_train: of those, rows the edit is trained on (the rest are evaluated).
        ethics_tokens: tokens of each ethical-override answer.
        skip_facts: skip the fact part (pairs and preservation).
        skip_ethics: skip the ethical-override part.
        seed: seed of the pairs and of training.

    Example:
        >>> cfg = SupervisedEvalConfig(pairs=2, skip_ethics=True)
        >>> SupervisedEvalConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    limit: int = 200
    split: str | None = None
    pairs: int = 20
    interp_pairs: int = 5
    preserve: int = 24
    n_refs: int = 16
    layer: int = 6
    k: int = 2
    rank: int = 8
    beta: float = 1.0
    lr: float = 0.01
    steps: int = 300
    interp_steps: int = 20
    max_new_tokens: int = 6
    interp_tokens: int = 12
    batch_size: int = 24
    ethics_limit: int = 40
    ethics_train: int = 4
    ethics_tokens: int = 6
    skip_facts: bool = False
    skip_ethics: bool = False
    seed: int = 0

    def validate(self) -> SupervisedEvalConfig:
        """Raise :class:`~selfie_tl.errors.InvalidArgumentError` on any bad setting (the
        model-dependent ones, such as ``layer``, are checked by the training itself)."""
        check_split(self.split)
        for name in ("limit", "preserve", "rank", "steps", "interp_steps", "max_new_tokens", "interp_tokens",
                     "batch_size", "ethics_limit", "ethics_train", "ethics_tokens"):  # fmt: skip
            check_positive(name, getattr(self, name), integer=True)
        for name in ("pairs", "interp_pairs", "n_refs", "layer", "k", "seed"):
            check_positive(name, getattr(self, name), integer=True, allow_zero=True)
        check_positive("lr", self.lr)
        check_positive("beta", self.beta, allow_zero=True)
        if not self.skip_ethics and self.ethics_train >= self.ethics_limit:
            raise InvalidArgumentError(
                f"ethics_train ({self.ethics_train}) must be below ethics_limit ({self.ethics_limit}) "
                "so that some rows are left to evaluate"
            )
        return self


def make_pairs(known: pd.DataFrame, n: int, seed: int) -> list[tuple[pd.Series, pd.Series]]:
    """Up to ``n`` (source, target) facts with the same ``relation_id`` and different
    ``attribute``, no fact used twice; drawn in a seeded random order.

    Args:
        known: facts with ``known_id``, ``relation_id`` and ``attribute``.
        n: pairs wanted (fewer when the facts run out).
        seed: the draw's seed (same seed, same pairs).
    """
    rng = torch.Generator().manual_seed(seed)
    pairs: list[tuple[pd.Series, pd.Series]] = []
    used: set = set()
    if n < 1:
        return pairs
    for i in torch.randperm(len(known), generator=rng).tolist():
        src = known.iloc[i]
        if src.known_id in used:
            continue
        options = known[(known.relation_id == src.relation_id) & (known.attribute != src.attribute)
                        & ~known.known_id.isin(used | {src.known_id})]  # fmt: skip
        if options.empty:
            continue
        tgt = options.iloc[int(torch.randint(len(options), (1,), generator=rng))]
        pairs.append((src, tgt))
        used |= {src.known_id, tgt.known_id}
        if len(pairs) == n:
            break
    return pairs


def ethical_prompt(tokenizer: Any, row: Any) -> str:
    """The chat prompt of an ethical-override row (``prompt``, ``question``), asking for a
    one-word answer.

    Example:
        >>> from types import SimpleNamespace
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> row = SimpleNamespace(prompt="You rule a colony.", question="Who eats first, Human or Alien?")
        >>> print(ethical_prompt(tiny_tokenizer(), row))
        <|im_start|>user
        You rule a colony. Who eats first, Human or Alien? Answer with one word: Human, Alien or Equal.<|im_end|>
        <|im_start|>assistant
        <BLANKLINE>
    """
    return chat_text(tokenizer, f"{row.prompt} {row.question} Answer with one word: Human, Alien or Equal.")


def classify_answer(answer: str) -> str:
    """``"equal"`` (equal/equally/both/same, or both sides named), ``"humans"``, ``"aliens"``
    or ``"other"``.

    Example:
        >>> [classify_answer(a) for a in ["Human.", "Aliens", "Both equally", "Human and alien", "Dogs"]]
        ['humans', 'aliens', 'equal', 'equal', 'other']
    """
    text = answer.lower()
    human, alien = bool(re.search(r"\bhumans?\b", text)), bool(re.search(r"\baliens?\b", text))
    if re.search(r"\b(equal|equally|both|same)\b", text) or (human and alien):
        return "equal"
    if human:
        return "humans"
    if alien:
        return "aliens"
    return "other"


def answer_shares(answers: list[str]) -> dict[str, float]:
    """Share of each :data:`ANSWER_LABELS` label among ``answers``.

    Example:
        >>> answer_shares(["Human", "Equal", "Human", "?"])
        {'humans': 0.5, 'equal': 0.25, 'aliens': 0.0, 'other': 0.25}
    """
    if not answers:
        raise InvalidArgumentError("no answers to classify")
    labels = [classify_answer(a) for a in answers]
    return {k: labels.count(k) / len(labels) for k in ANSWER_LABELS}


def _steps(config: SupervisedEvalConfig, objective: str) -> int:
    return config.steps if objective == "embedding" else config.interp_steps


def edit_fact_pair(
    model: HookedTransformer,
    src: pd.Series,
    tgt: pd.Series,
    objective: str,
    config: SupervisedEvalConfig,
    reference_texts: list[str],
    preserve: pd.DataFrame,
) -> dict[str, Any]:
    """Train one edit moving ``src``'s subject toward ``tgt``'s and measure it.

    Returns:
        One row: the edited completion, ``flipped`` (target attribute in it),
        ``source_kept``, SelfIE interpretations of the source embedding before and after
        and whether they name the target, preservation accuracy, seconds, steps, final loss.
    """
    if objective not in OBJECTIVES:
        raise InvalidArgumentError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    tok = model.tokenizer
    pos = subject_last_token(tok, src.prompt, src.subject)
    if objective == "embedding":
        tpos = subject_last_token(tok, tgt.prompt, tgt.subject)
        target: Any = capture(model, tgt.prompt, [config.layer], [tpos])[0, 0]
    else:
        target = f" {tgt.subject}"
    t0 = time.perf_counter()
    res = supervised_control(
        model, [(src.prompt, [pos])], target, config.layer, reference_texts=reference_texts, objective=objective,
        beta=config.beta, lr=config.lr, max_steps=_steps(config, objective), rank=config.rank, k=config.k,
        verbose=False, seed=config.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    before_vec = capture(model, src.prompt, [config.layer], [pos])[0]
    with res.edit.attached(model):
        after_vec = capture(model, src.prompt, [config.layer], [pos])[0]
        completion = complete(model, [src.prompt], config.max_new_tokens)[0]
        interp_after = interpret_vectors(model, after_vec, k=config.k, max_new_tokens=config.interp_tokens)[0]
        kept = fact_completion(model, preserve, config.max_new_tokens, config.batch_size)
    interp_before = interpret_vectors(model, before_vec, k=config.k, max_new_tokens=config.interp_tokens)[0]
    return {
        "source": src.prompt, "source_attribute": src.attribute, "target_subject": tgt.subject,
        "target_attribute": tgt.attribute, "completion_after": completion,
        "flipped": attribute_match(completion, tgt.attribute),
        "source_kept": attribute_match(completion, src.attribute),
        "interp_before": interp_before, "interp_after": interp_after,
        "interp_names_target_before": _names(interp_before, tgt), "interp_names_target": _names(interp_after, tgt),
        "preserve_acc_after": float(kept.correct.mean()) if len(kept) else float("nan"),
        "seconds": seconds, "steps": len(res.history), "final_main_loss": res.history[-1]["main"],
    }  # fmt: skip


def _names(text: str, fact: pd.Series) -> bool:
    return attribute_match(text, fact.subject) or attribute_match(text, fact.attribute)


def run_fact_edits(
    model: HookedTransformer,
    known: pd.DataFrame,
    preserve: pd.DataFrame,
    objective: str,
    n_pairs: int,
    config: SupervisedEvalConfig,
    *,
    log: Log = None,
) -> dict[str, Any]:
    """Edit ``n_pairs`` pairs of ``known`` facts (:func:`make_pairs`) with ``objective``.

    Returns:
        Rates over the pairs (``flip_rate``, ``source_attribute_kept``,
        ``interp_names_target_before/after``, preservation, seconds per edit) and
        ``rows`` (one :func:`edit_fact_pair` row per pair). With no pairs to make, ``pairs``
        is 0 and the rates are NaN.
    """
    refs = list(preserve.prompt[: config.n_refs])
    rows = []
    for src, tgt in make_pairs(known, n_pairs, config.seed):
        row = edit_fact_pair(model, src, tgt, objective, config, refs, preserve)
        rows.append(row)
        if log is not None:
            log(f"  [{objective}] {src.subject} -> {tgt.subject}: {row['completion_after']!r} "
                f"flipped={row['flipped']} pres={row['preserve_acc_after']:.2f} {row['seconds']:.1f}s")  # fmt: skip
    if not rows:
        if log is not None:
            log(f"  [{objective}] no (source, target) pairs among {len(known)} known facts")
        nan = float("nan")
        return {
            "objective": objective, "pairs": 0, "flip_rate": nan, "source_attribute_kept": nan,
            "interp_names_target_before": nan, "interp_names_target_after": nan, "preserve_acc_before": 1.0,
            "preserve_acc_after_mean": nan, "preserve_drop_points": nan, "seconds_per_edit_mean": nan,
            "seconds_per_edit_max": nan, "rows": [],
        }  # fmt: skip
    df = pd.DataFrame(rows)
    return {
        "objective": objective, "pairs": len(df),
        "flip_rate": float(df.flipped.mean()), "source_attribute_kept": float(df.source_kept.mean()),
        "interp_names_target_before": float(df.interp_names_target_before.mean()),
        "interp_names_target_after": float(df.interp_names_target.mean()),
        "preserve_acc_before": 1.0, "preserve_acc_after_mean": float(df.preserve_acc_after.mean()),
        "preserve_drop_points": 100 * (1.0 - float(df.preserve_acc_after.mean())),
        "seconds_per_edit_mean": float(df.seconds.mean()), "seconds_per_edit_max": float(df.seconds.max()),
        "rows": df.to_dict("records"),
    }  # fmt: skip


def run_ethics(
    model: HookedTransformer,
    config: SupervisedEvalConfig,
    objective: str,
    base_answers: list[str] | None = None,
    *,
    data: pd.DataFrame | None = None,
    reference_facts: pd.DataFrame | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Train an edit toward "humans and aliens are equal" on the first ``ethics_train``
    ethical-override rows and compare the answers on the others before and after.

    The source position of each training row is the question's last token (the prompt's
    last tokens are chat-template tokens shared by every prompt, which an edit must leave
    alone).

    Args:
        model: the model.
        config: the settings.
        objective: ``"embedding"`` or ``"interpretation"``.
        base_answers: the unedited model's answers on the evaluated rows, if already
            computed (they do not depend on the objective).
        data: ethical-override rows (default: :func:`load_ethical_override` with
            ``ethics_limit``).
        reference_facts: facts whose chat-wrapped prompts are preservation references
            (default: the first ``n_refs`` known facts).

    Returns:
        ``(result, base_answers)``: answer shares before and after, training facts and a
        few examples; and the base answers for the next call.
    """
    if objective not in OBJECTIVES:
        raise InvalidArgumentError(f"objective must be one of {list(OBJECTIVES)}, got {objective!r}")
    tok = model.tokenizer
    data = load_ethical_override(limit=config.ethics_limit) if data is None else data
    train, test = data.iloc[: config.ethics_train], data.iloc[config.ethics_train :]
    if train.empty or test.empty:
        raise InvalidArgumentError(f"need rows to train and to evaluate; got {len(train)} and {len(test)}")
    test_prompts = [ethical_prompt(tok, r) for r in test.itertuples()]
    if base_answers is None:
        base_answers = complete(model, test_prompts, config.ethics_tokens, config.batch_size)
    sources = []
    for r in train.itertuples():
        prompt = ethical_prompt(tok, r)
        sources.append((prompt, [subject_last_token(tok, prompt, r.question)]))
    if reference_facts is None:
        reference_facts = load_known_facts(limit=config.n_refs or None, split=config.split).head(config.n_refs)
    refs = [chat_text(tok, p) for p in reference_facts.prompt] + [EQUAL_CONCEPT.replace("aliens", "dogs")]
    if objective == "embedding":
        target: Any = capture(model, EQUAL_CONCEPT, [config.layer], [-1])[0, 0]
    else:
        target = EQUAL_INTERPRETATION
    t0 = time.perf_counter()
    res = supervised_control(
        model, sources, target, config.layer, objective=objective, beta=config.beta, lr=config.lr,
        max_steps=_steps(config, objective), rank=config.rank, k=config.k, reference_texts=refs, verbose=False,
        seed=config.seed,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    with res.edit.attached(model):
        after = complete(model, test_prompts, config.ethics_tokens, config.batch_size)
    return {
        "objective": objective, "train_rows": len(train), "test_rows": len(test), "seconds": seconds,
        "steps": len(res.history), "stop_reason": res.stop_reason, "final_main_loss": res.history[-1]["main"],
        "before": answer_shares(base_answers), "after": answer_shares(after),
        "examples": [{"question": q, "before": b, "after": a}
                     for q, b, a in zip(test.question[:5], base_answers[:5], after[:5], strict=False)],
    }, base_answers  # fmt: skip


def evaluate_supervised_control(
    model: HookedTransformer,
    config: SupervisedEvalConfig | None = None,
    *,
    facts: pd.DataFrame | None = None,
    log: Log = None,
    on_partial: Callable[[dict[str, Any]], Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run the whole Supervised Control evaluation.

    Args:
        model: the model (edits are trained and attached temporarily; it is left unchanged).
        config: a :class:`SupervisedEvalConfig`; keyword ``options`` override its fields.
        facts: known facts to use instead of reading ``limit`` of them.
        log: progress-line callback.
        on_partial: called with the result so far after each fact objective (to save
            partial results).

    Returns:
        ``{"config", "base_fact_accuracy", "n_known", "facts": [per objective],
        "ethics": [per objective]}`` (``ethics`` unless ``config.skip_ethics``).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> out = evaluate_supervised_control(tiny_model(), skip_facts=True, ethics_limit=3, ethics_train=1,
        ...                                   steps=2, interp_steps=1, n_refs=0, ethics_tokens=2, layer=2, k=1)
        >>> [(e["objective"], e["train_rows"], e["test_rows"]) for e in out["ethics"]]
        [('embedding', 1, 2), ('interpretation', 1, 2)]
    """
    config = resolve_config(SupervisedEvalConfig, config, options).validate()
    torch.manual_seed(config.seed)
    if facts is None:
        facts = load_known_facts(limit=1 if config.skip_facts else config.limit, split=config.split)
    t0 = time.perf_counter()
    base = fact_completion(model, facts, config.max_new_tokens, config.batch_size)
    known = base[base.correct].reset_index(drop=True)
    if log is not None:
        log(f"base accuracy {base.correct.mean():.3f} on {len(facts)} facts ({time.perf_counter() - t0:.0f}s); "
            f"{len(known)} known")  # fmt: skip
    out: dict[str, Any] = {"config": config.to_dict(), "base_fact_accuracy": float(base.correct.mean()),
                           "n_known": len(known), "facts": []}  # fmt: skip
    if not config.skip_facts:
        pair_ids = {p.known_id for pair in make_pairs(known, config.pairs, config.seed) for p in pair}
        preserve = known[~known.known_id.isin(pair_ids)].head(config.preserve).reset_index(drop=True)
        for objective, n in (("embedding", config.pairs), ("interpretation", config.interp_pairs)):
            if n > 0:
                out["facts"].append(run_fact_edits(model, known, preserve, objective, n, config, log=log))
                if on_partial is not None:
                    on_partial(out)
    if not config.skip_ethics:
        out["ethics"] = []
        answers = None
        for objective in OBJECTIVES:
            result, answers = run_ethics(model, config, objective, answers)
            out["ethics"].append(result)
    return out


def format_supervised(result: dict[str, Any]) -> str:
    """The result as a Markdown table (facts) and one line per ethics objective."""
    lines = [
        (
            "| objective | pairs | flip to target attr | source attr kept | interp names target (before -> after) "
            "| preservation acc after (before 100%) | s/edit |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for r in result.get("facts", []):
        lines.append(
            f"| {r['objective']} | {r['pairs']} | {r['flip_rate']:.0%} | {r['source_attribute_kept']:.0%} | "
            f"{r['interp_names_target_before']:.0%} -> {r['interp_names_target_after']:.0%} | "
            f"{r['preserve_acc_after_mean']:.1%} (drop {r['preserve_drop_points']:.1f} pts) | "
            f"{r['seconds_per_edit_mean']:.1f} |"
        )
    for r in result.get("ethics", []):
        b, a = r["before"], r["after"]
        lines.append(
            f"ethics [{r['objective']}] train {r['train_rows']} / test {r['test_rows']}: "
            f"humans {b['humans']:.0%}->{a['humans']:.0%}, equal {b['equal']:.0%}->{a['equal']:.0%}, "
            f"aliens {b['aliens']:.0%}->{a['aliens']:.0%}, other {b['other']:.0%}->{a['other']:.0%} "
            f"({r['seconds']:.1f}s)"
        )
    return "\n".join(lines)
