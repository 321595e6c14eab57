"""Control edits: small trainable modules that add a learned delta to one MLP's output.

An edit of *layer* ``l`` (the residual entering block ``l``, same indexing as
:func:`selfie_tl.hooks.hook_name`, so ``l`` in ``[1, n_layers]``) lives in block ``l - 1``:
it reads that block's MLP input ``blocks.{l-1}.ln2.hook_normalized`` (unit-RMS, so the
scale is the same at every layer) and adds ``delta(x) = (x @ A) @ B + b`` to
``blocks.{l-1}.hook_mlp_out``. ``B`` and ``b`` start at zero, so a fresh edit changes
nothing. The base model's weights are never touched: an edit is attached through hook
points and detaching it restores the model exactly.

Because attention in block ``l - 1`` runs before the MLP, the residual at layer ``l`` with
the edit attached is exactly ``h + delta(x)`` where ``h`` and ``x`` come from a plain run.
The training loops use that identity to train from a cache.

Saved edits are one safetensors file whose header metadata holds a JSON document (layer,
hooks, shape, training info and a fingerprint of the model); no pickle is involved.
"""

from __future__ import annotations

import contextlib
import json
import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint

from selfie_tl.artifacts import (
    ModelFingerprint,
    fingerprint,
    load_artifact,
    read_artifact_metadata,
    save_artifact,
    tensors_hash,
)
from selfie_tl.errors import EditMismatchError, InvalidArgumentError
from selfie_tl.hooks import EditHooks, check_layer, edit_hook_names, model_lock
from selfie_tl.validation import as_bool, as_int, check_model

# model -> the edits attached to it (to refuse attaching the same edit twice)
_ATTACHED: weakref.WeakKeyDictionary[HookedTransformer, weakref.WeakSet[MLPEdit]] = weakref.WeakKeyDictionary()

FORMAT = "selfie_tl.control.edit"
FORMAT_VERSION = 2  # 2: the checksum covers the metadata too (1: tensors only, still read)
_READABLE = (1, 2)


def check_edit_layer(model: HookedTransformer, layer: Any) -> int:
    """Validate an edit layer ``l`` in ``[1, n_layers]``: ``check_layer(model, l, "edit")``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_edit_layer(tiny_model(n_layers=3), 3)
        3
    """
    return check_layer(model, layer, "edit")


