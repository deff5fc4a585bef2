"""The experiment engine: specs -> units -> a queue -> workers -> the run store (docs/RUNSTORE.md) and W&B.

An ablation and a sweep share them: one queue (an Optuna study: ``queue``), one worker loop
(``worker.work``) that runs a job's trials (``worker.Ablation``: enqueued runs;
``harness.sweep.worker.Search``: sampled ones), and ``worker.run_unit`` for each run. Import from the
modules; this package imports nothing, so ``harness --help`` does not pay for torch and Optuna.
"""
