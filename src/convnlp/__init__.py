"""convnlp: convolutional neural networks for text.

import convnlp
model = convnlp.load("outputs/train/<run>")   # see convnlp.api
model.predict(["a sentence", ...])
"""

__version__ = "0.1.0"
__all__ = ["load", "Predictor", "__version__"]


def __getattr__(name: str):
    # imported on first use: the command line (which imports this package) does not pay for torch here
    if name in ("load", "Predictor"):
        from convnlp import api

        return getattr(api, name)
    raise AttributeError(f"module 'convnlp' has no attribute {name!r}")
