import os
import tempfile

# Benchmarks build their data in a cache of their own unless XRAYBENCH_CACHE is set.
os.environ.setdefault("XRAYBENCH_CACHE", os.path.join(tempfile.gettempdir(), "xraybench-bench-cache"))
