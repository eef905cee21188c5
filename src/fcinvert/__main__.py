"""``python -m fcinvert`` runs the command line."""

from fcinvert.cli import main

main()
