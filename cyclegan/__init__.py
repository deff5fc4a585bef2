"""CycleGAN, faithful to the reference implementation, with every ablation switch.

Importable on its own: ``CycleGAN(config).train_step(batch)``, ``train(config, run_dir)``. Knows nothing about
experiments, W&B or Optuna (those live in ``harness``).
"""

from cyclegan.config import Config, ConfigError, resolve

__all__ = ["Config", "ConfigError", "resolve"]
