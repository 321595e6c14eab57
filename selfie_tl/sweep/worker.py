"""The work of one shard, shared by every engine: load the model once, interpret items.

:class:`ShardWorker` holds one model (and the job's vectors); :meth:`ShardWorker.run`
turns a list of work items into result rows. The local engine makes one in-process; the Ray
engine makes one per actor. Rows depend only on the items and the job, so every engine
writes the same shards (greedy decoding; sampling is reproducible with ``settings.seed``,
per shard).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from selfie_tl.errors import ModelLoadError
from selfie_tl.sweep.job import SweepJob, read_vectors

SCHEMA = pa.schema([
    ("item_id", pa.string()), ("item_index", pa.int64()), ("source", pa.string()),
    ("prompt_index", pa.int64()), ("prompt", pa.string()), ("layer", pa.int64()), ("token", pa.int64()),
    ("token_decoded", pa.string()), ("vector_index", pa.int64()), ("settings_hash", pa.string()),
    ("k", pa.int64()), ("interpretation", pa.string()), ("generated_tokens", pa.list_(pa.string())),
    ("generated_token_ids", pa.list_(pa.int64())), ("relevancy", pa.list_(pa.float64())),
    ("mean_relevancy", pa.float64()), ("scale", pa.float64()),
])  # fmt: skip
"""Columns of every shard: the item's id and inputs, then its results."""


def load_model_spec(spec: str | None, device: str | None = None, dtype: str = "float32"):
    """Load the model a job names; ``"tiny:llama"`` / ``"tiny:gpt2"`` are the test models.

    Raises:
        ModelLoadError: the model cannot be loaded (the message names it).
    """
    try:
        if spec is not None and spec.startswith("tiny:"):
            from selfie_tl.testing import tiny_model

            model = tiny_model(spec.split(":", 1)[1])
            return model.to(device) if device else model
        from selfie_tl import load_model

        return load_model(None if spec in (None, "default") else spec, device=device, dtype=dtype)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load model {spec or 'default'!r}: {type(exc).__name__}: {exc}") from exc


class ShardWorker:
    """One model plus the job's inputs; :meth:`run` computes the rows of a list of items."""

    def __init__(self, job: dict[str, Any] | SweepJob, device: str | None = None):
        self.job = job if isinstance(job, SweepJob) else SweepJob(**job)
        self.device = device if device is not None else self.job.device
        self.model = None
        self.vectors = None

    def setup(self) -> None:
        """Load the model and the vectors (idempotent). Raises :class:`ModelLoadError`."""
        if self.model is None:
            self.model = load_model_spec(self.job.model, self.device, self.job.dtype)
        if self.vectors is None and self.job.vectors is not None:
            self.vectors = read_vectors(self.job)

    def run(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Result rows (dicts in :data:`SCHEMA`'s columns) of ``items``, in order."""
        import torch

        from selfie_tl.hooks import capture
        from selfie_tl.interpret import generate_interpretations, resolve_settings

        self.setup()
        model = self.model
        job = self.job
        rows = [dict(item) for item in items]
        if job.vectors is not None:
            vectors = torch.as_tensor(self.vectors[[item["vector_index"] for item in items]])
        else:
            # one forward per prompt of the shard, at every layer/position its items need
            states: dict[tuple, Any] = {}
            by_prompt: dict[str, list[dict[str, Any]]] = {}
            for item in items:
                by_prompt.setdefault(item["prompt"], []).append(item)
            for prompt, group in by_prompt.items():
                layers = sorted({it["layer"] for it in group})
                positions = list(dict.fromkeys(it["token"] for it in group))
                captured = capture(model, prompt, layers, positions)
                for it in group:
                    key = (prompt, it["layer"], it["token"])
                    states[key] = captured[layers.index(it["layer"]), positions.index(it["token"])]
            parts = []
            for row, item in zip(rows, items, strict=True):
                parts.append(states[(item["prompt"], item["layer"], item["token"])])
                ids = model.tokenizer(item["prompt"])["input_ids"]
                row["token_decoded"] = model.tokenizer.decode([ids[item["token"]]])
            vectors = torch.stack(parts)
        vectors = vectors.to(device=model.cfg.device, dtype=model.cfg.dtype)
        settings = dict(job.settings)
        settings["verbose"] = False
        out = generate_interpretations(
            model, vectors, config=None, preset=job.preset, token_probs=False, **settings
        )
        config = resolve_settings(model, job.preset, None, dict(settings), None, None)[0]
        settings_hash = job.settings_hash()
        for i, row in enumerate(rows):
            rel = out.relevancy[i] if out.relevancy is not None else None
            row.setdefault("token_decoded", None)
            row.update(
                settings_hash=settings_hash, k=int(config.k), interpretation=out.texts[i],
                generated_tokens=list(out.tokens[i]), generated_token_ids=[int(t) for t in out.token_ids[i]],
                relevancy=rel, mean_relevancy=(sum(rel) / len(rel)) if rel else None, scale=float(out.scales[i]),
            )  # fmt: skip
        return rows


__all__ = ["SCHEMA", "ShardWorker", "load_model_spec"]
