"""Named unit constants. Everything inside hwgrad is SI; these convert at the edges.

Decimal prefixes throughout (1 GB = 1e9 bytes), as in the shipped data files.
"""

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12
KIB = 1024.0

GBPS = 1e9  # bytes/s
TFLOPS = 1e12  # FLOP/s

NS = 1e-9
US = 1e-6
MS = 1e-3

PJ = 1e-12  # joule
PJ_PER_BIT = PJ * 8.0  # joule per byte

KWH = 3.6e6  # joule
HOUR = 3600.0
YEAR = 365.25 * 24 * HOUR

BITS_PER_BYTE = 8.0
