"""Teacher forcing over many continuations of one prompt, each shared prefix computed once.

Relevancy's baseline feeds every row's generated tokens after the same uninjected prompt.
Rows often start alike (interpretations open with the same few words, and degenerate ones
repeat whole), and at a given position a row's residual depends only on the tokens before
it. So the rows that agree up to position ``j`` need positions ``< j`` computed once.

:func:`plan_prefixes` splits the fed positions into a few *stages* (cut points chosen by
dynamic programming to minimise position-rows plus a fixed cost per extra forward), and
within each stage keeps one row per distinct prefix. :func:`forward_stages` runs the
stages in order: each distinct prefix of a stage continues from its parent's KV cache
(gathered from the previous stage), so every position is computed once per distinct
prefix instead of once per row.

This is the same computation on the same values; only the batch shape of the matrix
products changes, which can move the last bits of a float (tests compare with the single
pass at a tolerance of 1e-5 on probabilities). Hooks would see fewer rows and several
forwards, so the caller takes this path only while nothing is attached to the model
(:func:`~selfie_tl.fast.row_compaction.any_hook_attached`).

Example:
    >>> import torch
    >>> plan = plan_prefixes(torch.tensor([[5, 6, 7], [5, 6, 8], [5, 6, 7]]), stage_cost=0)
    >>> plan.cuts, [u.tolist() for u in plan.rows]
    ([0, 2, 3], [[0], [0, 1]])
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.fast.row_compaction import select_cache_rows

ENABLED = True
"""Whether relevancy's baseline shares prefixes (:func:`selfie_tl.relevancy.baseline_probs`
with ``share_prefixes=None``, as :func:`selfie_tl.interpret` calls it); ``False``: one pass
over every row, as before this path existed."""

STAGE_COST = 40
"""The fixed cost of one more forward, in position-rows (one position of one row through
every block). Measured on SmolLM2-135M, 2 cores: a forward of one position of one row took
86 ms and gathering 24 rows of the KV cache 2 ms, while 384 batched position-rows took
2.2 ms each."""

MAX_STAGES = 4
"""At most this many forwards per call (the plan's search is over these many cut points)."""


@dataclass(frozen=True)
class PrefixPlan:
    """How :func:`forward_stages` covers ``tokens`` ``[batch, n]``.

    Attributes:
        cuts: ``0 = c_0 < c_1 < ... < c_m = n``: stage ``i`` feeds positions
            ``c_i .. c_{i+1} - 1``.
        rows: per stage, one original row index per distinct prefix ``tokens[:, :c_{i+1}]``.
        parent: per stage, for each distinct prefix, the index of its prefix among the
            previous stage's ``rows`` (stage 0: zeros).
        member: per stage, for each original row, the index of its prefix in ``rows``.
        cost: the plan's position-rows; ``batch * n`` unshared.
        stage_cost: what the plan charged per forward after the first.
    """

    cuts: list[int]
    rows: list[Tensor]
    parent: list[Tensor]
    member: list[Tensor]
    cost: int
    stage_cost: int

    @property
    def total(self) -> int:
        """Position-rows plus the charge for the extra forwards: compare with ``batch * n``."""
        return self.cost + self.stage_cost * (len(self.rows) - 1)


def _distinct(tokens: Tensor, j: int) -> tuple[Tensor, Tensor]:
    """One representative row per distinct ``tokens[:, :j]`` (the first, in row order) and
    each row's index among them."""
    if j == 0:
        zeros = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
        return zeros[:1], zeros
    _, inverse = torch.unique(tokens[:, :j], dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), tokens.shape[0], dtype=torch.long, device=tokens.device)
    first = first.scatter_reduce(0, inverse, torch.arange(tokens.shape[0], device=tokens.device), "amin")
    # order the distinct prefixes by first appearance, so the plan does not depend on sorting
    order = torch.argsort(first)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    return first[order], rank[inverse]


