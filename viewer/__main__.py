"""``python -m viewer``: the shmview command line."""

from viewer.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
