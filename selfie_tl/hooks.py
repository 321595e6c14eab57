"""Where SelfIE reads and writes the residual stream: layer names, capture and injection.

Layer indexing follows Hugging Face's ``hidden_states`` (without the final norm): layer
``L < n_layers`` is the residual entering block ``L`` (``blocks.L.hook_resid_pre``) and
``L == n_layers`` is the output of the last block (``blocks.{n-1}.hook_resid_post``).
"""

from __future__ import annotations

import difflib
import functools
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeVar

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens import ActivationCache, HookedTransformer
from transformer_lens.hook_points import HookPoint

from selfie_tl.errors import (
    HookError,
    InvalidArgumentError,
    LayerOutOfRangeError,
    PositionOutOfRangeError,
    PromptError,
    VectorError,
)
from selfie_tl.prompts import tokenize
from selfie_tl.validation import as_float, as_int, check_context, check_model, check_token_ids, is_int

InjectionMode = Literal["replace", "add"]
HookFn = Callable[[Tensor, HookPoint], Tensor | None]


LayerKind = Literal["residual", "injection", "edit"]

_LAYER_RANGES = {
    # kind: (lowest, offset of the highest from n_layers, what the index means)
    "residual": (0, 0, "layer"),
    "injection": (0, -1, "injection layer k"),
    "edit": (1, 0, "edit layer"),
}


_is_int = is_int  # older name

F = TypeVar("F", bound=Callable[..., Any])

# --------------------------------------------------------------------------- one run at a time

_MODEL_LOCKS: weakref.WeakKeyDictionary[HookedTransformer, threading.RLock] = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(model: HookedTransformer) -> threading.RLock:
    """The re-entrant lock that serialises selfie_tl's work on ``model``.

    Hooks are global on a model: while one call has its injection hooks (or a control edit,
    or the fast decode attention) installed, every forward pass on that model sees them. So
    every selfie_tl function that installs hooks or runs the model holds this lock for its
    whole run; concurrent calls from several threads on one model run one after the other and
    each gets its own, correct result. Calls on different models run in parallel.

    Hold it yourself around your own work on a model that other threads use with selfie_tl,
    e.g. ``with model_lock(model), model.hooks(fwd_hooks=...): model(tokens)``. It is
    re-entrant, so selfie_tl calls inside the block do not deadlock.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> model_lock(model) is model_lock(model)
        True
    """
    with _LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


