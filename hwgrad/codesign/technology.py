"""Technology-based hardware: a chip built from memory stacks, a logic die and links.

The paper's Table 3 (``memory_tech.csv``) made differentiable. With a :class:`Technology`,
a co-design problem's hardware variables are *technology choices*, and the quantities the
cost model needs are derived from them, per chip:

    capacity   = n_stacks x capacity_per_stack            (memory_tech.csv)
    bandwidth  = n_stacks x bandwidth_per_stack           (memory_tech.csv)
    FLOP/s     = die_area x FLOP/s per mm^2               (of the base chip: same process)
    link BW    = n_links x per-link bandwidth             (interconnect.csv)
    memory W   = n_stacks x power_per_stack               (memory_tech.csv; else pJ/bit x bandwidth)
    logic W    = die_area x W per mm^2                    (base chip: (TDP - memory W) / area)
    TDP        = memory W + logic W                       (the built chip's power limit)
    price      = markup x (logic $ + memory $ + packaging $ + other $)
    logic $    = wafer price / (dies per wafer x yield)   (economics.csv)
    memory $   = capacity_GB x $/GB                       (economics.csv)

``dies per wafer = pi d^2 / (4 A) - pi d / sqrt(2 A)`` (d = 300 mm; the standard gross-die
estimate), ``other $`` is solved so that the base chip costs its catalogue price, and
``markup`` is the H100 list price / manufacturing cost ratio (economics.csv). The relaxed
counts (stacks, links) are continuous during descent; declare them ``integer = true`` to
round them. Bandwidth and capacity move together, so a design with 118 GB/s per GB of HBM
cannot be reached: each stack brings its own ratio.

The older :class:`PriceModel` prices a chip from free capacity and bandwidth variables.
"""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp

from .. import presets, units


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


#: $/GB per memory technology: economics.csv keys (None: no price in the data)
_PRICE_KEYS = {
    "hbm3": "hbm3_price",
    "hbm3e": "hbm3e_price",
    # ASSUMPTION: no HBM4 price is shipped; HBM3e's $/GB stands in (economics.csv hbm3e_price)
    "hbm4": "hbm3e_price",
    "hbf": "hbf_price",
    "ddr5": "ddr5_price",
    # ASSUMPTION: no LPDDR5/CXL-module price is shipped (lpddr5x_price, cxl_memory_price:
    # "not found"); DDR5's $/GB stands in
    "lpddr5": "ddr5_price",
    "cxl-ddr5": "ddr5_price",
}
_WAFER_MM = 300.0


@dataclasses.dataclass(frozen=True)
class MemoryTechnology:
    """One row of ``memory_tech.csv`` in SI units, with its price.

    Attributes:
      name: the row name (``hbm3e``, ``hbf``, ``ddr5``, ...).
      capacity_bytes: capacity per stack / module, bytes.
      bandwidth_bytes_per_s: read bandwidth per stack / module, bytes/s.
      power_w: power per stack at full bandwidth, W (``power_per_device_W``, else
        ``energy_pJ_per_bit x bandwidth``).
      usd_per_gb: price, $/GB (economics.csv).
    """

    name: str
    capacity_bytes: float
    bandwidth_bytes_per_s: float
    power_w: float
    usd_per_gb: float


def memory_technology(name: str) -> MemoryTechnology:
    """The memory technology ``name`` of ``memory_tech.csv`` (one-line error if its row lacks
    a number the co-design needs)."""
    row = presets._lookup("memory_tech", name)
    cap = presets._num(row, "capacity_per_device_GB") * units.GB
    bw = presets._num(row, "bandwidth_per_device_GBps") * 1e9
    power = presets._num(row, "power_per_device_W")
    if not math.isfinite(power):
        power = presets._num(row, "energy_pJ_per_bit") * 1e-12 * 8 * bw
    price = presets.economics_value(_PRICE_KEYS[name]) if name in _PRICE_KEYS else math.nan
    for field, value in (
        ("capacity_per_device_GB", cap),
        ("bandwidth_per_device_GBps", bw),
        ("power_per_device_W or energy_pJ_per_bit", power),
        ("a $/GB in economics.csv", price),
    ):
        if not (math.isfinite(value) and value > 0):
            usable = ", ".join(n for n in _PRICE_KEYS if _usable(n))
            raise ValueError(
                f"memory technology {name!r}: memory_tech.csv gives no {field}; use one of {usable}"
            )
    return MemoryTechnology(name, cap, bw, power, price)


