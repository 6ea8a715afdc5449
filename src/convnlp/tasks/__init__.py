"""Tasks: each file holds its head, loss, metrics, encoding and prediction."""

from convnlp.tasks import tagging

TASKS = {"tagging": tagging}
