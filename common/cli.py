"""``algobox [ALGORITHM] train|serve|describe|<command>`` — exactly what an image's ENTRYPOINT runs.

In an image the algorithm is fixed by ALGOBOX_ALGORITHM, so ``docker run IMAGE train`` works.
The /opt/ml root is /opt/ml unless ALGOBOX_ML_ROOT names another. ALGORITHM may also be ``module:SPEC``,
an AlgorithmSpec anywhere importable. An algorithm's own commands (``export``) come from its spec.
"""

import argparse
import json
import os
import sys

from .spec import available, load_spec

ALGORITHM_ENV = "ALGOBOX_ALGORITHM"
COMMANDS = ("train", "serve", "describe")


def _version():
    try:
        from importlib.metadata import version

        return version("algobox")
    except Exception:  # noqa: BLE001 - not installed as a package
        return "0.0.0"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(
        prog="algobox",
        description="SageMaker built-in algorithm containers. Runs against /opt/ml, or $ALGOBOX_ML_ROOT.",
        usage="algobox [ALGORITHM] {train,serve,describe,COMMAND} [ARGS...] | algobox list",
    )
    parser.add_argument("words", nargs=argparse.REMAINDER)
    words = parser.parse_args(argv).words
    if words[:1] == ["list"]:
        print("\n".join(available()))
        return 0
    if not words:
        parser.error("name an algorithm and a command")
    env_algorithm = os.environ.get(ALGORITHM_ENV)
    env_commands = COMMANDS
    if env_algorithm:
        try:
            env_commands = (*COMMANDS, *load_spec(env_algorithm).commands)
        except (LookupError, ImportError, AttributeError):
            pass
    if words[0] in COMMANDS or (env_algorithm and words[0] in env_commands):
        if not env_algorithm:
            parser.error(f"name an algorithm ({', '.join(available())}) or set {ALGORITHM_ENV}")
        algorithm, command, rest = env_algorithm, words[0], words[1:]
    elif len(words) >= 2:
        algorithm, command, rest = words[0], words[1], words[2:]
    else:
        parser.error(f"expected [ALGORITHM] train|serve|describe, got {' '.join(words)}")
    try:
        spec = load_spec(algorithm)
    except (LookupError, ImportError, AttributeError) as exc:
        print(f"algobox: {exc}", file=sys.stderr)
        return 2
    if command == "train":
        from .training import run

        code = run(spec)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # everything is written (model files are fsynced): skip the frameworks' slow teardown
    if command == "serve":
        from .serving.server import run

        return run(spec)
    if command == "describe":
        from .describe import create_algorithm_request

        options = argparse.ArgumentParser(prog=f"algobox {spec.name} describe")
        options.add_argument("--image", default=f"algobox-{spec.name}:{_version()}-cpu",
                             help="the image URI to put in the request (e.g. your ECR URI)")
        args = options.parse_args(rest)
        print(json.dumps(create_algorithm_request(spec.validate(), args.image), indent=2))
        return 0
    if command in spec.commands:
        from .spec import load_object

        return load_object(spec.commands[command])(rest) or 0
    known = ", ".join((*COMMANDS, *spec.commands))
    print(f"algobox: unknown command {command!r} for {spec.name}; use one of: {known}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
