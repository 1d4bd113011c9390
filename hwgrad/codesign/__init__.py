"""Gradient co-design of hardware and compression under service-level and accuracy budgets.

A `Problem` picks any subset of numeric spec leaves as design variables (dotted paths
such as ``system.chip.tiers.0.bandwidth_bytes_per_s``), each with box bounds, and optimises
them in a transformed space: ``log x`` for positive quantities, ``logit x`` for fractions,
``x`` otherwise. Box bounds are enforced by projection (clipping in the transformed space)
after every optimiser step.

The optimiser minimises an augmented Lagrangian (Powell-Hestenes-Rockafellar form) of the
scalarised objective ``J`` and normalised inequality constraints ``g_i <= 0``:

    L(z; lam, mu) = J(z) + sum_i (max(0, lam_i + mu g_i(z))^2 - lam_i^2) / (2 mu)

with Adam (cosine-decayed learning rate) on ``z`` for ``inner_steps`` steps at fixed
``(lam, mu)``, then ``lam_i <- max(0, lam_i + mu g_i)`` and ``mu <- min(rho mu, mu_max)``
whenever the worst violation did not fall below ``1/4`` of its previous value.
``J = log(objective / objective at the start)`` and ``g = (value - limit) / |limit|`` (upper
limits; mirrored for lower limits), so every term is dimensionless and of order one.

Discrete variables (a set of values such as bits in {2, 3, 4, 6, 8, 16}, integers, TP degrees
dividing the head count) are relaxed to their interval during descent, then rounded to the
nearest allowed value and repaired by a greedy one-step neighbourhood search (and, if still
infeasible, by projected-gradient steps on the continuous variables with the integers fixed),
and the final design is re-evaluated with the hard roofline (``Options(roofline="hard")``).

Per-layer mixed precision: a variable with ``per_layer=True`` holds one value per layer. The
accuracy model (`hwgrad.accuracy`) sees the whole vector with a layer-sensitivity
profile; the cost model, which has scalar bits, sees the parameter-weighted mean stored bits
(exact for bytes moved and held, since every layer is read once per token). Per-layer keep
gates (``compression.layer_keep_gates``, in [0, 1], rounded to {0, 1}) prune whole layers.

Starts run in parallel under ``vmap``; Pareto fronts are a ``vmap`` over budgets. Random
search and CMA-ES on the same problem (`random_search`, `cma_es`) count model
evaluations for comparison.

The package holds one idea per module: ``variables`` (design variables, constraints,
objectives, paths), ``technology`` (chips built from memory stacks, die area and links;
price models), ``feasibility`` (the one feasibility rule), ``problem``, ``optimize``,
``rounding``, ``fronts`` (Pareto fronts), ``baselines`` (random search, CMA-ES), ``study``
(study files), ``report`` (run a study, write its report and figure) and ``cli``.

Example:
  >>> import hwgrad.codesign as cd
  >>> problem = cd.default_study().problem               # doctest: +SKIP
  >>> run = cd.optimize(problem, steps=300, starts=4)    # doctest: +SKIP
  >>> final = cd.round_and_repair(problem, run.best_values)  # doctest: +SKIP

References:
  Nocedal & Wright, *Numerical Optimization*, 2nd ed., sec. 17.4 (bound-constrained
  augmented Lagrangian). Hansen, "The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772.
"""

from __future__ import annotations

from .baselines import cma_es as cma_es
from .baselines import gradient_cost_in_forwards as gradient_cost_in_forwards
from .baselines import random_search as random_search
from .cli import cmd_codesign as cmd_codesign
from .cli import register_cli as register_cli
from .feasibility import FEASIBILITY_RTOL as FEASIBILITY_RTOL
from .feasibility import ConstraintStatus as ConstraintStatus
from .feasibility import infeasibility_report as infeasibility_report
from .feasibility import is_feasible as is_feasible
from .fronts import pareto as pareto
from .fronts import pareto_designs as pareto_designs
from .optimize import RunResult as RunResult
from .optimize import _checkpoint_digest as _checkpoint_digest  # noqa: F401 - used by tests/test_state_files.py
from .optimize import optimize as optimize
from .problem import Problem as Problem
from .report import compare_presets as compare_presets
from .report import run_study as run_study
from .rounding import Design as Design
from .rounding import fix_discrete as fix_discrete
from .rounding import round_and_repair as round_and_repair
from .study import Study as Study
from .study import base_design as base_design
from .study import default_study as default_study
from .study import default_study_dict as default_study_dict
from .study import load_study as load_study
from .study import study_from_dict as study_from_dict
from .technology import MemoryTechnology as MemoryTechnology
from .technology import PriceModel as PriceModel
from .technology import Technology as Technology
from .technology import memory_technology as memory_technology
from .variables import HARD as HARD
from .variables import LOGIT_EPS as LOGIT_EPS
from .variables import METRICS as METRICS
from .variables import OBJECTIVES as OBJECTIVES
from .variables import SCALES as SCALES
from .variables import SPEC_ROOTS as SPEC_ROOTS
from .variables import AccuracySettings as AccuracySettings
from .variables import Constraint as Constraint
from .variables import Objective as Objective
from .variables import Variable as Variable
from .variables import default_layer_sensitivity as default_layer_sensitivity
from .variables import get_path as get_path
from .variables import leaf_paths as leaf_paths
from .variables import set_path as set_path

__all__ = [
    "Variable",
    "Constraint",
    "Objective",
    "PriceModel",
    "Technology",
    "MemoryTechnology",
    "memory_technology",
    "Problem",
    "RunResult",
    "Design",
    "Study",
    "leaf_paths",
    "optimize",
    "round_and_repair",
    "pareto",
    "random_search",
    "cma_es",
    "gradient_cost_in_forwards",
    "default_study",
    "default_study_dict",
    "study_from_dict",
    "base_design",
    "load_study",
    "run_study",
    "register_cli",
]
