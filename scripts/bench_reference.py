"""Side by side: the reference's own ``optimize_parameters`` against our plain and default steps.

Usage (repository root, PYTHONPATH including it):

    python scripts/bench_reference.py ../shared/reference-code [--preset cpu] [--size S] [--set k=v ...]
        [--rounds 40] [--warmup 5] [--repeats 1] [--threads N] [--device cpu|cuda]
        [--contestants reference,plain,fast,compiled,fast-bf16,compiled-bf16]

The reference's model code is imported from the checkout given (its ``models`` and ``util`` packages) and
built with the same architecture as the config. All contestants see identical random batches of the crop
size, one call each per round, in turn (reference, plain, fast, compiled, reference, ...), so machine load
hits them alike (on CUDA each call is timed between device synchronisations); each contestant's times become
one ``torch.utils.benchmark.Measurement`` (median, IQR). With ``--repeats R`` the whole interleaved
measurement is repeated and each ratio is reported as the median and range over the R repeats.
``fast-bf16`` and ``compiled-bf16`` (CUDA only) are the fast step under bf16 autocast with channels-last
tensors, eager or compiled. Not part of the package or its tests.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.utils import benchmark

from cyclegan.config import Config
from cyclegan.fast import FastStep
from cyclegan.model import CycleGAN
from harness.steptime import bench_config, random_batches, time_interleaved


def reference_model(checkout: Path, cfg: Config, device: torch.device):
    """The reference's CycleGANModel with the config's architecture on ``device``, in training mode (as the
    reference's own ``setup``: its networks are built on the CPU and then moved, before any Adam state)."""
    sys.path.insert(0, str(checkout.resolve()))
    networks = importlib.import_module("models.networks")
    model_cls = importlib.import_module("models.cycle_gan_model").CycleGANModel
    m, L, o = cfg.model, cfg.loss, cfg.optim
    if m.netD not in ("patch", "pixel"):
        raise SystemExit(f"model.netD={m.netD}: the reference has no such discriminator (patch, pixel only)")
    opt = SimpleNamespace(
        isTrain=True,
        checkpoints_dir="/tmp",
        name="bench",
        device=device,
        preprocess="crop",
        input_nc=3,
        output_nc=3,
        ngf=m.ngf,
        ndf=m.ndf,
        netG="resnet_6blocks",
        netD="n_layers" if m.netD == "patch" else "pixel",
        n_layers_D=m.n_layers_D,
        norm=m.norm,
        no_dropout=not m.dropout,
        init_type="normal",
        init_gain=m.init_gain,
        gan_mode=L.gan_mode,
        lambda_A=L.lambda_A,
        lambda_B=L.lambda_B,
        lambda_identity=L.lambda_identity,
        pool_size=cfg.train.pool_size,
        lr=o.lr,
        beta1=o.beta1,
        direction="AtoB",
    )
    model = model_cls(opt)
    if m.n_blocks != 6:  # define_G knows 6 and 9 blocks only: build the reference's own class with n_blocks
        norm = networks.get_norm_layer(m.norm)
        for name in ("netG_A", "netG_B"):
            net = networks.ResnetGenerator(3, 3, m.ngf, norm, not opt.no_dropout, n_blocks=m.n_blocks)
            networks.init_weights(net, "normal", m.init_gain)
            setattr(model, name, net)
        model.optimizer_G = torch.optim.Adam(
            [*model.netG_A.parameters(), *model.netG_B.parameters()], lr=o.lr, betas=(o.beta1, 0.999)
        )
    for name in ("netG_A", "netG_B", "netD_A", "netD_B"):
        getattr(model, name).to(device)
    return model


def reference_step(model):
    def step(batch: dict[str, torch.Tensor]) -> None:
        model.set_input({"A": batch["A"], "B": batch["B"], "A_paths": [], "B_paths": []})
        model.optimize_parameters()

    return step


def measure(
    steps: dict, batches: list, rounds: int, warmup: int, device: torch.device
) -> dict[str, benchmark.Measurement]:
    """``steptime.time_interleaved`` (one call per contestant per round, in turn, each between device
    synchronisations); each contestant's wall times become a ``torch.utils.benchmark.Measurement`` (its
    median, IQR and ``Compare`` table). ``Timer.timeit`` is not used per call: it runs the statement twice
    more as its own warm-up, which would break the alternation."""
    times = {name: t["wall"] for name, t in time_interleaved(steps, batches, rounds, warmup, device).items()}
    return {
        name: benchmark.Measurement(
            number_per_run=1,
            raw_times=values,
            task_spec=benchmark.TaskSpec(
                stmt="step(batch)",
                setup="pass",
                label="train step",
                description=name,
                num_threads=torch.get_num_threads(),
            ),
        )
        for name, values in times.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reference", type=Path, help="reference checkout (holds models/ and util/)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the bf16 contestants need cuda)")
    ap.add_argument("--contestants", default="reference,plain,fast,compiled")
    args = ap.parse_args()
    if not (args.reference / "models" / "cycle_gan_model.py").is_file():
        raise SystemExit(f"{args.reference}: no models/cycle_gan_model.py; pass the reference checkout")
    device = torch.device(args.device)
    overrides = dict(s.split("=", 1) for s in args.sets)
    cfg = bench_config(args.preset, args.size, {"train.device": args.device, **overrides})
    if args.threads or cfg.train.threads:
        torch.set_num_threads(args.threads or cfg.train.threads)
    names = args.contestants.split(",")
    factories = {
        "reference": lambda: reference_step(reference_model(args.reference, cfg, device)),
        "plain": lambda: CycleGAN(cfg, device).train_step,
        "fast": lambda: FastStep(CycleGAN(cfg, device), compile=False),
        "compiled": lambda: FastStep(CycleGAN(cfg, device), compile=True),
        "fast-bf16": lambda: FastStep(CycleGAN(cfg, device), amp="bf16", compile=False),
        "compiled-bf16": lambda: FastStep(CycleGAN(cfg, device), amp="bf16", compile=True),
    }
    steps = {}
    for name in names:
        tick = time.perf_counter()
        steps[name] = factories[name]()
        if isinstance(steps[name], FastStep) and steps[name].compile:
            steps[name](random_batches(cfg, 1, device, seed=99)[0])
            print(f"{name}: first call (torch.compile) {time.perf_counter() - tick:.1f} s")
    batches = random_batches(cfg, 4, device)
    ratios: dict[str, list[float]] = {n: [] for n in names if n != "reference"}
    print(
        f"preset {args.preset}, {cfg.data.crop_size} px, {cfg.model.n_blocks} blocks, ngf {cfg.model.ngf}, "
        f"batch {cfg.train.batch_size}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, "
        f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}"
    )
    for r in range(args.repeats):
        results = measure(steps, batches, args.rounds, args.warmup, device)
        benchmark.Compare(list(results.values())).print()
        for name in ratios:
            if "reference" in results:
                ratios[name].append(results["reference"].median / results[name].median)
        load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
        line = ", ".join(f"{n} {v[-1]:.2f}x" for n, v in ratios.items() if v)
        print(f"repeat {r + 1}/{args.repeats} (load {load}): reference / contestant, median wall: {line}")
    for name, values in ratios.items():
        if values:
            print(
                f"{name} vs reference over {len(values)} repeat(s): median {statistics.median(values):.2f}x, "
                f"range {min(values):.2f}-{max(values):.2f}x"
            )


if __name__ == "__main__":
    main()
