"""``python -m amberlite.cli``: the same command as the ``amberlite`` console script."""

from amberlite.cli import main

if __name__ == "__main__":
    main()
