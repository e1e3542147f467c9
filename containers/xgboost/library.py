"""The xgboost library, imported without scikit-learn.

``import xgboost`` imports scikit-learn when it is installed (for ``xgboost.sklearn``'s base classes), about
1.2 s of CPU at every job's start (a third of xgboost's import) for estimators this image never uses. The
image does not install scikit-learn; where it is installed anyway (a development environment, a derived
image), the training process hides it while xgboost is imported, so xgboost takes its own stand-ins. Later
imports of scikit-learn work as usual.
"""

import sys


def load():
    if "xgboost" in sys.modules or "sklearn" in sys.modules:
        import xgboost

        return xgboost
    sys.modules["sklearn"] = None  # an ImportError inside xgboost.compat
    try:
        import xgboost
    finally:
        del sys.modules["sklearn"]
    return xgboost
