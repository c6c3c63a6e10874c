"""``python -m visiontune.cli ARGS``: the ``visiontune`` command (as ``python -m visiontune``)."""
import sys

from visiontune.cli import main

if __name__ == "__main__":
    sys.exit(main())
