"""Allow ``python -m eddymail``."""

from eddymail.cli import main

if __name__ == "__main__":
    main()
