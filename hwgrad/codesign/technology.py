"""Hardware price models: what a chip costs as a function of its memory."""

from __future__ import annotations

import dataclasses
import math

from .. import units


@dataclasses.dataclass(frozen=True)
class PriceModel:
    """Chip price as a function of its main-memory capacity and bandwidth.

    ``price = markup * (logic_usd + capacity_GB * usd_per_gb + bandwidth_TB/s * usd_per_tb_per_s)``;
    ``logic_usd`` is solved so that the reference chip costs its catalogue price. Defaults:
    HBM3e 15.1 $/GB, 137 $ per TB/s of interface (B200 CoWoS-L ~$1,100 for 8 TB/s) and the H100
    list-price / manufacturing-cost ratio as markup (all from ``economics.csv``).
    """

    usd_per_gb: float = 15.1
    usd_per_tb_per_s: float = 137.0
    markup: float = 30000.0 / 3320.0
    logic_usd: float = float("nan")

    def calibrated(self, chip) -> PriceModel:
        if math.isfinite(self.logic_usd):
            return self
        t = chip.tiers[0]
        mem = (
            float(t.capacity_bytes) / units.GB * self.usd_per_gb
            + float(t.bandwidth_bytes_per_s) / 1e12 * self.usd_per_tb_per_s
        )
        return dataclasses.replace(self, logic_usd=max(float(chip.price_usd) / self.markup - mem, 0.0))

    def price(self, chip):
        t = chip.tiers[0]
        mem = (
            t.capacity_bytes / units.GB * self.usd_per_gb
            + t.bandwidth_bytes_per_s / 1e12 * self.usd_per_tb_per_s
        )
        return self.markup * (self.logic_usd + mem)
