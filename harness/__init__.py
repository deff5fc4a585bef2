"""The experiment harness around ``cyclegan``: specs, the run engine, tracking, evaluation and reports."""
