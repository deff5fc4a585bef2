"""Evaluation without downloaded weights: task metrics with exact answers on the synthetic benchmark, a
from-scratch domain classifier (translation score, KID) for any data set, and training-health flags."""

from cyclegan.metrics.evaluator import Evaluator
from cyclegan.metrics.health import health
from cyclegan.metrics.registry import REGISTRY, Metric, get, metric_names, primary_metric

__all__ = ["REGISTRY", "Evaluator", "Metric", "get", "health", "metric_names", "primary_metric"]
