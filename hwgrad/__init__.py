"""hwgrad: a jit-compiled, differentiable JAX model of LLM inference on memory hierarchies
and interconnects.

    import hwgrad as hg
    system = hg.presets.system("h100-sxm", 8)
    model = hg.presets.model("llama-3.1-70b")
    workload = hg.Workload(batch=32, prompt_len=2048, output_len=512, tp=8)
    result = hg.evaluate(system, model, workload, hg.compression("fp8", "fp8"))
    result.tpot_s

On CPU, XLA's fusion emitters take ~1/3 of the compile time of this model's many small ops
for ~10 % of its run time (measured: one vmapped 70B evaluate + gradient, 14.6 -> 9.8 s CPU
to compile, 0.19 -> 0.21 s per 2,048 points); importing hwgrad before jax has started its
backend turns them off (``--xla_cpu_use_fusion_emitters=false``) unless ``XLA_FLAGS``
already names that flag. GPU and TPU builds are not affected.
"""

import os as _os

if "xla_cpu_use_fusion_emitters" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (_os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()

from . import config as config
from . import counts as counts
from . import hf as hf
from . import memory as memory
from . import network as network
from . import power as power
from . import presets as presets
from . import pruning as pruning
from . import roofline as roofline
from . import service as service
from . import smooth as smooth
from . import speculative as speculative
from . import tables as tables
from .calibrated import calibrated_efficiency as calibrated_efficiency
from .calibrated import load_efficiency as load_efficiency
from .cost import PassCost as PassCost
from .cost import Result as Result
from .cost import decode_step as decode_step
from .cost import evaluate as evaluate
from .cost import forward_pass as forward_pass
from .cost import prefill as prefill
from .dtypes import compression as compression
from .service import Engine as Engine
from .service import Service as Service
from .service import evaluate_disaggregated as evaluate_disaggregated
from .service import evaluate_service as evaluate_service
from .specs import Channel as Channel
from .specs import Chip as Chip
from .specs import Compression as Compression
from .specs import Economics as Economics
from .specs import Efficiency as Efficiency
from .specs import MemoryTier as MemoryTier
from .specs import Model as Model
from .specs import Network as Network
from .specs import Options as Options
from .specs import Placement as Placement
from .specs import Stack as Stack
from .specs import System as System
from .specs import Workload as Workload
from .specs import replace as replace
from .validate import validate as validate

__version__ = "0.1.0"
