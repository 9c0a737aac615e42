"""``python -m pipelines {run,tune,compile,latest-model,submit,schedule} ...``"""

import argparse
import importlib
import logging

# Each module adds its subcommand(s) through register(subparsers).
COMMAND_MODULES = ["pipelines.run", "pipelines.tune", "pipelines.compile", "pipelines.submit", "pipelines.schedule"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args.func(args)


if __name__ == "__main__":
    main()
