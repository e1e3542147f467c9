"""What the gunicorn master imports before it forks the serving workers (``SPEC.serving_preload``).

Importing TensorFlow is most of a cold start, and most of that is not TensorFlow: ``import tensorflow`` imports
Keras eagerly (``keras.src.optimizers``, for registrations that only Keras' own SavedModels need), and Keras
imports scikit-learn and pandas when they are installed. The serving SavedModel is plain TensorFlow (decode,
resize, the classifier's graph), so the master imports TensorFlow with those packages hidden: TensorFlow's
``__init__`` catches the ImportError, as it does on a machine without Keras. They stay importable afterwards
(``tf.keras`` still works when something asks for it); only the import at start-up skips them. Measured with
``benchmarks/bench_image_classification_coldstart.py``: the CPU seconds to a healthy ``/ping`` drop by the
share Keras had (README, Performance).

The forked workers share the imported modules; each then loads the SavedModel itself (TensorFlow's runtime does
not survive a fork once it has run ops, so the model cannot be loaded here).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

# Packages `import tensorflow` pulls in that serving does not use.
SKIPPED_AT_IMPORT = ("keras", "tf_keras", "sklearn", "pandas")


def import_tensorflow():
    """``import tensorflow`` without importing Keras, scikit-learn or pandas along with it."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    hidden = [name for name in SKIPPED_AT_IMPORT if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # `import name` raises ImportError; importlib.util.find_spec(name) is None
    try:
        import tensorflow
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return tensorflow


import_tensorflow()

from . import encoders, model  # noqa: E402,F401  (imported once here instead of in every worker)
