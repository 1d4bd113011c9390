"""Calibration and validation of the cost model against measured decode performance.

``validate`` predicts every row of a measurement file (`hwgrad.measurements`) and
reports absolute percentage errors; ``fit`` finds the few physical parameters the data
identify by gradient descent (Adam) through the jit-compiled, ``vmap``-ped model;
``cross_validate`` refits with a group of rows left out and predicts it (leave one
hardware out, LOHO; leave one architecture generation out, LOGO: the honest proxy for
predicting the next generation of hardware on the same stacks).

The package, by concept (each module's docstring explains its part):

* `hwgrad.calibrate.parameters`: what is fitted, its ranges, calibration files;
* `hwgrad.calibrate.cases`: measured rows -> evaluable cases, the batched evaluator;
* `hwgrad.calibrate.report`: predictions, errors and reports (``hwgrad validate``);
* `hwgrad.calibrate.fit`: the fit (Adam through the model, Cauchy loss, priors);
* `hwgrad.calibrate.crossval`: leave-one-hardware-out and leave-one-generation-out;
* `hwgrad.calibrate.identify`: which fitted numbers the data identify (posterior vs prior sd);
* `hwgrad.calibrate.cli`: ``hwgrad validate`` and ``hwgrad calibrate``.
"""

from .cases import GIB_PER_GB as GIB_PER_GB
from .cases import Case as Case
from .cases import Engine as Engine
from .cases import Prepared as Prepared
from .cases import prepare as prepare
from .cli import LOGO_FOLDS as LOGO_FOLDS
from .cli import cmd_calibrate as cmd_calibrate
from .cli import cmd_validate as cmd_validate
from .cli import register_cli as register_cli
from .crossval import CV_GROUPS as CV_GROUPS
from .crossval import cross_validate as cross_validate
from .fit import FitSettings as FitSettings
from .fit import fit as fit
from .parameters import BASE_STACK as BASE_STACK
from .parameters import PARAM_BY_KEY as PARAM_BY_KEY
from .parameters import PARAMETERS as PARAMETERS
from .parameters import Calibration as Calibration
from .parameters import Parameter as Parameter
from .parameters import default_calibration as default_calibration
from .parameters import load_calibration as load_calibration
from .parameters import software_family as software_family
from .parameters import write_calibration as write_calibration
from .report import Report as Report
from .report import ape as ape
from .report import ape_summary as ape_summary
from .report import format_summary as format_summary
from .report import predict as predict
from .report import validate as validate

__all__ = [
    "PARAMETERS", "Calibration", "Case", "Prepared", "Report", "ape", "ape_summary", "prepare", "predict",
    "validate", "fit", "cross_validate", "software_family", "load_calibration", "write_calibration",
    "default_calibration", "register_cli",
]  # fmt: skip
