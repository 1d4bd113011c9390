"""Studies: a problem plus run settings, parsed from TOML files or built in."""

from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path

from .. import accuracy, counts, presets
from ..specs import Compression, Workload
from .feasibility import FEASIBILITY_RTOL
from .problem import Problem
from .technology import PriceModel, Technology
from .variables import AccuracySettings, Constraint, Objective, Variable, get_path


@dataclasses.dataclass
class Study:
    """A problem plus run settings, comparison presets and a Pareto sweep."""

    problem: Problem
    name: str = "study"
    steps: int = 400
    starts: int = 4
    lr: float = 0.05
    seed: int = 0
    inner_steps: int = 50
    checkpoint_every: int = 100
    polish_steps: int = 100
    pareto_constraint: str | None = None
    pareto_budgets: tuple[float, ...] = ()
    compare: tuple[str, ...] = ()
    compare_compression: tuple[str, str] = ("fp8", "fp8")


def divisors(n: float, lo: float, hi: float) -> tuple[float, ...]:
    k = int(round(n))
    return tuple(float(d) for d in range(1, k + 1) if k % d == 0 and lo <= d <= hi)


def _base_specs(base: dict, where: str) -> dict:
    """Specs from a ``[base]`` table (a design file, or presets and a few workload numbers)."""
    from .. import config, dtypes
    from ..validate import validate

    known = {
        "design",
        "hardware",
        "model",
        "chips",
        "batch",
        "prompt_len",
        "output_len",
        *dtypes.NAMED_FIELDS,
        "sparsity",
        "pattern",
        "efficiency",
        "stack",
    }
    for key in base:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=2)
            raise ValueError(
                f"{where}: [base] unknown field {key!r}; "
                + (f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(sorted(known))}")
            )
    loaded = config.load(base["design"]) if "design" in base else {}
    model = (
        presets.model(base["model"])
        if "model" in base
        else loaded.get("model") or presets.model("llama-3.1-70b")
    )
    chips = float(base.get("chips", 8))
    # the chip preset (its name also picks the stack's vendor line); a design file's own system
    hw_name = str(base["hardware"]) if "hardware" in base else (None if loaded.get("system") else "h100-sxm")
    system = presets.system(hw_name, int(chips)) if hw_name is not None else loaded["system"]
    wl = loaded.get("workload") or Workload(batch=32.0, prompt_len=2048.0, output_len=512.0, tp=chips)
    wl = dataclasses.replace(
        wl, **{k: float(base[k]) for k in ("batch", "prompt_len", "output_len") if k in base}
    )
    if "chips" in base:
        wl = dataclasses.replace(wl, tp=chips / float(wl.pp * wl.dp))
    comp = loaded.get("compression") or Compression()
    if any(k in base for k in (*dtypes.NAMED_FIELDS, "sparsity", "pattern")):
        names = {k: base[k] for k in dtypes.NAMED_FIELDS if k in base}  # weight_dtype: bf16
        try:
            comp = dtypes.compression(
                **names, sparsity=float(base.get("sparsity", 0.0)), pattern=base.get("pattern", "dense")
            )
        except ValueError as exc:
            raise ValueError(f"{where}: [base].{exc}") from None
    eff = loaded.get("efficiency")
    if "stack" in base:
        # the serving stack (hwgrad.presets.stack_names()) with its kernels on this hardware
        eff = presets.stack(str(base["stack"]), hw_name)
    elif eff is None:
        # default: the calibrated tuned stack of this hardware's vendor line
        from ..calibrated import calibrated_efficiency

        eff = calibrated_efficiency(hw_name)
    if base.get("efficiency") == "speed_of_light":
        from ..specs import Efficiency

        eff = Efficiency.speed_of_light()
    validate(system, model, wl, comp)
    return dict(
        system=system,
        model=model,
        workload=wl,
        compression=comp,
        efficiency=eff,
        economics=loaded.get("economics"),
    )


