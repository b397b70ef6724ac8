"""`python -m emulator serve` is `abtest serve`."""

from emulator.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
