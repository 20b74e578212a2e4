"""Full-ranking evaluation: top-K over all items with training items masked."""

from cranerec.eval.evaluator import EvalConfig, EvalResult, Evaluator
from cranerec.eval.metrics import METRICS, metrics_from_hits
from cranerec.utils.ranking import topk_items

__all__ = ["METRICS", "EvalConfig", "EvalResult", "Evaluator", "metrics_from_hits", "topk_items"]
