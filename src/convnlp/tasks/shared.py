"""What every task does the same way."""

from __future__ import annotations


def log_scalars(writer, prefix: str, result: dict, step: int) -> None:
    """Every number of a metrics dict to TensorBoard, as ``<prefix>/<key>``."""
    for key, value in result.items():
        if isinstance(value, (int, float)):
            writer.add_scalar(f"{prefix}/{key}", value, step)
