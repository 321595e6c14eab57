"""One ``ln1`` per block instead of three, scoped to :func:`selfie_tl.generate`.

TransformerLens' ``TransformerBlock.forward`` normalises the attention input three times,
``ln1(query_input)``, ``ln1(key_input)``, ``ln1(value_input)``, even when the three are the
same tensor (no ``use_split_qkv_input`` / ``use_attn_in``). :func:`shared_ln1` installs, for
the duration of a ``with`` block, an instance ``forward`` on each block's ``ln1`` that
remembers its last input and output: called again with the *same tensor object* it returns
the same output instead of recomputing it. Values are identical (the same computation on
the same tensor).

The memo is bypassed - every call computes, as the stock path - whenever anything could
observe the repeated calls: a hook on a hook point inside ``ln1`` (``hook_scale``,
``hook_normalized``), a torch module hook on ``ln1`` itself, or a global module hook. On
exit (also on an exception) the instance ``forward`` is removed and the memo dropped; the
model keeps no attribute of this module.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn
from torch.nn.modules import module as _torch_module
from transformer_lens import HookedTransformer
from transformer_lens.hook_points import HookPoint


def _observed(module: nn.Module) -> bool:
    if _torch_module._global_forward_hooks or _torch_module._global_forward_pre_hooks:
        return True
    if module._forward_hooks or module._forward_pre_hooks:
        return True
    return any(
        isinstance(sub, HookPoint) and (sub._forward_hooks or sub._forward_pre_hooks)
        for sub in module.modules()
    )


def _memo_forward():
    memo: list = [None, None]  # [last input, its output]; a closure, not a module attribute

    def forward(self: nn.Module, x: Tensor) -> Tensor:
        stock = type(self).forward
        if self.training or _observed(self):
            memo[0] = memo[1] = None
            return stock(self, x)
        if memo[0] is x:
            return memo[1]
        out = stock(self, x)
        memo[0], memo[1] = x, out
        return out

    return forward, memo


@contextmanager
def shared_ln1(model: HookedTransformer) -> Iterator[bool]:
    """Within the block, each ``blocks[i].ln1`` computes once per distinct input tensor
    while nothing observes it; yields whether anything was installed. On exit the modules
    are exactly as before."""
    installed: list[tuple[nn.Module, list]] = []
    try:
        for block in model.blocks:
            ln1 = getattr(block, "ln1", None)
            if not isinstance(ln1, nn.Module) or isinstance(ln1, nn.Identity) or "forward" in vars(ln1):
                continue
            fn, memo = _memo_forward()
            ln1.forward = types.MethodType(fn, ln1)
            installed.append((ln1, memo))
        yield bool(installed)
    finally:
        for ln1, memo in installed:
            vars(ln1).pop("forward", None)
            memo[0] = memo[1] = None