def _served_specs(doc: dict, specs: dict, where: str, text: str | None) -> dict:
    """A served design's roots from ``[service]`` (`hwgrad.service.Service` fields; lengths
    default to ``[base]``'s), ``[engine]`` (`hwgrad.service.Engine`) and ``[prefill]``
    (disaggregated: ``hardware`` (default ``[base]``'s chip), ``tp``, ``pp``, ``dp`` of the
    prefill pool; ``[base]`` is then the decode pool)."""
    from .. import config
    from ..service import Engine, Pool, Service, validate_design_service

    if not any(k in doc for k in ("service", "engine", "prefill")):
        return {}
    if "service" not in doc:
        raise ValueError(f"{where}: [engine] / [prefill] need a [service] table (arrival_rate_rps, SLOs)")
    wl = specs["workload"]
    out = {}
    try:
        svc_t = dict(doc["service"])
        svc_t.setdefault("input_tokens", float(wl.prompt_len))
        svc_t.setdefault("output_tokens", float(wl.output_len))
        out["service"] = config._override(Service(), Service, svc_t, f"{where}: [service]")
        out["engine"] = config._override(Engine(), Engine, dict(doc.get("engine", {})), f"{where}: [engine]")
        if "prefill" in doc:
            pt = dict(doc["prefill"])
            bad = set(pt) - {"hardware", "tp", "pp", "dp"}
            if bad:
                raise ValueError(f"[prefill] unknown field(s) {sorted(bad)}; known: hardware, tp, pp, dp")
            n = {k: float(pt.get(k, 1.0)) for k in ("tp", "pp", "dp")}
            hw = pt.get("hardware")
            system = presets.system(hw, int(n["tp"] * n["pp"] * n["dp"])) if hw else dataclasses.replace(
                specs["system"], n_chips=n["tp"] * n["pp"] * n["dp"]
            )
            out["prefill"] = Pool(system=system, workload=dataclasses.replace(wl, **n))
        validate_design_service({**specs, **out})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    return out


def default_study_dict() -> dict:
    """The built-in study (see ``docs/codesign.md``) as the dict a study file parses to."""
    return {
        "study": {
            "name": "llama-3.1-70b decode: cheapest $/M tokens at TPOT <= 30 ms, delta ppl <= 0.1",
            "objective": "usd_per_million_tokens",
            "steps": 400,
            "starts": 6,
            "lr": 0.05,
            "seed": 0,
            "polish_steps": 0,
            "compare": ["h100-sxm", "h200-sxm", "b200"],
        },
        "base": {
            "hardware": "h100-sxm",
            "model": "llama-3.1-70b",
            "chips": 8,
            "batch": 32,
            "prompt_len": 2048,
            "output_len": 512,
            "weight_dtype": "fp8",
            "kv_dtype": "fp8",
            "act_dtype": "fp8",
            "sparsity": 0.05,
            "pattern": "unstructured",
        },
        # the chip is built from HBM3e stacks, an N5 logic die and NVLink4 links: capacity,
        # bandwidth, FLOPS, price and power are derived (hwgrad.codesign.technology)
        "technology": {"memory": "hbm3e", "process": "tsmc_n5", "link": "nvlink4-h100"},
        "variables": [
            # 1-12 stacks (B200 carries 8 HBM3e stacks; 12 is an upper bound, not a product)
            # whole stacks and links: a design with 1.5 stacks cannot be built (relaxed during
            # the descent, rounded and repaired at the end)
            {"path": "technology.memory_stacks", "min": 1, "max": 12, "integer": True},
            # up to the reticle limit, 26 x 33 mm = 858 mm^2 (economics.csv die_area_b200_per_die high)
            {"path": "technology.logic_die_area_mm2", "min": 100, "max": 858},
            # NVLink4 links per chip: H100 has 18 (interconnect.csv nvlink4-h100 n_links)
            {"path": "technology.links", "min": 1, "max": 18, "integer": True},
            {"path": "system.network.endpoint_overhead_s", "min": 0.5e-6, "max": 5e-6},
            {
                "path": ["system.n_chips", "workload.tp"],
                "name": "chips (= tp)",
                "min": 1,
                "max": 64,
                "divisor_of": "model.n_heads",
            },
            {"path": "workload.batch", "min": 1, "max": 1024, "integer": True},
            {"path": "compression.weight_bits", "min": 2, "max": 16, "values": [2, 3, 4, 6, 8, 16]},
            {"path": "compression.kv_bits", "min": 2, "max": 16, "values": [2, 3, 4, 6, 8, 16]},
            {"path": "compression.act_bits", "min": 4, "max": 16, "values": [4, 8, 16]},
            {"path": "compression.sparsity", "min": 0.0, "max": 0.6},
        ],
        "constraints": [
            {"metric": "tpot_s", "max": 0.030},
            {"metric": "delta_ppl", "max": 0.1},
            {"metric": "capacity"},
            # the built chip's power (memory + logic at full load) within a B200-class 1 kW
            # (hardware.csv b200 tdp_W)
            {"metric": "system.chip.tdp_w", "max": 1000.0},
        ],
        "pareto": {"constraint": "tpot_s", "budgets": [0.010, 0.015, 0.020, 0.030, 0.050, 0.080]},
    }


