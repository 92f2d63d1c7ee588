"""Alpha as the blend styles consume it: a 0-dim tensor, or one value per sample."""

from __future__ import annotations

import torch


def broadcast_alpha(alpha: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """Shape ``alpha`` to multiply ``h`` ([B,C,H,W]) and give it ``h``'s dtype.

    A 0-dim alpha stays 0-dim; a per-sample ``[B]`` alpha becomes ``[B,1,1,1]``. The dtype cast keeps a
    bf16 feature map bf16 under autocast (an fp32 ``[B,1,1,1]`` factor would promote the result to fp32);
    0 stays exactly 0 in every float dtype, so the alpha-0 identity is unaffected. Only shapes are
    inspected: no host sync.
    """
    if alpha.dim() == 0:
        return alpha.to(dtype=h.dtype)
    if alpha.dim() == 1 and alpha.shape[0] == h.shape[0]:
        return alpha.to(dtype=h.dtype).view(-1, *([1] * (h.dim() - 1)))
    raise ValueError(
        f"alpha must be a 0-dim tensor or one value per sample [B={h.shape[0]}]; got shape {tuple(alpha.shape)}"
    )
