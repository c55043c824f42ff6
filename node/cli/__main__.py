"""``python -m node.cli``: the same as the ``annot`` console script."""

from node.cli.main import main

main()
