"""``python -m eventml`` is the ``eventml`` command."""

from eventml.cli import main

main()
