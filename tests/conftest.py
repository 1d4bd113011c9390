import os
import sys
import tempfile

# Make tests/reference.py importable and keep XLA to the 2 CI cores.
sys.path.insert(0, os.path.dirname(__file__))
# Compile time dominates the suite: the model is a few thousand scalar ops, for which XLA's
# new CPU fusion emitters and LLVM's optimisation passes cost ~3x the compile time and buy no
# measurable run time at test sizes (benchmarks/ keep the default flags).
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_cpu_multi_thread_eigen=false --xla_cpu_use_fusion_emitters=false "
    "--xla_backend_optimization_level=0 --xla_cpu_parallel_codegen_split_count=1",
)
# Tests compile fresh (no on-disk XLA cache shared with the user's CLI runs), but programs
# compiled by one test are reused by the others through a cache private to this session.
_CACHE = tempfile.mkdtemp(prefix="hwgrad-test-xla-")
os.environ["HWGRAD_CACHE_DIR"] = _CACHE

import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
