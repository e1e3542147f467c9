"""``algobox [ALGORITHM] train|serve`` — exactly what an image's ENTRYPOINT runs.

In an image the algorithm is fixed by ALGOBOX_ALGORITHM, so ``docker run IMAGE train`` works.
The /opt/ml root is /opt/ml unless ALGOBOX_ML_ROOT names another.
"""

import argparse
import os
import sys

from .spec import available, load_spec

ALGORITHM_ENV = "ALGOBOX_ALGORITHM"
COMMANDS = ("train", "serve")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="algobox",
        description="SageMaker built-in algorithm containers. Runs against /opt/ml, or $ALGOBOX_ML_ROOT.",
    )
    parser.add_argument("words", nargs="+", metavar="[ALGORITHM] {train,serve,list}",
                        help=f"algorithm (default ${ALGORITHM_ENV}) and command")
    args = parser.parse_args(argv)
    words = args.words
    if words == ["list"]:
        return None, "list"
    if len(words) == 1 and words[0] in COMMANDS:
        algorithm = os.environ.get(ALGORITHM_ENV)
        if not algorithm:
            parser.error(f"name an algorithm ({', '.join(available())}) or set {ALGORITHM_ENV}")
        return algorithm, words[0]
    if len(words) == 2 and words[1] in COMMANDS:
        return words[0], words[1]
    parser.error(f"expected [ALGORITHM] train|serve, got {' '.join(words)}")
    return None, None


def main(argv=None):
    algorithm, command = parse_args(sys.argv[1:] if argv is None else argv)
    if command == "list":
        print("\n".join(available()))
        return 0
    try:
        spec = load_spec(algorithm)
    except LookupError as exc:
        print(f"algobox: {exc}", file=sys.stderr)
        return 2
    if command == "train":
        from .training import run
    else:
        from .serving.server import run
    return run(spec)


if __name__ == "__main__":
    sys.exit(main())
