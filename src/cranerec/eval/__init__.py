"""Full-ranking evaluation: top-K over all items with training items masked."""

from cranerec.eval.evaluator import EvalConfig, EvalResult, Evaluator, topk_items
from cranerec.eval.metrics import METRICS, metrics_from_hits

__all__ = ["METRICS", "EvalConfig", "EvalResult", "Evaluator", "metrics_from_hits", "topk_items"]