def serialized(fn: F) -> F:
    """Decorator: hold :func:`model_lock` of the first argument (the model) during the call."""

    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(model, HookedTransformer):
            return fn(model, *args, **kwargs)  # the function's own checks reject it
        with model_lock(model):
            return fn(model, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------- user hooks


def _hook_label(fn: Any) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    return str(name)


def _checked_hook(fn: Callable, label: str) -> Callable:
    """``fn`` wrapped so that a wrong return value raises a :class:`HookError` naming it."""

    def hook(tensor: Any, hook: HookPoint) -> Any:
        out = fn(tensor, hook=hook)
        if out is None or not isinstance(tensor, Tensor):
            return out
        if not isinstance(out, Tensor):
            raise HookError(
                f"hook {label} on {hook.name} returned a {type(out).__name__}; a hook must return None or a "
                f"tensor of its input's shape {tuple(tensor.shape)}"
            )
        if out.shape != tensor.shape:
            raise HookError(
                f"hook {label} on {hook.name} returned shape {tuple(out.shape)}, but its input has shape "
                f"{tuple(tensor.shape)}; a hook must return None or a tensor of the input's shape"
            )
        return out

    hook._selfie_checked = True  # type: ignore[attr-defined]
    hook.__name__ = f"checked_{label}"
    return hook


def check_fwd_hooks(model: HookedTransformer, hooks: Any, name: str = "fwd_hooks") -> list[tuple[Any, Callable]]:
    """Validate ``(hook_name, fn)`` pairs before anything runs; wrap each ``fn`` so that a
    return value of the wrong type or shape raises a :class:`HookError` naming the hook.

    A name is a hook point of the model (``model.hook_dict``) or, as in TransformerLens, a
    filter function of the name. Errors raised by the hook functions themselves pass through
    unchanged.

    Raises:
        HookError: not a list of pairs, an unknown hook name (with the closest real ones), or
            a function that is not callable.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_fwd_hooks(tiny_model(), [("blocks.0.hook_resid_prex", print)])
        Traceback (most recent call last):
        ...
        selfie_tl.errors.HookError: fwd_hooks[0] names 'blocks.0.hook_resid_prex', which is not a hook point of this model; did you mean 'blocks.0.hook_resid_pre'? (all names: model.hook_dict)
    """
    if hooks is None:
        return []
    if isinstance(hooks, str | bytes | Mapping) or not isinstance(hooks, Iterable):
        raise HookError(f"{name} must be a list of (hook_name, function) pairs, got {hooks!r:.80}")
    out = []
    for i, item in enumerate(hooks):
        if isinstance(item, str | bytes) or not isinstance(item, Sequence) or len(item) != 2:
            raise HookError(f"{name}[{i}] must be a (hook_name, function) pair, got {item!r:.80}")
        hook_name_, fn = item
        if isinstance(hook_name_, str):
            if hook_name_ not in model.hook_dict:
                close = difflib.get_close_matches(hook_name_, list(model.hook_dict), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise HookError(
                    f"{name}[{i}] names {hook_name_!r}, which is not a hook point of this model{hint} "
                    "(all names: model.hook_dict)"
                )
        elif not callable(hook_name_):
            raise HookError(
                f"{name}[{i}]: the hook name must be a string from model.hook_dict or a filter function, "
                f"got {hook_name_!r:.80}"
            )
        if not callable(fn):
            raise HookError(f"{name}[{i}] ({hook_name_!r}): the hook function must be callable, got {fn!r:.80}")
        if not getattr(fn, "_selfie_checked", False):
            fn = _checked_hook(fn, _hook_label(fn))
        out.append((hook_name_, fn))
    return out


def check_layer(
    model: HookedTransformer, layer: Any, kind: LayerKind = "residual", *, injection: bool = False
) -> int:
    """Validate a layer index of one of selfie_tl's three conventions and return it as an int.

    The one owner of layer conventions:

    * ``"residual"``: a residual-stream layer ``L`` in ``[0, n_layers]``; ``L < n_layers`` is
      the input of block ``L``, ``n_layers`` the output of the last block (capture, logit lens).
    * ``"injection"``: an injection layer ``k`` in ``[0, n_layers - 1]``: the residual
      entering block ``k`` is overwritten.
    * ``"edit"``: an edit layer ``l`` in ``[1, n_layers]``: a control edit trains the MLP of
      block ``l - 1`` and so changes residual layer ``l``.

    Args:
        model: the model.
        layer: the index (ints, numpy ints and 0-d integer tensors are accepted).
        kind: which convention.
        injection: older spelling of ``kind="injection"``.

    Raises:
        LayerOutOfRangeError: not an integer, or out of range (the message gives the range).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=3)
        >>> check_layer(model, 3), check_layer(model, 2, "injection"), check_layer(model, 3, "edit")
        (3, 2, 3)
    """
    kind = "injection" if injection else kind
    if kind not in _LAYER_RANGES:
        raise InvalidArgumentError(f"layer kind must be one of {list(_LAYER_RANGES)}, got {kind!r}")
    n = model.cfg.n_layers
    low, offset, what = _LAYER_RANGES[kind]
    high = n + offset
    if not _is_int(layer):
        raise LayerOutOfRangeError(f"{what} must be an int in [{low}, {high}], got {layer!r}")
    layer = int(layer)
    if not low <= layer <= high:
        why = {
            "residual": f" ({n} = output of the last block)",
            "injection": "",
            "edit": f": editing layer l trains the MLP of block l-1, so l is in [1, {n}]",
        }[kind]
        raise LayerOutOfRangeError(
            f"{what} {layer} is out of range: this model has {n} layers, so {what} must be in "
            f"[{low}, {high}]{why}"
        )
    return layer


def hook_name(model: HookedTransformer, layer: int) -> str:
    """TransformerLens hook name of residual-stream layer ``layer``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=3)
        >>> hook_name(model, 0), hook_name(model, 3)
        ('blocks.0.hook_resid_pre', 'blocks.2.hook_resid_post')
    """
    layer = check_layer(model, layer)
    if layer < model.cfg.n_layers:
        return f"blocks.{layer}.hook_resid_pre"
    return f"blocks.{layer - 1}.hook_resid_post"


def injection_hook_name(model: HookedTransformer, k: int) -> str:
    """Hook name where SelfIE injects at layer ``k``: the residual entering block ``k``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> injection_hook_name(tiny_model(n_layers=3), 1)
        'blocks.1.hook_resid_pre'
    """
    return f"blocks.{check_layer(model, k, 'injection')}.hook_resid_pre"


class EditHooks(NamedTuple):
    """Hook names of a control edit at edit layer ``l`` (all in block ``l - 1``)."""

    read: str
    """The MLP's normalised input, which the edit reads."""
    write: str
    """The MLP's output, to which the edit adds."""
    residual: str
    """The residual stream the edit changes (residual layer ``l``)."""


def edit_hook_names(layer: int) -> EditHooks:
    """Hook names of an edit at edit layer ``layer`` (validate it with ``check_layer(..., "edit")``).

    Example:
        >>> edit_hook_names(2)
        EditHooks(read='blocks.1.ln2.hook_normalized', write='blocks.1.hook_mlp_out', residual='blocks.1.hook_resid_post')
    """
    block = int(layer) - 1
    return EditHooks(
        f"blocks.{block}.ln2.hook_normalized", f"blocks.{block}.hook_mlp_out", f"blocks.{block}.hook_resid_post"
    )


def check_positions(positions: int | Iterable[int], seq_len: int) -> list[int]:
    """Resolve token positions (negative counts from the end) against a sequence length.

    Raises:
        PositionOutOfRangeError: a position is not in ``[-seq_len, seq_len - 1]``.

    Example:
        >>> check_positions([0, -1], 5)
        [0, 4]
    """
    if is_int(positions):
        items = [positions]
    elif positions is None or isinstance(positions, str | bytes) or not isinstance(positions, Iterable):
        raise PositionOutOfRangeError(f"token positions must be an int or a list of ints, got {positions!r:.80}")
    else:
        items = list(positions)
    if not items:
        raise PositionOutOfRangeError("no token positions given; pass at least one")
    out = []
    for pos in items:
        if not is_int(pos):
            raise PositionOutOfRangeError(f"token position must be an int, got {pos!r}")
        if not -seq_len <= pos < seq_len:
            raise PositionOutOfRangeError(
                f"token position {pos} is out of range for a prompt of {seq_len} tokens; "
                f"allowed: {-seq_len} to {seq_len - 1}"
            )
        out.append(int(pos) % seq_len)
    return out


def prompt_tokens(model: HookedTransformer, prompt: str | Tensor, what: str = "prompt") -> Int[Tensor, " pos"]:
    """Token ids of a prompt (tokenizer defaults; see :func:`selfie_tl.prompts.tokenize`).

    Token ids (a 1-D or ``[1, pos]`` tensor, a numpy array or a list of ints) are checked
    and passed through. Every prompt selfie_tl runs comes through here.

    Raises:
        PromptError: empty text, or ids that are not integer ids of the model.
        ContextLengthError: longer than the model's context ``model.cfg.n_ctx``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> prompt_tokens(tiny_model(), [104, 105]).tolist()
        [104, 105]
    """
    if isinstance(prompt, str):
        if model.tokenizer is None:
            raise InvalidArgumentError("the model has no tokenizer; pass token ids instead of text")
        ids = tokenize(model.tokenizer, prompt)
    elif isinstance(prompt, Tensor) or hasattr(prompt, "__array__") or (
        isinstance(prompt, list | tuple) and prompt and all(is_int(t) for t in prompt)
    ):
        ids = check_token_ids(model, prompt, f"{what} token ids", ndim=1)
    else:
        raise PromptError(f"{what} must be a non-empty string or 1-D int token ids, got {prompt!r:.80}")
    check_context(model, len(ids), 0, what)
    return ids


@serialized
@torch.no_grad()
def capture(
    model: HookedTransformer,
    prompt: str | Int[Tensor, " pos"],
    layers: int | Sequence[int],
    positions: int | Sequence[int],
) -> Float[Tensor, "layer pos d_model"]:
    """Residual-stream vectors of ``prompt`` at every (layer, position) combination.

    Runs one forward pass with ``run_with_cache`` restricted to the needed hooks and
    stopping after the deepest requested layer. Hooks already on the model (for example a
    control edit) take effect.

    Args:
        model: the model.
        prompt: text (tokenized with the tokenizer's defaults: no BOS unless the tokenizer
            adds one) or 1-D token ids.
        layers: layer(s) in ``[0, n_layers]`` (see :func:`hook_name`).
        positions: token position(s); negative positions count from the end.

    Returns:
        Tensor ``[len(layers), len(positions), d_model]``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=3, d_model=64)
        >>> capture(model, "hello", layers=[0, 3], positions=[-1]).shape
        torch.Size([2, 1, 64])
    """
    check_model(model)
    ids = prompt_tokens(model, prompt)
    layer_list = _check_layers(model, layers)
    pos_list = check_positions(positions, len(ids))
    return vectors_from_cache(_residual_cache(model, ids[None], layer_list), model, layer_list, pos_list)


def _check_layers(model: HookedTransformer, layers: Any) -> list[int]:
    if not is_int(layers) and (layers is None or isinstance(layers, str | bytes) or not isinstance(layers, Iterable)):
        raise LayerOutOfRangeError(f"layers must be an int or a list of ints, got {layers!r:.80}")
    layer_list = [check_layer(model, layer) for layer in ([layers] if is_int(layers) else layers)]
    if not layer_list:
        raise LayerOutOfRangeError("no layers given; pass at least one")
    return layer_list


def _residual_cache(model: HookedTransformer, ids: Int[Tensor, "batch pos"], layers: list[int]) -> ActivationCache:
    """One forward with ``run_with_cache``, keeping only the residual hooks of ``layers`` and
    stopping after the deepest one."""
    wanted = {hook_name(model, layer) for layer in layers}
    stop = min(model.cfg.n_layers, max(layers) + 1)
    _, cache = model.run_with_cache(ids.to(model.cfg.device), names_filter=lambda n: n in wanted, stop_at_layer=stop)
    return cache


CAPTURE_BATCH = 64
"""Prompts per forward in :func:`capture_rows` (of one token length)."""


@serialized
@torch.no_grad()
def capture_rows(
    model: HookedTransformer,
    prompts: Sequence[str | Int[Tensor, " pos"]],
    layers: int | Sequence[int],
    positions: Sequence[int],
    *,
    batch_size: int = CAPTURE_BATCH,
    verbose: bool = False,
) -> Float[Tensor, "prompt layer d_model"]:
    """One residual vector per prompt: ``prompts[i]`` at ``positions[i]``, at every layer.

    The batched form of :func:`capture` for many prompts (a dataset's subject tokens, say).
    Prompts of the same token length run together, up to ``batch_size`` per forward, with no
    padding: a forward of one short prompt reads every weight for a handful of tokens, so
    this is several times faster (590 fact prompts on the default model: 10 s against 56 s).
    The batch's matrix products round differently from a lone prompt's (relative
    differences ~5e-6 there); ``batch_size=1`` is :func:`capture`, bit for bit.

    Args:
        model: the model (hooks on it take effect, as in :func:`capture`).
        prompts: texts or 1-D token ids.
        layers: layer(s) in ``[0, n_layers]``.
        positions: one token position per prompt (negative counts from the end).
        batch_size: prompts per forward.
        verbose: progress bar over forwards.

    Returns:
        Tensor ``[len(prompts), len(layers), d_model]``.

    Raises:
        InvalidArgumentError: ``positions`` does not give one position per prompt, or a bad
            ``batch_size``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=3, d_model=64)
        >>> capture_rows(model, ["hello", "hi", "howdy"], layers=[0, 3], positions=[-1, 0, 2]).shape
        torch.Size([3, 2, 64])
    """
    check_model(model)
    given = prompts
    iterable = isinstance(prompts, Iterable) and not isinstance(prompts, str | bytes | Tensor)
    prompts = list(prompts) if iterable else None
    if not prompts:
        raise InvalidArgumentError(f"prompts must be a non-empty list of texts or token ids, got {given!r:.80}")
    if isinstance(positions, Iterable) and not isinstance(positions, str | bytes):
        positions = list(positions)
    if not isinstance(positions, list) or len(positions) != len(prompts):
        raise InvalidArgumentError(
            f"positions must give one token position per prompt ({len(prompts)}), got {positions!r:.80}"
        )
    batch_size = as_int(batch_size, "batch_size", 1)
    layer_list = _check_layers(model, layers)
    ids = [prompt_tokens(model, p) for p in prompts]
    pos = [check_positions([p], len(i))[0] for p, i in zip(positions, ids)]
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(ids):
        by_length.setdefault(len(row), []).append(i)
    work = [rows[s : s + batch_size] for rows in by_length.values() for s in range(0, len(rows), batch_size)]
    out = torch.empty(len(ids), len(layer_list), model.cfg.d_model, dtype=model.cfg.dtype, device=model.cfg.device)
    for rows in tqdm(work, desc="capturing", unit="batch", disable=not verbose, leave=False):
        cache = _residual_cache(model, torch.stack([ids[i] for i in rows]), layer_list)
        index = torch.tensor([pos[i] for i in rows], device=model.cfg.device)
        for li, layer in enumerate(layer_list):
            acts = cache[hook_name(model, layer)]
            out[rows, li] = acts[torch.arange(len(rows), device=acts.device), index]
    return out


def vectors_from_cache(
    cache: ActivationCache | dict[str, Tensor],
    model: HookedTransformer,
    layers: Sequence[int],
    positions: Sequence[int],
    batch_index: int = 0,
) -> Float[Tensor, "layer pos d_model"]:
    """Pick residual vectors out of an ``ActivationCache`` from ``run_with_cache``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model(n_layers=2)
        >>> _, cache = model.run_with_cache("hey")
        >>> vectors_from_cache(cache, model, layers=[1, 2], positions=[0, -1]).shape
        torch.Size([2, 2, 64])
    """
    rows = []
    for layer in layers:
        name = hook_name(model, layer)
        if not isinstance(cache, ActivationCache | Mapping):
            raise InvalidArgumentError(f"cache must be an ActivationCache or a dict, got {type(cache).__name__}")
        if name not in cache:
            raise InvalidArgumentError(f"{name} is not in the cache; run run_with_cache without a filter for it")
        batch = cache[name].shape[0]
        if not is_int(batch_index) or not -batch <= int(batch_index) < batch:
            raise InvalidArgumentError(f"batch_index must be an int in [{-batch}, {batch - 1}], got {batch_index!r}")
        acts = cache[name][int(batch_index)]
        rows.append(acts[check_positions(positions, acts.shape[0])])
    return torch.stack(rows)


def check_vectors(model: HookedTransformer, vectors: Tensor) -> Float[Tensor, "batch d_model"]:
    """Validate vectors to interpret: shape ``[n, d_model]`` (or ``[d_model]``), finite.

    Returns them on the model's device and dtype.
    """
    if not isinstance(vectors, Tensor):
        try:
            vectors = torch.as_tensor(vectors)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise VectorError(f"vectors must be a tensor of shape [n, d_model], got {type(vectors).__name__}") from exc
    if vectors.ndim == 1:
        vectors = vectors[None]
    d_model = model.cfg.d_model
    if vectors.ndim != 2 or vectors.shape[-1] != d_model or vectors.shape[0] == 0:
        raise VectorError(
            f"vectors have shape {tuple(vectors.shape)}; expected [n, {d_model}] with n >= 1 "
            f"(d_model of this model is {d_model})"
        )
    if not vectors.is_floating_point():
        raise VectorError(f"vectors must be floating point, got dtype {vectors.dtype}")
    bad = ~torch.isfinite(vectors).all(dim=-1)
    if bad.any():
        rows = bad.nonzero().flatten().tolist()
        raise VectorError(f"vectors contain NaN or inf in rows {rows[:10]}; only finite values can be injected")
    return vectors.to(device=model.cfg.device, dtype=model.cfg.dtype)


def injection_hook(
    vectors: Float[Tensor, "batch d_model"] | Float[Tensor, "batch slot d_model"],
    positions: Sequence[int],
    *,
    mode: InjectionMode = "replace",
    strength: float = 1.0,
) -> HookFn:
    """A hook function that writes ``vectors`` into the residual at ``positions``.

    Row ``b`` of the batch receives ``vectors[b]`` at every placeholder position (or
    ``vectors[b, i]`` at the i-th position for 3-D input). It acts only on a forward whose
    sequence covers the positions, i.e. the prefill: single-token decode steps with a KV
    cache pass through untouched.

    Args:
        vectors: one vector per batch row (or per row and position).
        positions: token positions to overwrite.
        mode: ``"replace"``: ``h <- strength * v + (1 - strength) * h`` (``strength`` is
            the overlay strength in [0, 1]; 1 replaces, as in the paper); ``"add"``:
            ``h <- h + strength * v``.
        strength: overlay strength (replace) or scale (add).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> hook = injection_hook(torch.zeros(1, 64), [1, 2])
        >>> _ = model.run_with_hooks("abcd", fwd_hooks=[("blocks.1.hook_resid_pre", hook)])
    """
    if not isinstance(vectors, Tensor) or not vectors.is_floating_point() or vectors.ndim not in (1, 2, 3):
        raise InvalidArgumentError(
            f"vectors must be a floating-point tensor [batch, d_model] or [batch, slot, d_model], got {vectors!r:.80}"
        )
    if vectors.ndim == 1:
        vectors = vectors[None]
    if is_int(positions) or positions is None or isinstance(positions, str) or not isinstance(positions, Iterable):
        raise InvalidArgumentError(f"positions must be a non-empty list of token positions, got {positions!r:.80}")
    positions = list(positions)
    if not positions or any(not is_int(p) or int(p) < 0 for p in positions):
        raise InvalidArgumentError(
            f"positions must be a non-empty list of absolute token positions (ints >= 0), got {positions!r:.80}"
        )
    positions = [int(p) for p in positions]
    if vectors.ndim == 3 and vectors.shape[1] != len(positions):
        raise VectorError(f"3-D vectors have {vectors.shape[1]} slots for {len(positions)} positions")
    if mode not in ("replace", "add"):
        raise InvalidArgumentError(f"mode must be 'replace' or 'add', got {mode!r}")
    strength = as_float(strength, "strength")
    index = torch.as_tensor(positions, dtype=torch.long)
    last = max(positions)

    def hook(resid: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> Tensor:
        if resid.shape[1] <= last:
            return resid
        vec = vectors.to(resid.dtype)
        if vec.ndim == 2:
            vec = vec[:, None, :].expand(-1, len(positions), -1)
        if vec.shape[0] != resid.shape[0]:
            raise InvalidArgumentError(
                f"injection got {vec.shape[0]} vectors for a batch of {resid.shape[0]} sequences"
            )
        idx = index.to(resid.device)
        current = resid[:, idx]
        if mode == "replace":
            new = vec if strength == 1.0 else strength * vec + (1.0 - strength) * current
        else:
            new = current + strength * vec
        out = resid.clone()
        out[:, idx] = new
        return out

    return hook


def injection_hooks(
    model: HookedTransformer,
    vectors: Float[Tensor, "batch d_model"],
    positions: Sequence[int],
    k: int,
    *,
    mode: InjectionMode = "replace",
    strength: float = 1.0,
    n_layers: int = 1,
) -> list[tuple[str, HookFn]]:
    """``fwd_hooks`` for ``run_with_hooks`` / ``model.hooks()`` that inject at layer ``k``.

    With ``n_layers > 1`` the same vectors are written at layers ``k, k+1, ...,
    k+n_layers-1`` (each block then starts again from the injected state at the
    placeholders).

    Example:
        >>> import torch
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> hooks = injection_hooks(model, torch.zeros(1, 64), [1], k=1)
        >>> hooks[0][0]
        'blocks.1.hook_resid_pre'
    """
    k = check_layer(model, k, "injection")
    if isinstance(vectors, Tensor) and vectors.shape[-1:] != (model.cfg.d_model,):
        raise VectorError(
            f"vectors have shape {tuple(vectors.shape)}; the last dimension must be this model's d_model "
            f"({model.cfg.d_model})"
        )
    if not _is_int(n_layers) or int(n_layers) < 1 or k + int(n_layers) > model.cfg.n_layers:
        raise InvalidArgumentError(
            f"inject_layers must be an int >= 1 with k + inject_layers <= {model.cfg.n_layers}; "
            f"got inject_layers={n_layers!r} at k={k}"
        )
    hook = injection_hook(vectors, positions, mode=mode, strength=strength)
    return [(injection_hook_name(model, layer), hook) for layer in range(k, k + int(n_layers))]


def hook_count(model: HookedTransformer) -> int:
    """Number of forward/backward hooks currently registered on the model's hook points."""
    return sum(len(hp._forward_hooks) + len(hp._backward_hooks) for hp in model.hook_dict.values())
