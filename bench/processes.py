"""Moved to tests/testkit/processes.py (the tests measure with it too, and tests never import the
bench); this name keeps the bench's scripts working."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testkit.processes import *  # noqa: F403
