import os
import sys

# Make tests/reference.py importable and keep XLA to the 2 CI cores.
sys.path.insert(0, os.path.dirname(__file__))
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
# Tests compile fresh: no on-disk XLA cache shared with the user's CLI runs.
os.environ["HWGRAD_CACHE_DIR"] = ""