def _usable(name: str) -> bool:
    row = presets.table("memory_tech").get(name, {})
    has = [presets._num(row, c) for c in ("capacity_per_device_GB", "bandwidth_per_device_GBps")]
    power = [presets._num(row, c) for c in ("power_per_device_W", "energy_pJ_per_bit")]
    return all(math.isfinite(x) for x in has) and any(math.isfinite(x) for x in power)


def dies_per_wafer(area_mm2, wafer_mm: float = _WAFER_MM):
    """Gross dies per wafer: ``pi d^2 / (4 A) - pi d / sqrt(2 A)`` (works on traced values)."""
    return jnp.pi * wafer_mm**2 / (4 * area_mm2) - jnp.pi * wafer_mm / jnp.sqrt(2 * area_mm2)


@dataclasses.dataclass(frozen=True)
class Technology:
    """How a chip is built (see the module docstring for the equations).

    Attributes:
      memory: memory technology of tier ``tier`` (a ``memory_tech.csv`` name).
      process: wafer price key suffix of economics.csv (``tsmc_n5``, ``tsmc_n3``, ``tsmc_n2``).
      link: scale-up link kind (an ``interconnect.csv`` row with ``per_link_GBps_per_direction``).
      tier: the memory tier built from stacks (0 = main memory).
      yield_fraction: good dies / gross dies; default economics.csv ``act_fab_yield_default``
        (0.875; ASSUMPTION: area-independent, since no defect density is shipped).
      packaging_usd: per chip; default economics.csv ``cowos_s_packaging_cost_h100`` (750 $).
      markup: price / manufacturing cost; default ``price_h100_sxm / mfg_cost_h100``.

    The design variables live under the ``technology`` root of the specs:
    ``technology.memory_stacks``, ``technology.logic_die_area_mm2`` and ``technology.links``
    (start: the base chip's values). The chip's TDP is derived (memory W + logic W); bound
    it with a constraint on ``system.chip.tdp_w`` (e.g. ``max = 1000``).
    """

    memory: str = "hbm3e"
    process: str = "tsmc_n5"
    link: str = "nvlink4-h100"
    tier: int = 0
    yield_fraction: float = float("nan")
    packaging_usd: float = float("nan")
    markup: float = float("nan")

    def __post_init__(self):
        defaults = dict(
            yield_fraction=presets.economics_value("act_fab_yield_default"),
            packaging_usd=presets.economics_value("cowos_s_packaging_cost_h100"),
            markup=presets.economics_value("price_h100_sxm") / presets.economics_value("mfg_cost_h100"),
        )
        for k, v in defaults.items():
            if not math.isfinite(getattr(self, k)):
                object.__setattr__(self, k, float(v))
        self.stack  # noqa: B018 - validates the memory name
        try:
            presets.economics_value(f"wafer_price_{self.process}")
        except KeyError:
            raise ValueError(
                f"technology process {self.process!r}: economics.csv has no wafer_price_{self.process}; "
                "use tsmc_n5, tsmc_n3 or tsmc_n2"
            ) from None
        per_link = presets._num(presets._lookup_interconnect(self.link), "per_link_GBps_per_direction")
        if not math.isfinite(per_link):
            raise ValueError(
                f"technology link {self.link!r}: interconnect.csv gives no per_link_GBps_per_direction; "
                "use nvlink4-h100, nvlink5-b200, roce-gaudi3 or ib-ndr"
            )

    @property
    def stack(self) -> MemoryTechnology:
        return memory_technology(self.memory)

    @property
    def link_bandwidth_bytes_per_s(self) -> float:
        return presets._num(presets._lookup_interconnect(self.link), "per_link_GBps_per_direction") * 1e9

    @property
    def wafer_usd(self) -> float:
        return presets.economics_value(f"wafer_price_{self.process}")

    def logic_usd(self, area_mm2):
        return self.wafer_usd / (dies_per_wafer(area_mm2) * self.yield_fraction)

    def calibrate(self, specs: dict) -> tuple[dict, dict]:
        """``(start values, per-chip constants)`` from the base design's chip and network."""
        chip, net = specs["system"].chip, specs["system"].network
        t = chip.tiers[self.tier]
        st = self.stack
        area = float(chip.die_area_mm2)
        price, tdp = float(chip.price_usd), float(chip.tdp_w)
        for field, v in (("die_area_mm2", area), ("price_usd", price), ("tdp_w", tdp)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(
                    f"technology: the base chip's {field} is {v:g}; technology variables need it "
                    f"(set system.chip.{field} in the base design)"
                )
        stacks = max(
            float(t.capacity_bytes) / st.capacity_bytes,
            float(t.bandwidth_bytes_per_s) / st.bandwidth_bytes_per_s,
        )
        links = float(net.link_bandwidth_bytes_per_s) / self.link_bandwidth_bytes_per_s
        mem_w = stacks * st.power_w
        const = dict(
            flops_per_mm2=tuple(float(getattr(chip, f)) / area for f in _FLOPS),
            logic_w_per_mm2=max(tdp - mem_w, 0.0) / area,
        )
        base_cost = float(self.logic_usd(area)) + stacks * st.capacity_bytes / units.GB * st.usd_per_gb
        const["other_usd"] = max(price / self.markup - base_cost - self.packaging_usd, 0.0)
        start = dict(memory_stacks=stacks, logic_die_area_mm2=area, links=links)
        return start, const

    def apply(self, specs: dict, const: dict) -> dict:
        """Specs with the chip's tier, FLOPS, die area, price and the link bandwidth derived."""
        v = specs["technology"]
        st = self.stack
        system = specs["system"]
        chip = system.chip
        tiers = list(chip.tiers)
        tiers[self.tier] = dataclasses.replace(
            tiers[self.tier],
            capacity_bytes=v["memory_stacks"] * st.capacity_bytes,
            bandwidth_bytes_per_s=v["memory_stacks"] * st.bandwidth_bytes_per_s,
        )
        area = v["logic_die_area_mm2"]
        # a peak the base chip lacks (inf / nan, e.g. fp4 on H100) stays as it is
        flops = {f: area * k for f, k in zip(_FLOPS, const["flops_per_mm2"], strict=True) if math.isfinite(k)}
        price = self.markup * (
            self.logic_usd(area)
            + v["memory_stacks"] * st.capacity_bytes / units.GB * st.usd_per_gb
            + self.packaging_usd
            + const["other_usd"]
        )
        # the chip's power limit is what its parts draw at full load (memory + logic)
        tdp = v["memory_stacks"] * st.power_w + area * const["logic_w_per_mm2"]
        chip = dataclasses.replace(
            chip, tiers=tuple(tiers), die_area_mm2=area, price_usd=price, tdp_w=tdp, **flops
        )
        net = dataclasses.replace(
            system.network, link_bandwidth_bytes_per_s=v["links"] * self.link_bandwidth_bytes_per_s
        )
        return {**specs, "system": dataclasses.replace(system, chip=chip, network=net)}

    def metrics(self, specs: dict, const: dict) -> dict:
        """Derived per-chip quantities (also available as constraint metrics)."""
        v = specs["technology"]
        st = self.stack
        chip = specs["system"].chip
        mem_w = v["memory_stacks"] * st.power_w
        logic_w = v["logic_die_area_mm2"] * const["logic_w_per_mm2"]
        return dict(
            memory_power_w=mem_w,
            logic_power_w=logic_w,
            power_demand_over_tdp=(mem_w + logic_w) / chip.tdp_w,
            memory_usd=v["memory_stacks"] * st.capacity_bytes / units.GB * st.usd_per_gb,
            logic_usd=self.logic_usd(v["logic_die_area_mm2"]),
        )


_FLOPS = ("peak_flops_bf16", "peak_flops_fp8", "peak_flops_fp4")
TECHNOLOGY_METRICS = ("memory_power_w", "logic_power_w", "power_demand_over_tdp", "memory_usd", "logic_usd")
