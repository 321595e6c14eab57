"""What each component writes into the residual stream at one position.

The residual stream is a sum of writes: the embedding, then per block ``l`` the attention
output (the heads' writes plus ``b_O``) and the MLP output (the neurons' writes plus
``b_out``). :func:`component_writes` returns those writes as ``[n, d_model]`` vectors with
labels, read from an ``ActivationCache`` or from one ``run_with_cache`` of a prompt:

=========== ======================================== ================================ ===================
kind        write at destination position ``p``      hooks read                       label
=========== ======================================== ================================ ===================
``head``    ``z[p, h] @ W_O[h]``                     ``blocks.l.attn.hook_z``         ``"L9H6"``
``attn``    attention output (heads + ``b_O``)       ``blocks.l.hook_attn_out``       ``"L9 attn"``
``mlp``     MLP output (neurons + ``b_out``)         ``blocks.l.hook_mlp_out``        ``"L12 MLP"``
``neuron``  ``post[p, i] * W_out[i]``                ``blocks.l.mlp.hook_post``       ``"L12N1841"``
``embed``   token (+ learned position) embedding     ``hook_embed`` (+ ``hook_pos_embed``) ``"embed"``
``source``  ``pattern[h, p, s] * v[s, kv(h)] @ W_O[h]`` ``hook_pattern``, ``hook_v``    ``"L9H6 src3"``
=========== ======================================== ================================ ===================

Head writes come from ``hook_z`` and the weights, so ``use_attn_result`` is not needed.
``source`` splits one head's write into the direct contributions of each source position
(summed over the sources they give the head's write back exactly); with grouped-query
attention query head ``h`` reads key/value head ``h // (n_heads // n_key_value_heads)``,
TransformerLens' ``repeat_interleave`` order. Writes are computed in float32.

Layers here are **block indices** in ``[0, n_layers - 1]`` (TransformerLens' ``blocks.l``):
block ``l``'s writes enter residual layer ``l + 1`` of :func:`selfie_tl.hook_name`. The
embedding has no block; its rows carry layer ``-1``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import ActivationCache, HookedTransformer

from selfie_tl.errors import InvalidArgumentError, LayerOutOfRangeError
from selfie_tl.hooks import check_positions, prompt_tokens

KINDS = ("head", "attn", "mlp", "neuron", "embed", "source")
"""Component kinds, in the order their columns appear in pictures."""

_ALIASES = {"heads": "head", "neurons": "neuron", "sources": "source", "attn_out": "attn",
            "mlp_out": "mlp", "embedding": "embed"}  # fmt: skip


class Component(NamedTuple):
    """One writer into the residual stream.

    Attributes:
        kind: one of :data:`KINDS`.
        layer: block index (``-1`` for the embedding).
        index: head (``head``, ``source``) or neuron (``neuron``) index, else ``None``.
        source: source position of a ``source`` contribution, else ``None``.

    Example:
        >>> Component("head", 9, 6).label, Component("mlp", 12).label, Component("neuron", 12, 1841).label
        ('L9H6', 'L12 MLP', 'L12N1841')
        >>> parse_component("L9H6 src3")
        Component(kind='source', layer=9, index=6, source=3)
    """

    kind: str
    layer: int
    index: int | None = None
    source: int | None = None

    @property
    def label(self) -> str:
        """``"L9H6"``, ``"L9 attn"``, ``"L12 MLP"``, ``"L12N1841"``, ``"embed"``, ``"L9H6 src3"``."""
        if self.kind == "head":
            return f"L{self.layer}H{self.index}"
        if self.kind == "attn":
            return f"L{self.layer} attn"
        if self.kind == "mlp":
            return f"L{self.layer} MLP"
        if self.kind == "neuron":
            return f"L{self.layer}N{self.index}"
        if self.kind == "embed":
            return "embed"
        return f"L{self.layer}H{self.index} src{self.source}"

    @property
    def short(self) -> str:
        """The label without its layer (``"H6"``, ``"MLP"``, ``"N1841"``, ``"H6 src3"``): a grid column."""
        if self.kind == "embed":
            return "embed"
        return (
            self.label.split(" ", 1)[1]
            if self.kind in ("attn", "mlp")
            else self.label[len(f"L{self.layer}") :]
        )


_LABEL_RE = re.compile(
    r"^\s*(?:(?P<embed>embed)|L(?P<layer>\d+)\s*(?:H(?P<head>\d+)(?:\s*src\s*(?P<src>\d+))?|N(?P<neuron>\d+)"
    r"|\s(?P<block>attn|mlp)))\s*$",
    re.IGNORECASE,
)


def parse_component(label: str | Component | Sequence[Any]) -> Component:
    """A :class:`Component` from its label (``"L9H6"``, ``"L12 MLP"``, ``"L12N1841"``, ...).

    A :class:`Component` or a ``(kind, layer, index)`` tuple is passed through (checked).

    Example:
        >>> parse_component("L12 MLP"), parse_component(("head", 3, 1)).label
        (Component(kind='mlp', layer=12, index=None, source=None), 'L3H1')
    """
    if isinstance(label, str):
        match = _LABEL_RE.match(label)
        if not match:
            raise InvalidArgumentError(
                f"cannot read component label {label!r}; expected e.g. 'L9H6', 'L9 attn', 'L12 MLP', "
                "'L12N1841', 'embed' or 'L9H6 src3'"
            )
        g = match.groupdict()
        if g["embed"]:
            return Component("embed", -1)
        layer = int(g["layer"])
        if g["neuron"] is not None:
            return Component("neuron", layer, int(g["neuron"]))
        if g["block"] is not None:
            return Component(g["block"].lower(), layer)
        if g["src"] is not None:
            return Component("source", layer, int(g["head"]), int(g["src"]))
        return Component("head", layer, int(g["head"]))
    try:
        kind, layer, *rest = label
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"a component is a label or (kind, layer[, index]), got {label!r}"
        ) from exc
    kind = check_kind(kind)
    return Component(kind, int(layer), *[None if r is None else int(r) for r in rest])


def check_components(model: HookedTransformer, components: Any) -> list[Component]:
    """Components (labels, :class:`Component` objects or tuples) checked against the model.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> [c.label for c in check_components(tiny_model(), ["L2H3", ("mlp", 0)])]
        ['L2H3', 'L0 MLP']
    """
    items = [components] if isinstance(components, str | Component) else list(components)
    if not items:
        raise InvalidArgumentError("no components given; pass labels such as 'L9H6' or 'L12 MLP'")
    out = []
    for item in items:
        c = parse_component(item)
        if c.kind != "embed":
            check_block(model, c.layer)
        if c.kind in ("head", "source") and not 0 <= (c.index or 0) < model.cfg.n_heads:
            raise InvalidArgumentError(f"{c.label}: this model has {model.cfg.n_heads} heads per layer")
        if c.kind == "neuron":
            if model.cfg.d_mlp is None or model.cfg.attn_only:
                raise InvalidArgumentError("this model has no MLP neurons")
            if not 0 <= (c.index or 0) < model.cfg.d_mlp:
                raise InvalidArgumentError(f"{c.label}: this model has {model.cfg.d_mlp} neurons per layer")
        if c.kind in ("head", "neuron", "source") and c.index is None:
            raise InvalidArgumentError(f"a {c.kind} component needs an index, got {item!r}")
        if c.kind == "source" and c.source is None:
            raise InvalidArgumentError(f"a source component needs a source position, got {item!r}")
        out.append(c)
    return out


def check_kind(kind: Any) -> str:
    """A kind of :data:`KINDS` (plural spellings such as ``"heads"`` accepted).

    Example:
        >>> check_kind("heads"), check_kind("MLP")
        ('head', 'mlp')
    """
    if not isinstance(kind, str):
        raise InvalidArgumentError(f"component kind must be a string, one of {list(KINDS)}, got {kind!r}")
    name = _ALIASES.get(kind.lower(), kind.lower())
    if name not in KINDS:
        raise InvalidArgumentError(f"unknown component kind {kind!r}; choose from {list(KINDS)}")
    return name


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, Tensor):
        return value.numel() == 1 and not value.is_floating_point() and value.dtype != torch.bool
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def check_block(model: HookedTransformer, layer: Any) -> int:
    """A block index in ``[0, n_layers - 1]`` as an int.

    Raises:
        LayerOutOfRangeError: not an int, or out of range.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> check_block(tiny_model(n_layers=3), 2)
        2
    """
    n = model.cfg.n_layers
    if not _is_int(layer):
        raise LayerOutOfRangeError(f"block index must be an int in [0, {n - 1}], got {layer!r}")
    if not 0 <= int(layer) < n:
        raise LayerOutOfRangeError(
            f"block index {int(layer)} is out of range: this model has {n} blocks, so it must be in "
            f"[0, {n - 1}] (component layers are TransformerLens block indices, blocks.l)"
        )
    return int(layer)


def _index_list(values: Any, size: int, what: str) -> list[int]:
    items = [values] if _is_int(values) else list(values)
    if not items:
        raise InvalidArgumentError(f"no {what} indices given; pass at least one")
    out = []
    for v in items:
        if not _is_int(v) or not -size <= int(v) < size:
            raise InvalidArgumentError(f"{what} index {v!r} is out of range; this model has {size} {what}s")
        out.append(int(v) % size)
    return out


def list_components(
    model: HookedTransformer,
    layers: int | Iterable[int] | None,
    kind: str | Sequence[str] = "head",
    *,
    heads: int | Sequence[int] | None = None,
    neurons: int | Sequence[int] | None = None,
    sources: int | Sequence[int] | None = None,
) -> list[Component]:
    """Every component of ``kind`` (one or several kinds) in ``layers``, layer-major.

    Args:
        model: the model.
        layers: block index or indices (ignored by ``embed``, which is listed once).
        kind: a kind of :data:`KINDS` or a list of them, e.g. ``("head", "mlp")``.
        heads: head indices for ``head`` and ``source`` (default: all heads).
        neurons: neuron indices for ``neuron`` (required).
        sources: source positions for ``source`` (required here; :func:`component_writes`
            defaults them to every position up to the destination).

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> [c.label for c in list_components(tiny_model(), [0, 1], ["head", "mlp"], heads=[2])]
        ['L0H2', 'L0 MLP', 'L1H2', 'L1 MLP']
    """
    kinds = [check_kind(kind)] if isinstance(kind, str) else [check_kind(k) for k in kind]
    if not kinds:
        raise InvalidArgumentError(f"no component kind given; choose from {list(KINDS)}")
    kinds = sorted(dict.fromkeys(kinds), key=KINDS.index)
    out: list[Component] = [Component("embed", -1)] if "embed" in kinds else []
    block_kinds = [k for k in kinds if k != "embed"]
    if not block_kinds:
        return out
    if layers is None:
        raise InvalidArgumentError(f"layers are needed for kind(s) {block_kinds}")
    if _is_int(layers) or not isinstance(layers, Iterable) or isinstance(layers, str):
        layers = [layers]
    layer_list = [check_block(model, l) for l in layers]
    if not layer_list:
        raise LayerOutOfRangeError("no layers given; pass at least one block index")
    head_list = (
        list(range(model.cfg.n_heads)) if heads is None else _index_list(heads, model.cfg.n_heads, "head")
    )
    if "neuron" in block_kinds:
        if neurons is None:
            raise InvalidArgumentError("kind 'neuron' needs neurons=[...] (indices into d_mlp)")
        if model.cfg.d_mlp is None or model.cfg.attn_only:
            raise InvalidArgumentError("this model has no MLP neurons")
        neuron_list = _index_list(neurons, int(model.cfg.d_mlp), "neuron")
    if "source" in block_kinds:
        if sources is None:
            raise InvalidArgumentError("kind 'source' needs sources=[...] (source positions)")
        source_list = [int(s) for s in ([sources] if _is_int(sources) else sources)]
    for layer in layer_list:
        for k in block_kinds:
            if k == "head":
                out += [Component("head", layer, h) for h in head_list]
            elif k in ("attn", "mlp"):
                out.append(Component(k, layer))
            elif k == "neuron":
                out += [Component("neuron", layer, i) for i in neuron_list]
            else:
                out += [Component("source", layer, h, s) for h in head_list for s in source_list]
    return out


@dataclass
class ComponentWrites:
    """Writes of components at one destination position.

    Unpacks as ``vectors, labels = component_writes(...)``.

    Attributes:
        vectors: ``[n, d_model]`` float32 writes, one row per component.
        labels: one label per row (``"L9H6"``, ``"L12 MLP"``, ...).
        components: the :class:`Component` of each row.
        position: the destination position (non-negative).
        unit: neuron rows are unit output directions rather than writes.
    """

    vectors: Float[Tensor, "n d_model"]
    labels: list[str]
    components: list[Component] = field(repr=False)
    position: int = 0
    unit: bool = False

    def __iter__(self) -> Iterator[Any]:
        return iter((self.vectors, self.labels))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def norms(self) -> Float[Tensor, " n"]:
        """L2 norm of each write."""
        return self.vectors.norm(dim=-1)


def hooks_needed(model: HookedTransformer, components: Sequence[Component], unit: bool = False) -> list[str]:
    """TransformerLens hook names that :func:`component_writes` reads for ``components``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> hooks_needed(tiny_model("gpt2"), [Component("head", 1, 0), Component("embed", -1)])
        ['blocks.1.attn.hook_z', 'hook_embed', 'hook_pos_embed']
    """
    names: list[str] = []
    for c in components:
        if c.kind == "embed":
            names.append("hook_embed")
            if _adds_pos_embed(model):
                names.append("hook_pos_embed")
        elif c.kind == "head":
            names.append(f"blocks.{c.layer}.attn.hook_z")
        elif c.kind == "attn":
            names.append(f"blocks.{c.layer}.hook_attn_out")
        elif c.kind == "mlp":
            names.append(f"blocks.{c.layer}.hook_mlp_out")
        elif c.kind == "neuron":
            if not unit:
                names.append(f"blocks.{c.layer}.mlp.hook_post")
        else:
            names += [f"blocks.{c.layer}.attn.hook_pattern", f"blocks.{c.layer}.attn.hook_v"]
    return list(dict.fromkeys(names))


def _adds_pos_embed(model: HookedTransformer) -> bool:
    # Only "standard" positional embeddings are added to the residual stream; "shortformer"
    # adds them to the attention input only, rotary/alibi have none.
    return model.cfg.positional_embedding_type == "standard"


def _w_out(model: HookedTransformer, layer: int) -> Tensor:
    mlp = model.blocks[layer].mlp
    w = getattr(mlp, "W_out", None)
    if not isinstance(w, Tensor) or w.ndim != 2 or w.shape != (model.cfg.d_mlp, model.cfg.d_model):
        raise InvalidArgumentError(
            f"block {layer}'s MLP ({type(mlp).__name__}) has no [d_mlp, d_model] W_out; neuron writes need "
            "a dense MLP (not mixture-of-experts or quantized weights)"
        )
    return w


def _run(model: HookedTransformer, prompt: str | Tensor, names: Sequence[str], stop: int) -> ActivationCache:
    ids = prompt_tokens(model, prompt)
    wanted = set(names)
    with torch.no_grad():
        _, cache = model.run_with_cache(
            ids[None].to(model.cfg.device), names_filter=lambda n: n in wanted, stop_at_layer=stop
        )
    return cache


def _get(cache: ActivationCache | dict[str, Tensor], name: str, batch_index: int) -> Tensor:
    if name not in cache:
        raise InvalidArgumentError(
            f"{name} is not in the cache; run run_with_cache without a names_filter, or with one that keeps it"
        )
    acts = cache[name]
    if not -acts.shape[0] <= batch_index < acts.shape[0]:
        raise InvalidArgumentError(
            f"batch_index {batch_index} is out of range for a cache of batch {acts.shape[0]}"
        )
    return acts[batch_index]


@torch.no_grad()
def component_writes(
    model: HookedTransformer,
    cache_or_prompt: ActivationCache | dict[str, Tensor] | str | Tensor,
    layer: int | Iterable[int] | None,
    kind: str | Sequence[str] = "head",
    position: int = -1,
    *,
    heads: int | Sequence[int] | None = None,
    neurons: int | Sequence[int] | None = None,
    sources: int | Sequence[int] | None = None,
    unit: bool = False,
    batch_index: int = 0,
    components: Sequence[str | Component] | None = None,
) -> ComponentWrites:
    """What components write into the residual stream at one position.

    Args:
        model: the model.
        cache_or_prompt: an ``ActivationCache`` (or dict) from ``run_with_cache`` holding the
            hooks the kinds read (:func:`hooks_needed`), or a prompt (text, tokenized with
            the tokenizer's defaults, or 1-D ids): then one ``run_with_cache`` with a names
            filter, stopped after the deepest block, reads them. Hooks already on the model
            take effect.
        layer: block index or indices in ``[0, n_layers - 1]`` (``None`` for ``embed`` alone).
        kind: ``"head"``, ``"attn"``, ``"mlp"``, ``"neuron"``, ``"embed"``, ``"source"``
            (see the module docstring), or a list of them; rows are layer-major, kinds in
            :data:`KINDS` order within a layer.
        position: destination token position (negative counts from the end).
        heads: heads for ``head`` and ``source`` (default: all).
        neurons: neuron indices for ``neuron`` (required for it).
        sources: source positions for ``source`` (default: ``0 .. position``).
        unit: ``neuron`` rows are the unit output directions ``W_out[i] / |W_out[i]|``
            (independent of the prompt) instead of the writes ``post[p, i] * W_out[i]``.
        batch_index: which sequence of a batched cache.
        components: an explicit list instead of ``layer`` x ``kind`` (pass ``layer=None``):
            labels (``["L23H4", "L0 MLP", "L3N17", "L23H4 src2"]``) or
            :class:`Component` objects, in the order given.

    Returns:
        A :class:`ComponentWrites`: ``vectors`` ``[n, d_model]`` (float32) and ``labels``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model()
        >>> vectors, labels = component_writes(model, "The cat", 1, ["head", "mlp"])
        >>> tuple(vectors.shape), labels
        ((5, 64), ['L1H0', 'L1H1', 'L1H2', 'L1H3', 'L1 MLP'])
        >>> component_writes(model, "The cat", None, components=["L2 MLP", "L0H1 src0"]).labels
        ['L2 MLP', 'L0H1 src0']
    """
    if not isinstance(unit, bool):
        raise InvalidArgumentError(f"unit must be True or False, got {unit!r}")
    if components is not None:
        if layer is not None:
            raise InvalidArgumentError("give layer (and kind) or components=, not both; pass layer=None")
        components = check_components(model, components)
        probe = components
    else:
        kinds = [check_kind(kind)] if isinstance(kind, str) else [check_kind(k) for k in kind]
        probe = list_components(model, layer, kinds, heads=heads, neurons=neurons, sources=[0])
    from_prompt = isinstance(cache_or_prompt, str | Tensor)
    if from_prompt:
        seq_len = len(prompt_tokens(model, cache_or_prompt))
    else:
        if not isinstance(cache_or_prompt, ActivationCache | dict):
            raise InvalidArgumentError(
                f"expected an ActivationCache, a prompt or token ids, got {type(cache_or_prompt).__name__}"
            )
        seq_len = _cache_seq_len(model, cache_or_prompt, probe, unit)
    pos = check_positions([position], seq_len)[0]
    if components is None:
        if "source" in kinds and sources is None:
            sources = list(range(pos + 1))
        elif sources is not None:
            sources = check_positions(sources, seq_len)
        components = list_components(model, layer, kinds, heads=heads, neurons=neurons, sources=sources)
    else:
        for c in components:
            if c.kind == "source":
                check_positions([c.source], seq_len)
    names = hooks_needed(model, components, unit)
    if from_prompt:
        blocks = [c.layer for c in components if c.kind != "embed"]
        stop = min(model.cfg.n_layers, max(blocks) + 1) if blocks else 1
        cache = _run(model, cache_or_prompt, names, stop)
        batch_index = 0
    else:
        cache = cache_or_prompt
    acts = {name: _get(cache, name, batch_index) for name in names}
    rows = [_write(model, acts, c, pos, unit) for c in components]
    vectors = torch.stack(rows) if rows else torch.zeros(0, model.cfg.d_model)
    return ComponentWrites(vectors, [c.label for c in components], components, pos, unit)


def _cache_seq_len(model: HookedTransformer, cache: Any, probe: Sequence[Component], unit: bool) -> int:
    # The sequence length of the cached run, read from a hook the components need (every
    # hook but the pattern has positions on axis 1), else from any residual-like entry.
    names = [n for n in hooks_needed(model, probe, unit) if not n.endswith("hook_pattern")]
    names += [n for n in cache if "hook_resid" in n or n.endswith(("hook_embed", "hook_z", "_out"))]
    for name in names:
        if name in cache:
            return int(cache[name].shape[1])
    raise InvalidArgumentError(
        f"the cache holds none of the hooks these components need: {hooks_needed(model, probe, unit)}"
    )


def _write(model: HookedTransformer, acts: dict[str, Tensor], c: Component, pos: int, unit: bool) -> Tensor:
    f32 = torch.float32
    if c.kind == "embed":
        out = acts["hook_embed"][pos].to(f32)
        if "hook_pos_embed" in acts:
            out = out + acts["hook_pos_embed"][pos].to(f32)
        return out
    if c.kind == "attn":
        return acts[f"blocks.{c.layer}.hook_attn_out"][pos].to(f32)
    if c.kind == "mlp":
        return acts[f"blocks.{c.layer}.hook_mlp_out"][pos].to(f32)
    if c.kind == "neuron":
        row = _w_out(model, c.layer)[c.index].to(f32)
        if unit:
            return row / row.norm().clamp_min(1e-12)
        post = acts[f"blocks.{c.layer}.mlp.hook_post"][pos, c.index].to(device=row.device, dtype=f32)
        return post * row
    w_o = model.blocks[c.layer].attn.W_O[c.index].to(f32)  # [d_head, d_model]
    if c.kind == "head":
        z = acts[f"blocks.{c.layer}.attn.hook_z"][pos, c.index].to(device=w_o.device, dtype=f32)
        return z @ w_o
    pattern = acts[f"blocks.{c.layer}.attn.hook_pattern"]  # [head, dst, src]
    v = acts[f"blocks.{c.layer}.attn.hook_v"]  # [src, kv_head (or head), d_head]
    weight = pattern[c.index, pos, c.source].to(device=w_o.device, dtype=f32)
    value = v[c.source, kv_head(model, c.index, v.shape[-2])].to(device=w_o.device, dtype=f32)
    return weight * (value @ w_o)


def kv_head(model: HookedTransformer, head: int, n_value_heads: int | None = None) -> int:
    """Key/value head that query head ``head`` reads (grouped-query attention).

    TransformerLens repeats each key/value head ``n_heads // n_key_value_heads`` times
    (``repeat_interleave``), so query head ``h`` reads ``h // (n_heads // n_kv)``. When
    ``hook_v`` already has one entry per query head (``n_value_heads == n_heads``, e.g.
    ``ungroup_grouped_query_attention``), it is ``head``.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> model = tiny_model("llama", d_model=64)   # 4 heads, 2 key/value heads
        >>> [kv_head(model, h) for h in range(4)]
        [0, 0, 1, 1]
    """
    n_heads = model.cfg.n_heads
    n_kv = n_value_heads if n_value_heads is not None else (model.cfg.n_key_value_heads or n_heads)
    if model.cfg.ungroup_grouped_query_attention and n_value_heads is None:
        n_kv = n_heads
    if n_kv == n_heads:
        return head
    return head // (n_heads // n_kv)


__all__ = [
    "KINDS",
    "Component",
    "ComponentWrites",
    "check_block",
    "check_components",
    "check_kind",
    "component_writes",
    "hooks_needed",
    "kv_head",
    "list_components",
    "parse_component",
]
