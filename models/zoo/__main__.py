"""``python -m models.zoo [--out DIR] [--only NAME ...]``: regenerate the zoo files."""

from models.zoo.export import main

if __name__ == "__main__":
    raise SystemExit(main())