def default_study(stack: str | None = None, settings=()) -> Study:
    """The built-in study; ``stack``: a serving-stack preset (``hwgrad.presets.stack_names()``);
    ``settings``: changes to its base design (see `study_from_dict`)."""
    return study_from_dict(default_study_dict(), "<default study>", stack=stack, settings=settings)


def _line_of(text: str | None, needle: str, occurrence: int = 0) -> str:
    if not text:
        return ""
    count = 0
    for i, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(needle):
            if count == occurrence:
                return f" (line {i})"
            count += 1
    return ""


def base_design(
    doc: dict,
    where: str,
    text: str | None = None,
    root: Path | None = None,
    stack: str | None = None,
    settings=(),
) -> dict:
    """The base design of a parsed study file: its ``[base]`` table, then ``settings``.

    Args:
      doc: the parsed study file (`default_study_dict` for the built-in study).
      where: the file name, for errors.
      text: the file's text, for line numbers in errors.
      root: the directory a relative ``[base] design`` file is read from.
      stack: overrides ``[base] stack`` (a serving-stack preset name).
      settings: ``(path, value)`` pairs or ``"PATH=VALUE"`` strings set on the base design
        through the one ``--set`` implementation ([`hwgrad.cli.apply_assignments`][hwgrad.cli.apply_assignments];
        ``hwgrad codesign --set``, ``--hbm-bandwidth``, ...), in SI units. With a ``[technology]``
        table the chip's memory, FLOPS, power and links are derived from the technology, which
        is calibrated on this base chip: setting them moves the starting design.

    Returns:
      The specs (``system``, ``model``, ``workload``, ``compression``, ``efficiency``,
      ``economics``; ``service``, ``engine`` and ``prefill`` from the ``[service]``,
      ``[engine]`` and ``[prefill]`` tables of a served design); ``efficiency`` and
      ``economics`` may be ``None`` (the defaults) when no setting names them.

    Raises:
      ValueError: an unknown ``[base]`` field or setting path (with suggestions), or a base
        design that fails validation.
    """
    known = {
        "study", "base", "variables", "constraints", "accuracy", "price_model", "pareto", "technology",
        "service", "engine", "prefill",
    }  # fmt: skip
    for key in doc:
        if key not in known:
            raise ValueError(
                f"{where}: unknown table [{key}]{_line_of(text, f'[{key}')}; known: {', '.join(sorted(known))}"
            )
    base = dict(doc.get("base", {}))
    if stack is not None:
        base["stack"] = stack
    if "design" in base and root is not None:
        base["design"] = str((root / base["design"]).resolve())
    specs = _base_specs(base, where)
    # a served design's roots join before the settings, so --set service.arrival_rate_rps works
    specs.update(_served_specs(doc, specs, where, text))
    settings = list(settings)
    if settings:
        from ..calibrated import calibrated_efficiency
        from ..cli import apply_assignments
        from ..design import ROOTS
        from ..service import validate_design_service
        from ..validate import validate

        if specs["efficiency"] is None:
            specs["efficiency"] = calibrated_efficiency()
        if specs["economics"] is None:
            specs["economics"] = presets.default_economics()
        specs = apply_assignments(specs, settings)
        validate(**{k: specs[k] for k in ROOTS})
        validate_design_service(specs)
    return specs


