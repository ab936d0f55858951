"""``python -m lopkit.bench``: every benchmark (as ``lopkit bench``)."""

import sys

from lopkit.bench._main import main

sys.exit(main(quick="--quick" in sys.argv[1:]))