def plan_prefixes(
    tokens: Int[Tensor, "batch n"], stage_cost: int | None = None, max_stages: int = MAX_STAGES
) -> PrefixPlan:
    """The cheapest split of ``tokens`` into at most ``max_stages`` shared-prefix stages.

    Stage ``c_i .. c_{i+1}`` costs ``(c_{i+1} - c_i) * distinct(tokens[:, :c_{i+1}])``
    position-rows plus ``stage_cost`` (default :data:`STAGE_COST`) per stage after the first.

    Example:
        >>> import torch
        >>> same = torch.tensor([[1, 2, 3]] * 4)
        >>> plan_prefixes(same).cuts, plan_prefixes(same).cost  # one row stands for all four
        ([0, 3], 3)
    """
    if tokens.ndim != 2 or tokens.shape[1] == 0:
        raise InvalidArgumentError(f"tokens must be [batch, n] with n >= 1, got shape {tuple(tokens.shape)}")
    n = tokens.shape[1]
    stage_cost = STAGE_COST if stage_cost is None else stage_cost
    distinct = [_distinct(tokens, j) for j in range(n + 1)]
    width = [len(d[0]) for d in distinct]
    inf = float("inf")
    # best[s][j]: cheapest cover of positions < j in s stages ending at cut j; back[s][j]: previous cut
    best = [[inf] * (n + 1) for _ in range(max_stages + 1)]
    back = [[0] * (n + 1) for _ in range(max_stages + 1)]
    best[0][0] = 0.0
    for s in range(1, max_stages + 1):
        for j in range(1, n + 1):
            for i in range(j):
                if best[s - 1][i] < inf:
                    cost = best[s - 1][i] + (j - i) * width[j] + (stage_cost if s > 1 else 0)
                    if cost < best[s][j]:
                        best[s][j], back[s][j] = cost, i
    stages = min(range(1, max_stages + 1), key=lambda s: (best[s][n], s))
    cuts = [n]
    for s in range(stages, 0, -1):
        cuts.append(back[s][cuts[-1]])
    cuts.reverse()
    rows, parent, member = [], [], []
    for i in range(1, len(cuts)):
        reps, inverse = distinct[cuts[i]]
        rows.append(reps)
        member.append(inverse)
        parent.append(distinct[cuts[i - 1]][1][reps])
    cost = sum((cuts[i + 1] - cuts[i]) * width[cuts[i + 1]] for i in range(len(cuts) - 1))
    return PrefixPlan(cuts=cuts, rows=rows, parent=parent, member=member, cost=cost, stage_cost=stage_cost)


def forward_stages(
    tokens: Int[Tensor, "batch n"],
    plan: PrefixPlan,
    prompt_cache: Callable[[int], TransformerLensKeyValueCache],
    run: Callable[[Tensor, TransformerLensKeyValueCache], Tensor],
) -> list[Float[Tensor, "distinct length d_model"]]:
    """Each stage's residuals, one row per distinct prefix (``plan.rows[i]``).

    Args:
        tokens: ``[batch, n]`` tokens to feed after the prompt.
        plan: from :func:`plan_prefixes` on ``tokens``.
        prompt_cache: ``rows -> cache`` of the prompt for that many rows; it is appended to
            (pass an unfrozen cache, e.g. built over expanded views).
        run: ``(tokens, cache) -> residual``: one forward appending to ``cache``.

    Returns:
        Per stage ``i``, the residual ``[len(plan.rows[i]), c_{i+1} - c_i, d_model]``.
    """
    out = []
    cache = prompt_cache(len(plan.rows[0]))
    for i, reps in enumerate(plan.rows):
        if i:
            select_cache_rows(cache, plan.parent[i])
        out.append(run(tokens[reps, plan.cuts[i] : plan.cuts[i + 1]], cache))
    return out


__all__ = ["ENABLED", "MAX_STAGES", "STAGE_COST", "PrefixPlan", "forward_stages", "plan_prefixes"]
