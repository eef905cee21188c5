"""``python -m fcinvert`` runs the command line."""

from fcinvert.cli import main

if __name__ == "__main__":  # dask process workers import this module: do not re-run the command
    main()