class MLPEdit(nn.Module):
    """A zero-initialised low-rank (optionally bias) addition to the MLP output of a block.

    ``delta(x) = (x @ A) @ B + b`` with ``x`` the block's normalised MLP input. ``A`` is
    random (seeded), ``B`` and ``b`` are zero, so the edit starts as the identity on the
    model. ``rank=0, bias=True`` gives a bias-only edit (a constant steering vector).

    Args:
        d_model: residual width of the model.
        layer: edited residual layer ``l`` (the module acts in block ``l - 1``).
        rank: rank of the linear part (0 for none).
        bias: add a learned constant vector.
        seed: seed of ``A``'s initialisation.

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=3)
        >>> edit = MLPEdit.for_model(model, layer=2, rank=4)
        >>> with edit.attached(model):
        ...     logits = model(torch.tensor([[104, 105]]))
        >>> edit.read_hook, edit.write_hook
        ('blocks.1.ln2.hook_normalized', 'blocks.1.hook_mlp_out')
    """

    def __init__(self, d_model: int, layer: int, rank: int = 8, bias: bool = False, seed: int = 0) -> None:
        super().__init__()
        d_model, layer, rank = (as_int(v, n, low) for n, v, low in (("d_model", d_model, 1), ("layer", layer, 1),
                                                                    ("rank", rank, 0)))  # fmt: skip
        bias = as_bool(bias, "bias")
        seed = as_int(seed, "seed", 0, 2**63 - 1)
        if rank == 0 and not bias:
            raise InvalidArgumentError("an edit needs rank >= 1 or bias=True (rank=0, bias=True is bias-only)")
        self.d_model, self.layer, self.rank, self.use_bias, self.seed = d_model, layer, rank, bool(bias), seed
        gen = torch.Generator().manual_seed(seed)
        # LoRA-style: a random down-projection and a zero up-projection, so delta starts at 0
        # while B still receives a gradient on the first step.
        self.A = nn.Parameter(torch.randn(d_model, rank, generator=gen) / d_model**0.5)
        self.B = nn.Parameter(torch.zeros(rank, d_model))
        self.b = nn.Parameter(torch.zeros(d_model)) if bias else None
        self.info: dict[str, Any] = {}
        self.trained_on: ModelFingerprint | None = None
        self._attached: tuple[HookedTransformer, list[tuple[HookPoint, Any]]] | None = None

    @classmethod
    def for_model(
        cls, model: HookedTransformer, layer: int, rank: int = 8, bias: bool = False, seed: int = 0
    ) -> MLPEdit:
        """A fresh edit sized for ``model`` at edit layer ``layer`` (validated)."""
        layer = check_edit_layer(model, layer)
        edit = cls(model.cfg.d_model, layer, rank=rank, bias=bias, seed=seed)
        edit.check_model(model)
        return edit.to(model.cfg.device)

    @property
    def block(self) -> int:
        return self.layer - 1

    @property
    def hooks(self) -> EditHooks:
        """The edit's hook names: what it reads, where it writes, the residual it changes."""
        return edit_hook_names(self.layer)

    @property
    def read_hook(self) -> str:
        return self.hooks.read

    @property
    def write_hook(self) -> str:
        return self.hooks.write

    @property
    def is_attached(self) -> bool:
        return self._attached is not None

    def delta(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        """The addition to the MLP output for normalised MLP inputs ``x``."""
        x = x.to(self.B.dtype)
        out = (x @ self.A) @ self.B if self.rank else torch.zeros_like(x)
        return out + self.b if self.b is not None else out

    def forward(self, x: Float[Tensor, "... d_model"]) -> Float[Tensor, "... d_model"]:
        return self.delta(x)

    def check_model(self, model: HookedTransformer) -> None:
        """Raise :class:`EditMismatchError` if the edit cannot act on ``model``."""
        check_model(model)
        if model.cfg.d_model != self.d_model or not 1 <= self.layer <= model.cfg.n_layers:
            raise EditMismatchError(
                f"edit (layer {self.layer}, d_model {self.d_model}) does not fit a model with "
                f"n_layers={model.cfg.n_layers}, d_model={model.cfg.d_model}"
            )
        missing = [n for n in (self.read_hook, self.write_hook) if n not in model.hook_dict]
        if missing:
            raise EditMismatchError(f"model has no hook point {missing[0]} (needs a normalised MLP input)")

    # -- attaching ---------------------------------------------------------------------

    def fwd_hooks(self) -> list[tuple[str, Any]]:
        """``(hook_name, fn)`` pairs for ``model.run_with_hooks`` / ``model.hooks``.

        The pair shares a private slot: the read hook stores the MLP input, the write hook
        consumes it, so both must be used together.

        Example:
            >>> from selfie_tl.testing import tiny_model
            >>> model = tiny_model(n_layers=3)
            >>> edit = MLPEdit.for_model(model, layer=1)
            >>> _ = model.run_with_hooks("hi", fwd_hooks=edit.fwd_hooks())
        """
        slot: dict[str, Tensor] = {}

        def read(x: Tensor, hook: HookPoint) -> None:
            slot["x"] = x

        def write(out: Tensor, hook: HookPoint) -> Tensor:
            x = slot.pop("x", None)
            if x is None or x.shape[:-1] != out.shape[:-1]:
                raise EditMismatchError(f"{hook.name} fired without a matching {self.read_hook} input")
            return out + self.delta(x).to(out.dtype)

        return [(self.read_hook, read), (self.write_hook, write)]

    def content_key(self) -> str:
        """SHA-256 over the edit's settings and tensors: equal for the same edit loaded twice."""
        settings = json.dumps({"layer": self.layer, "rank": self.rank, "bias": self.use_bias}, sort_keys=True)
        return tensors_hash(self.state_dict(), settings)

    def attach(self, model: HookedTransformer) -> MLPEdit:
        """Attach permanently (survives ``reset_hooks()`` and ``run_with_hooks``) until
        :meth:`detach`. Every forward, capture, interpretation and generation sees it.

        An edit whose layer and tensors equal those of an edit already attached to ``model``
        (the same file loaded twice, say) is refused: it would apply twice. Attaching waits
        for any selfie_tl call running on the model in another thread
        (:func:`selfie_tl.hooks.model_lock`).

        Raises:
            InvalidArgumentError: this edit, or an identical one, is already attached.
            EditMismatchError: the edit does not fit ``model``.
        """
        if self._attached is not None:
            raise InvalidArgumentError("edit is already attached; detach() it first")
        self.check_model(model)
        with model_lock(model):
            key = self.content_key()
            attached = _ATTACHED.setdefault(model, weakref.WeakSet())
            for other in list(attached):
                if other._attached is None or other._attached[0] is not model or not _live(other._attached[1]):
                    attached.discard(other)  # detached, or its hooks were reset
                elif other.content_key() == key:
                    raise InvalidArgumentError(
                        f"an identical edit (layer {self.layer}, same weights, sha256 {key[:12]}...) is already "
                        "attached to this model; attaching it again would apply it twice. detach() the other "
                        "one first"
                    )
            handles: list[tuple[HookPoint, Any]] = []
            try:
                for name, fn in self.fwd_hooks():
                    point = model.hook_dict[name]
                    point.add_hook(fn, dir="fwd", is_permanent=True)
                    handles.append((point, point.fwd_hooks[-1]))
            except BaseException:
                _remove(handles)
                raise
            self._attached = (model, handles)
            attached.add(self)
        return self

    def detach(self) -> None:
        """Remove the edit's hooks (a no-op when not attached)."""
        if self._attached is not None:
            model, handles = self._attached
            with model_lock(model):
                _remove(handles)
                self._attached = None
                _ATTACHED.get(model, weakref.WeakSet()).discard(self)

    @contextlib.contextmanager
    def attached(self, model: HookedTransformer) -> Iterator[MLPEdit]:
        """Context manager: attached inside the block, detached after (also on error).

        Example:
            >>> from selfie_tl.testing import tiny_model
            >>> model = tiny_model()
            >>> edit = MLPEdit.for_model(model, layer=1)
            >>> with edit.attached(model):
            ...     _ = model("hi")
            >>> edit.is_attached
            False
        """
        self.attach(model)
        try:
            yield self
        finally:
            self.detach()

    # -- files -------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The JSON document stored with the tensors."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": type(self).__name__,
            "layer": self.layer, "block": self.block, "read_hook": self.read_hook, "write_hook": self.write_hook,
            "d_model": self.d_model, "rank": self.rank, "bias": self.use_bias, "seed": self.seed,
            "info": self.info, "model": self.trained_on.to_dict() if self.trained_on else None,
        }  # fmt: skip

    def save(self, path: str | os.PathLike, model: HookedTransformer | None = None) -> Path:
        """Write the edit atomically (temp file + rename) as safetensors with JSON metadata.

        Args:
            path: destination file (conventionally ``*.safetensors``).
            model: record this model's fingerprint (default: the one it was trained on).

        Example:
            >>> import tempfile, os
            >>> from selfie_tl.testing import tiny_model
            >>> model = tiny_model()
            >>> edit = MLPEdit.for_model(model, layer=2)
            >>> path = edit.save(os.path.join(tempfile.mkdtemp(), "e.safetensors"), model)
            >>> load_edit(path, model).layer
            2
        """
        _check_path(path)
        if model is not None:
            self.check_model(model)
            self.trained_on = fingerprint(model)
        return save_artifact(path, self.state_dict(), self.metadata())


