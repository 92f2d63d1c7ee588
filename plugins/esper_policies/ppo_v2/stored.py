"""The row ppo_v2 stores per env step in ``PolicyOutput.features`` (and so in the rollout's ``obs``).

Layout: ``[normalised features (D) | raw features (D) | blueprint indices (S) as floats]``.
- The normalised part is exactly what the network saw when it acted, so the update replays the same inputs.
- The raw part feeds the running normaliser after the update (statistics come from raw values; the
  normalised ones would describe the old statistics, and un-normalising is not exact once clipped).
- Blueprint indices ride along as floats (small integers are exact in float32), so the rollout needs only
  its one float ``obs`` tensor whoever builds it.
"""

from __future__ import annotations

import attrs
import torch


@attrs.frozen(eq=False)
class StoredFeatures:
    normalised: torch.Tensor  # [..., D] float32
    raw: torch.Tensor  # [..., D] float32
    blueprint_index: torch.Tensor  # [..., S] int64


@attrs.frozen
class StoredLayout:
    obs_dim: int
    n_slots: int

    @property
    def width(self) -> int:
        return 2 * self.obs_dim + self.n_slots

    def pack(self, normalised: torch.Tensor, raw: torch.Tensor, blueprint_index: torch.Tensor) -> torch.Tensor:
        return torch.cat([normalised.float(), raw.float(), blueprint_index.float()], dim=-1)

    def unpack(self, rows: torch.Tensor) -> StoredFeatures:
        if rows.shape[-1] != self.width:
            raise ValueError(
                f"ppo_v2 expects stored feature rows of width {self.width} (2 x {self.obs_dim} features + "
                f"{self.n_slots} blueprint indices); got {rows.shape[-1]}: was this rollout collected by "
                "another policy or with another action space?"
            )
        d = self.obs_dim
        return StoredFeatures(
            normalised=rows[..., :d],
            raw=rows[..., d : 2 * d],
            blueprint_index=rows[..., 2 * d :].round().long(),
        )
