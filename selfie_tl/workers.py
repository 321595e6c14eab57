"""Interpretation across worker processes on the CPU, for sweeps such as the evaluation.

A decode step at a few hundred rows spends a good part of its time in Python and in
small, thread-synchronised operations, during which one of two threads waits. Two
processes with one thread each overlap one's Python with the other's matrix products:
measured on 2 cores (SmolLM2-135M, 128-row batches, 20 new tokens), 256 interpretations
took 24.2-25.8 s in one two-thread process and 17.8-22.3 s as 2 x 128 in two one-thread
processes.

:class:`InterpretPool` starts the processes once (``spawn``, so no thread pool is forked),
hands each the caller's model - its weights are moved once into shared memory and read
there by every process - and
sends batches of vectors to whichever process is free; texts come back in order. A
process computes exactly what :func:`selfie_tl.interpret.interpret_vectors` computes in
this one, but with its own thread count, so matrix products may round differently in the
last bit (as any change of thread count does).

Example:
    >>> import torch
    >>> from selfie_tl.testing import tiny_model
    >>> model = tiny_model()
    >>> with InterpretPool(model, workers=2) as pool:
    ...     texts = pool.interpret_vectors(torch.randn(5, 64), k=1, max_new_tokens=3, batch_size=2)
    >>> len(texts)
    5
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any, Self

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from selfie_tl.errors import InvalidArgumentError
from selfie_tl.prompts import InterpretationPrompt
from selfie_tl.validation import as_int

_MODEL: HookedTransformer | None = None
"""The model of this worker process (set by :func:`_start`)."""


AUTO_MIN_INTERPRETATIONS = 2000
"""``workers="auto"`` starts processes only for at least this many interpretations: starting
two (imports, the model handed over) took ~15 s on 2 cores, and they save ~12 ms per
interpretation (SmolLM2-135M, 20 new tokens), so fewer would not pay."""


def check_workers(workers: Any) -> int | str:
    """``"auto"``, or ``workers`` as an int >= 1.

    Raises:
        InvalidArgumentError: anything else (the message names what is allowed).

    Example:
        >>> check_workers("auto"), check_workers(2)
        ('auto', 2)
    """
    if isinstance(workers, str) and workers == "auto":
        return "auto"
    return as_int(workers, "workers ('auto', or a number of processes; 1 = this process only)", 1)


def resolve_workers(model: HookedTransformer, workers: Any, n_interpretations: int) -> tuple[int, int]:
    """``(processes, torch threads each)`` for ``workers``.

    ``"auto"``: two processes sharing this process's torch threads when the model is on the
    CPU, unhooked, this process has at least two threads and there are at least
    :data:`AUTO_MIN_INTERPRETATIONS` interpretations; otherwise ``(1, threads)``, this
    process alone. An int ``n >= 2`` always gives ``n`` processes (``threads // n`` each).

    Raises:
        InvalidArgumentError: ``workers`` is neither ``"auto"`` nor an int >= 1.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> resolve_workers(tiny_model(), "auto", 10)[0]  # too little work to pay
        1
    """
    from selfie_tl.fast.row_compaction import any_hook_attached

    workers = check_workers(workers)
    threads = torch.get_num_threads()
    if workers != "auto":
        return workers, max(1, threads // workers)
    if (
        str(model.cfg.device).startswith("cpu")
        and threads >= 2
        and n_interpretations >= AUTO_MIN_INTERPRETATIONS
        and not any_hook_attached(model)
    ):
        return 2, threads // 2
    return 1, threads


def start_pool(model: HookedTransformer, workers: Any, n_interpretations: int) -> InterpretPool | None:
    """An :class:`InterpretPool` as :func:`resolve_workers` decides, already starting in the
    background, or ``None`` for this process alone.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> start_pool(tiny_model(), "auto", 10) is None
        True
    """
    n, threads = resolve_workers(model, workers, n_interpretations)
    return InterpretPool(model, n, threads) if n >= 2 else None


def _start(model: HookedTransformer, threads: int) -> None:
    global _MODEL
    torch.set_num_threads(threads)
    from selfie_tl.runtime import keep_freed_memory

    keep_freed_memory()
    _MODEL = model


def _ready() -> None:
    assert _MODEL is not None, "worker not started"


def _interpret(vectors: Any, parts: tuple | None, position_rule: str, options: dict[str, Any]) -> list[str]:
    from selfie_tl.interpret import interpret_vectors

    assert _MODEL is not None, "worker not started"
    prompt = (
        None if parts is None else InterpretationPrompt(_MODEL.tokenizer, parts, position_rule=position_rule)
    )
    return interpret_vectors(_MODEL, torch.from_numpy(vectors), prompt, **options)


class InterpretPool:
    """Worker processes that each hold ``model`` and interpret batches of vectors.

    Args:
        model: a CPU model without hooks (the workers get its weights and configuration;
            hooks and adapters attached to it are not carried over).
        workers: number of processes (>= 2; use ``interpret_vectors`` directly for one).
        threads: torch threads per process (default: this process's threads / workers).

    Raises:
        InvalidArgumentError: fewer than 2 workers, a model not on the CPU, or a hook on it.
    """

    def __init__(self, model: HookedTransformer, workers: int = 2, threads: int | None = None) -> None:
        from selfie_tl.fast.row_compaction import any_hook_attached

        workers = as_int(workers, "workers", 2)
        threads = (
            max(1, torch.get_num_threads() // workers) if threads is None else as_int(threads, "threads", 1)
        )
        if not str(model.cfg.device).startswith("cpu"):
            raise InvalidArgumentError(f"InterpretPool runs CPU models; this one is on {model.cfg.device}")
        if any_hook_attached(model):
            raise InvalidArgumentError(
                "InterpretPool copies the model without its hooks; remove them (model.reset_hooks()) or run "
                "interpret_vectors in this process"
            )
        self.workers, self.threads = workers, threads
        context = torch.multiprocessing.get_context("spawn")
        self._pool = concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=context, initializer=_start, initargs=(model, threads)
        )
        # Start every process now (imports and the model's hand-over take seconds), so the
        # caller's own work overlaps it.
        for _ in range(workers):
            self._pool.submit(_ready)

    def interpret_vectors(
        self,
        vectors: Float[Tensor, "n d_model"],
        interpretation_prompt: InterpretationPrompt | None = None,
        *,
        batch_size: int,
        progress: Callable[[int], Any] | None = None,
        **options: Any,
    ) -> list[str]:
        """:func:`selfie_tl.interpret.interpret_vectors` over the workers, one batch of
        ``batch_size`` vectors per task; texts in the order of ``vectors``. ``progress`` is
        called with each finished batch's size."""
        batch_size = as_int(batch_size, "batch_size", 1)
        if interpretation_prompt is not None and not isinstance(interpretation_prompt, InterpretationPrompt):
            raise InvalidArgumentError(
                f"interpretation_prompt must be an InterpretationPrompt or None, got {type(interpretation_prompt).__name__}"
            )
        # The prompt travels as its parts, the vectors as plain arrays (no shared-memory
        # handle per batch); each worker tokenizes the parts again (the same ids).
        parts = None if interpretation_prompt is None else interpretation_prompt.parts
        rule = "offsets" if interpretation_prompt is None else interpretation_prompt.position_rule
        data = vectors.detach().to("cpu", torch.float32).numpy()
        options = {**options, "batch_size": batch_size}
        futures = [
            self._pool.submit(_interpret, data[start : start + batch_size], parts, rule, options)
            for start in range(0, len(data), batch_size)
        ]
        if progress is not None:
            sizes = {f: min(batch_size, len(data) - i * batch_size) for i, f in enumerate(futures)}
            for done in concurrent.futures.as_completed(futures):
                done.result()
                progress(sizes[done])
        return [text for f in futures for text in f.result()]

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _interpret_any(
    vectors: Any, parts: tuple | None, position_rule: str, options: dict[str, Any]
) -> list[str]:
    if parts is None:
        from selfie_tl.interpret import interpret_vectors

        assert _MODEL is not None, "worker not started"
        return interpret_vectors(_MODEL, torch.from_numpy(vectors), None, **options)
    return _interpret(vectors, parts, position_rule, options)


__all__ = ["AUTO_MIN_INTERPRETATIONS", "InterpretPool", "check_workers", "resolve_workers", "start_pool"]
