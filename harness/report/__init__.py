"""Comparison reports built only from the run store: statistics, plots, sample grids, md/html/csv."""

from harness.report.build import build_report

__all__ = ["build_report"]
