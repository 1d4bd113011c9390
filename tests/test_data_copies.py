"""The package's data tables are byte-for-byte copies of the project's shared data.

``hwgrad`` reads only ``hwgrad/presets/data/`` at run time; ``../shared/data/`` is the source
of truth (with sources in its README). When that folder is present (CI, a developer checkout)
every file in it must have an identical copy in the package, so a data update that was not
copied fails here instead of silently leaving the model on old numbers.
"""

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "hwgrad" / "presets" / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = sorted(p.name for p in SHARED.iterdir() if p.is_file()) if SHARED.is_dir() else []


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present in this checkout")
@pytest.mark.parametrize("name", FILES)
def test_package_copy_equals_shared(name):
    copy = PACKAGE / name
    assert copy.is_file(), f"{name} is in ../shared/data but not in hwgrad/presets/data: copy it"
    assert copy.read_bytes() == (SHARED / name).read_bytes(), (
        f"hwgrad/presets/data/{name} differs from ../shared/data/{name}: copy the shared file "
        "and rerun the calibration if it is calibration.csv"
    )
