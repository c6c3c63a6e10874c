"""``python -m visiontune ARGS`` is the ``visiontune`` command: the same parser, output and exit codes.

It is also how torchrun starts it on every rank: ``torchrun --nproc_per_node 2 -m visiontune train DATA``.
"""
import sys

from visiontune.cli import main

if __name__ == "__main__":
    sys.exit(main())
