from common.errors import HyperparameterError


def check(hp):
    if hp["shrinkage"] > 0 and hp["prior"] == 0 and hp["feature_dim"] > 1000:
        raise HyperparameterError("shrinkage towards prior=0 needs feature_dim <= 1000 (a made-up cross-field rule)")
