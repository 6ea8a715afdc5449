"""convnlp: convolutional neural networks for text."""

__version__ = "0.1.0"