def _check_path(path: Any) -> None:
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(f"path must be a str or os.PathLike file path, got {type(path).__name__} {path!r:.60}")


def _live(handles: list[tuple[HookPoint, Any]]) -> bool:
    """Whether the attached hooks are still on their hook points (not reset away)."""
    return all(any(h is handle for h in point.fwd_hooks) for point, handle in handles)


def _remove(handles: list[tuple[HookPoint, Any]]) -> None:
    for point, handle in handles:
        handle.hook.remove()
        point.fwd_hooks = [h for h in point.fwd_hooks if h is not handle]


def read_edit_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON metadata of a saved edit, without loading tensors.

    Raises:
        FileNotFoundError: no such file.
        EditMismatchError: the file is not a readable selfie_tl edit.
    """
    _check_path(path)
    return read_artifact_metadata(path, FORMAT, _READABLE, EditMismatchError)


def load_edit(path: str | os.PathLike, model: HookedTransformer, *, check_fingerprint: bool = True) -> MLPEdit:
    """Load a saved edit for ``model`` (not attached).

    Args:
        path: file written by :meth:`MLPEdit.save`.
        model: the model it will be attached to.
        check_fingerprint: compare name, n_layers, d_model and the embedding hash with the
            model the edit was trained on.

    Raises:
        FileNotFoundError: no such file.
        EditMismatchError: corrupt file, tensors that do not match their recorded hash or
            shape, or a different model.

    Example:
        >>> edit = load_edit("capital.safetensors", model)  # doctest: +SKIP
        >>> with edit.attached(model):  # doctest: +SKIP
        ...     selfie_tl.complete(model, ["The capital of France is"])
    """
    _check_path(path)
    check_model(model)
    meta, tensors = load_artifact(
        path, model, FORMAT, _READABLE, EditMismatchError, check_fingerprint=check_fingerprint
    )
    try:
        edit = MLPEdit(int(meta["d_model"]), int(meta["layer"]), rank=int(meta["rank"]),
                       bias=bool(meta["bias"]), seed=int(meta.get("seed", 0)))  # fmt: skip
    except (KeyError, TypeError, ValueError, InvalidArgumentError) as exc:
        raise EditMismatchError(f"{path} has inconsistent edit metadata: {exc}") from exc
    try:
        edit.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        raise EditMismatchError(f"{path}: tensors do not fit the recorded shape: {exc}") from exc
    edit.info = dict(meta.get("info") or {})
    edit.trained_on = ModelFingerprint.from_dict(meta["model"]) if meta.get("model") else None
    edit.check_model(model)
    return edit.to(model.cfg.device)