def study_from_dict(
    doc: dict,
    where: str,
    text: str | None = None,
    root: Path | None = None,
    stack: str | None = None,
    settings=(),
) -> Study:
    """Build a `Study` from a parsed study file (errors name the table, field and line).

    ``stack`` overrides ``[base] stack`` (a serving-stack preset name); ``settings``
    (``(path, value)`` pairs or ``"PATH=VALUE"`` strings) change the base design (see
    `base_design`)."""
    base = dict(doc.get("base", {}))
    specs = base_design(doc, where, text, root, stack, settings)
    model = specs["model"]
    variables = []
    var_keys = {"path", "min", "max", "scale", "values", "integer", "per_layer", "name", "divisor_of"}
    for i, v in enumerate(doc.get("variables", [])):
        loc = f"{where}: [[variables]] #{i + 1}{_line_of(text, '[[variables]]', i)}"
        bad = set(v) - var_keys
        if bad:
            raise ValueError(f"{loc}: unknown field(s) {sorted(bad)}; known: {', '.join(sorted(var_keys))}")
        for req in ("path", "min", "max"):
            if req not in v:
                raise ValueError(f"{loc}: missing field {req!r}")
        values = v.get("values")
        if "divisor_of" in v:
            n = float(get_path({"model": model}, v["divisor_of"]))
            values = divisors(n, float(v["min"]), float(v["max"]))
        try:
            for path in [v["path"]] if isinstance(v["path"], str) else v["path"]:
                if path.startswith("technology."):
                    if "technology" not in doc:
                        raise ValueError(f"path {path!r} needs a [technology] table (e.g. memory = 'hbm3e')")
                    continue  # checked by Problem, which builds the technology values
                if path == "compression.layer_keep_gates" and specs["compression"].layer_keep_gates is None:
                    continue  # Problem starts the gates at 1 (keep every layer)
                get_path(specs, path)
            variables.append(
                Variable(
                    paths=v["path"],
                    lower=float(v["min"]),
                    upper=float(v["max"]),
                    scale=v.get("scale", ""),
                    values=values,
                    integer=bool(v.get("integer", False)),
                    per_layer=bool(v.get("per_layer", False)),
                    name=v.get("name", ""),
                )
            )
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{loc}: {exc}") from None
    constraints = []
    for i, c in enumerate(doc.get("constraints", [])):
        loc = f"{where}: [[constraints]] #{i + 1}{_line_of(text, '[[constraints]]', i)}"
        bad = set(c) - {"metric", "max", "min"}
        if bad or "metric" not in c:
            raise ValueError(f"{loc}: use fields metric, max, min (got {sorted(c)})")
        try:
            constraints.append(Constraint(c["metric"], c.get("max"), c.get("min")))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{loc}: {exc}") from None
    st = dict(doc.get("study", {}))
    obj = st.pop("objective", "usd_per_million_tokens")
    rtol = st.pop("feasibility_rtol", FEASIBILITY_RTOL)
    try:
        if isinstance(obj, str):
            objective = Objective(((obj, 1.0),))
        else:
            objective = Objective(
                tuple((k, float(w)) for k, w in obj.get("weights", {}).items()), obj.get("kind", "weighted")
            )
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{where}: [study].objective{_line_of(text, 'objective')}: {exc}") from None
    acc_t = dict(doc.get("accuracy", {}))
    try:
        acc = AccuracySettings(
            family=acc_t.get("family", "gptq"),
            pruner=acc_t.get("pruner", "sparsegpt"),
            baseline_ppl=acc_t.get("baseline_ppl"),
            layer_sensitivity=tuple(acc_t["layer_sensitivity"]) if "layer_sensitivity" in acc_t else None,
            structured_finetuned=float(acc_t.get("structured_finetuned", 0.0)),
            structured_generation=acc_t.get(
                "structured_generation",
                "llama-3" if str(base.get("model", "llama-3.1-70b")).startswith("llama-3") else "llama-2",
            ),
        )
        if acc.structured_generation not in ("llama-2", "llama-3"):
            raise ValueError(
                f"structured_generation = {acc.structured_generation!r}: use 'llama-2' or 'llama-3'"
            )
        accuracy.validate_inputs(
            8.0,
            params_b=float(counts.param_count(model)) / 1e9,
            family=acc.family,
            pruner=acc.pruner,
            baseline_ppl=acc.baseline_ppl,
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: [accuracy]{_line_of(text, '[accuracy')}: {exc}") from None
    price = None
    if "price_model" in doc:
        try:
            price = PriceModel(**{k: float(x) for k, x in doc["price_model"].items()})
        except TypeError as exc:
            raise ValueError(
                f"{where}: [price_model]{_line_of(text, '[price_model')}: {exc}; fields: usd_per_gb, usd_per_tb_per_s, markup, logic_usd"
            ) from None
    technology = None
    if "technology" in doc:
        tech_t = dict(doc["technology"])
        fields_t = {f.name for f in dataclasses.fields(Technology)}
        bad_t = set(tech_t) - fields_t
        if bad_t:
            raise ValueError(
                f"{where}: [technology]{_line_of(text, '[technology')}: unknown field(s) {sorted(bad_t)}; "
                f"known: {', '.join(sorted(fields_t))}"
            )
        try:
            technology = Technology(**tech_t)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: [technology]{_line_of(text, '[technology')}: {exc}") from None
    try:
        problem = Problem(
            specs,
            variables,
            objective,
            constraints,
            acc,
            price,
            feasibility_rtol=float(rtol),
            technology=technology,
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    fields = {f.name: f for f in dataclasses.fields(Study)}
    kw = {}
    for k, val in st.items():
        if k == "name":
            kw["name"] = str(val)
        elif k == "compare":
            kw["compare"] = tuple(val)
        elif k in fields and k not in ("problem",):
            kw[k] = type(fields[k].default)(val)
        else:
            raise ValueError(
                f"{where}: [study] unknown field {k!r}{_line_of(text, k)}; known: {', '.join(n for n in fields if n != 'problem')}, objective, feasibility_rtol"
            )
    par = doc.get("pareto", {})
    if par:
        kw["pareto_constraint"] = par.get("constraint")
        kw["pareto_budgets"] = tuple(float(b) for b in par.get("budgets", ()))
    for p in kw.get("compare", ()):
        presets.chip(p)
    return Study(problem=problem, **kw)


def load_study(path: str | os.PathLike, stack: str | None = None, settings=()) -> Study:
    """Parse a TOML study file (see ``docs/codesign.md``); ``stack`` and ``settings`` as in
    `study_from_dict`."""
    doc, text = read_study_file(path)
    path = Path(path)
    return study_from_dict(doc, str(path), text, path.parent, stack=stack, settings=settings)


def read_study_file(path: str | os.PathLike) -> tuple[dict, str]:
    """``(parsed TOML, text)`` of a study file; one-line errors for unreadable or invalid files."""
    import tomllib

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    return doc, text
