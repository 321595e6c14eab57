"""Tiny SAEs for tests and examples, built in milliseconds.

:func:`tiny_sae` returns a SAELens ``TopKSAE`` when SAELens is installed (the ``sae``
extra) and otherwise a :class:`SimpleSAE` with the same duck-typed surface (``W_dec``,
``W_enc``, ``b_dec``, ``encode``, ``decode``, ``cfg.metadata.hook_name``).
"""

from __future__ import annotations

import types

import torch
from torch import Tensor, nn


class SimpleSAE(nn.Module):
    """A minimal TopK sparse autoencoder (no SAELens needed).

    ``encode(x) = topk(relu((x - b_dec) @ W_enc + b_enc))``, ``decode(a) = a @ W_dec + b_dec``.
    """

    def __init__(self, d_in: int, d_sae: int, k: int, hook_name: str, model_name: str | None = None):
        super().__init__()
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.k = k
        metadata = types.SimpleNamespace(hook_name=hook_name, model_name=model_name)
        self.cfg = types.SimpleNamespace(d_in=d_in, d_sae=d_sae, k=k, metadata=metadata)

    def encode(self, x: Tensor) -> Tensor:
        pre = torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)
        top = pre.topk(min(self.k, pre.shape[-1]), dim=-1)
        return torch.zeros_like(pre).scatter(-1, top.indices, top.values)

    def decode(self, acts: Tensor) -> Tensor:
        return acts @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))


def tiny_sae(model, *, d_sae: int = 32, layer: int = 1, k: int = 4, seed: int = 0, use_sae_lens: bool | None = None):
    """A random TopK SAE at ``blocks.{layer}.hook_resid_pre`` of ``model`` (unit-norm decoder
    rows, encoder = decoder transposed, as SAELens initialises).

    Args:
        model: the model (for ``d_model`` and the model name).
        d_sae: number of features.
        layer: residual layer (``blocks.layer.hook_resid_pre``).
        k: active features per token.
        seed: initialisation seed.
        use_sae_lens: ``True``/``False`` to force either implementation; ``None`` picks
            SAELens when it is installed.

    Example:
        >>> from selfie_tl.testing import tiny_model
        >>> sae = tiny_sae(tiny_model(), d_sae=16)
        >>> tuple(sae.W_dec.shape), sae.cfg.metadata.hook_name
        ((16, 64), 'blocks.1.hook_resid_pre')
    """
    d_in = int(model.cfg.d_model)
    hook = f"blocks.{layer}.hook_resid_pre"
    name = str(model.cfg.model_name)
    gen = torch.Generator().manual_seed(seed)
    w_dec = torch.randn(d_sae, d_in, generator=gen)
    w_dec = w_dec / w_dec.norm(dim=-1, keepdim=True)
    if use_sae_lens is None:
        try:
            import sae_lens  # noqa: F401

            use_sae_lens = True
        except ImportError:
            use_sae_lens = False
    if use_sae_lens:
        from sae_lens import TopKSAE, TopKSAEConfig
        from sae_lens.saes.sae import SAEMetadata

        cfg = TopKSAEConfig(d_in=d_in, d_sae=d_sae, k=k, metadata=SAEMetadata(hook_name=hook, model_name=name))
        sae = TopKSAE(cfg)
    else:
        sae = SimpleSAE(d_in, d_sae, k, hook, name)
    with torch.no_grad():
        sae.W_dec.copy_(w_dec)
        sae.W_enc.copy_(w_dec.T)
        sae.b_dec.zero_()
        sae.b_enc.zero_()
    return sae.eval()


__all__ = ["SimpleSAE", "tiny_sae"]
