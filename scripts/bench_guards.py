"""Per-iteration cost of the long-run guards of the training loop, against a plain training step (a benchmark).

What: ENLCN x4 at the CPU demo size (``options/demo/train_demo_x4.yml``: its network, ``batch_size_per_gpu``,
``gt_size`` and losses, the ENLCA contrastive term active), built with ``basicsr.models.build_model`` (num_gpu 0,
no launcher). The timed step is ``model.optimize_parameters(iter)`` on random LR/GT tensors, ``iter`` past the
contrastive ``start_iter``:

- plain: ``model.nonfinite_guard.check`` bypassed (returns None at once), no stop check;
- guarded: the real ``NonFiniteGuard.check`` in ``_optimizer_step``, then ``TrainingRun._stop_agreed`` inside
  ``StopRequest()``, as ``basicsr train`` does after every optimizer step.

How: warm-up, then plain and guarded steps interleaved (A B A B ...) ``--repeats`` times; medians per step, the
ratio guarded / plain - 1, and the guard's own time (``check`` alone, and the stop check alone, timed per call,
medians) as a percent of the plain step; the direct measures are the reliable ones on a noisy CPU. The data part
loads demo samples (made by ``scripts/make_demo_data.py`` in a temporary folder) from BasicSR's plain
``PairedImageDataset`` and through ``ResumableSamples`` (``seeded_rngs`` per sample), interleaved likewise.

Usage: python scripts/bench_guards.py [--repeats 150] [--samples 400] [--no-data] [--json FILE]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from os import path as osp
from typing import Any, Callable, Dict, List, Optional, Tuple

# isort: off
import basicsr_nlattn  # noqa: F401  (compat first: basicsr does not import on today's torchvision without it)
import torch
import yaml
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr_nlattn.data import ResumableSamples, SampleKey
from basicsr_nlattn.training.loop import TrainingRun
from basicsr_nlattn.utils.rng_states import seeded_rngs
from basicsr_nlattn.utils.stop_signals import StopRequest
# isort: on

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_OPTION = osp.join(ROOT, 'options', 'demo', 'train_demo_x4.yml')


def demo_options(workdir: str) -> Dict[str, Any]:
    """The demo option as ``parse_options`` leaves it for one CPU process, its paths under ``workdir``."""
    with open(DEMO_OPTION, encoding='utf-8') as file:
        opt = yaml.safe_load(file)
    opt.update(is_train=True, dist=False, num_gpu=0, rank=0, world_size=1)
    names = ('experiments_root', 'models', 'training_states', 'log', 'visualization')
    opt['path'].update({name: osp.join(workdir, 'experiments', name) for name in names})
    for phase, dataset in opt['datasets'].items():
        dataset.update(phase=phase, scale=opt['scale'])
        for key in ('dataroot_gt', 'dataroot_lq'):
            dataset[key] = osp.join(workdir, dataset[key])
    return opt


def timed(function: Callable[..., Any], times: List[float]) -> Callable[..., Any]:
    """``function``, appending the seconds of each call to ``times``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = function(*args, **kwargs)
        times.append(time.perf_counter() - start)
        return result

    return wrapper


def rngs_only(seed: int) -> None:
    with seeded_rngs(seed):
        pass


def ms(seconds: List[float]) -> float:
    return 1e3 * statistics.median(seconds)


def bench_step(opt: Dict[str, Any], repeats: int, warmup: int) -> Dict[str, float]:
    model = build_model(opt)
    train = opt['datasets']['train']
    batch, gt_size = train['batch_size_per_gpu'], train['gt_size']
    lq_size = gt_size // opt['scale']
    current_iter = opt['train']['contrastive_opt']['start_iter'] + 1  # fixed: no redraw or schedule change between
    model.feed_data({'lq': torch.rand(batch, 3, lq_size, lq_size), 'gt': torch.rand(batch, 3, gt_size, gt_size)})
    guard = model.nonfinite_guard
    check_times: List[float] = []
    stop_times: List[float] = []
    checked, bypassed = timed(guard.check, check_times), (lambda *args, **kwargs: None)
    run = types.SimpleNamespace(model=model, device=model.device)  # what _stop_agreed reads of a TrainingRun
    stop_agreed = timed(TrainingRun._stop_agreed, stop_times)
    plain: List[float] = []
    guarded: List[float] = []
    with StopRequest() as stop:
        for number in range(warmup + repeats):
            for guard_on, times in ((False, plain), (True, guarded)):
                guard.check = checked if guard_on else bypassed
                start = time.perf_counter()
                model.optimize_parameters(current_iter)
                if guard_on and stop_agreed(run, stop, current_iter):
                    raise RuntimeError('a stop signal arrived during the benchmark')
                if number >= warmup:
                    times.append(time.perf_counter() - start)
            if number == warmup - 1:
                check_times.clear()
                stop_times.clear()
    if 'l_contrast' not in model.log_dict:
        raise RuntimeError('the contrastive term is not active in the timed step')
    plain_ms, guarded_ms = ms(plain), ms(guarded)
    return {
        'plain_step_ms': plain_ms,
        'guarded_step_ms': guarded_ms,
        'ratio_percent': 100 * (guarded_ms / plain_ms - 1),
        'check_ms': ms(check_times),
        'check_percent': 100 * ms(check_times) / plain_ms,
        'stop_check_ms': ms(stop_times),
        'stop_check_percent': 100 * ms(stop_times) / plain_ms,
        'parameters': sum(p.numel() for p in model.net_g.parameters()),
    }


def bench_data(opt: Dict[str, Any], workdir: str, repeats: int) -> Dict[str, float]:
    output = osp.join(workdir, 'datasets', 'demo')
    command = [sys.executable, osp.join(ROOT, 'scripts', 'make_demo_data.py'), '--output', output, '--scales', '4']
    subprocess.run(command, check=True, capture_output=True)
    dataset = build_dataset(opt['datasets']['train'])
    samples = ResumableSamples(dataset, 'datasets.train (demo_train)', opt['manual_seed'])
    plain: List[float] = []
    seeded: List[float] = []
    rngs: List[float] = []
    for position in range(repeats + 10):
        index = position % len(dataset)
        for times, load in ((plain, lambda: dataset[index]), (seeded, lambda: samples[SampleKey(0, position, index)]),
                            (rngs, lambda: rngs_only(position))):
            start = time.perf_counter()
            load()
            if position >= 10:
                times.append(time.perf_counter() - start)
    plain_ms, seeded_ms = ms(plain), ms(seeded)
    return {
        'plain_sample_ms': plain_ms,
        'seeded_sample_ms': seeded_ms,
        'sample_ratio_percent': 100 * (seeded_ms / plain_ms - 1),
        'seeded_rngs_ms': ms(rngs),
        'seeded_rngs_percent': 100 * ms(rngs) / plain_ms,
        'batch_size': opt['datasets']['train']['batch_size_per_gpu'],
    }


def table_rows(r: Dict[str, Any]) -> List[Tuple[str, float, Optional[float], str]]:
    """(measure, ms, percent, of what) per line of the printed table."""
    rows = [('plain step (guard bypassed)', r['plain_step_ms'], None, ''),
            ('guarded step (+ stop check)', r['guarded_step_ms'], r['ratio_percent'], 'plain step'),
            ('`NonFiniteGuard.check` alone', r['check_ms'], r['check_percent'], 'plain step'),
            ('`_stop_agreed` alone', r['stop_check_ms'], r['stop_check_percent'], 'plain step')]
    if 'plain_sample_ms' in r:
        batch_ms = r['batch_size'] * r['seeded_rngs_ms']
        rows += [
            ('plain sample load (PairedImageDataset)', r['plain_sample_ms'], None, ''),
            ('seeded sample load (ResumableSamples)', r['seeded_sample_ms'], r['sample_ratio_percent'], 'plain sample'),
            ('`seeded_rngs` alone', r['seeded_rngs_ms'], r['seeded_rngs_percent'], 'plain sample'),
            (f"`seeded_rngs` x batch ({r['batch_size']})", batch_ms, 100 * batch_ms / r['plain_step_ms'], 'plain step')
        ]
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=150, help='timed pairs of steps (plain, guarded)')
    parser.add_argument('--warmup', type=int, default=5, help='untimed pairs of steps first')
    parser.add_argument('--samples', type=int, default=400, help='timed sample loads of each kind')
    parser.add_argument('--no-data', action='store_true', help='skip the data part')
    parser.add_argument('--threads', type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument('--json', metavar='FILE', help='write the numbers to FILE')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as workdir:
        opt = demo_options(workdir)
        results: Dict[str, Any] = {'threads': args.threads, 'repeats': args.repeats, 'torch': torch.__version__}
        results.update(bench_step(opt, args.repeats, args.warmup))
        if not args.no_data:
            results.update(bench_data(opt, workdir, args.samples), samples=args.samples)
    print(f"\nENLCN x4 demo ({results['parameters']} parameters), {args.threads} threads, {args.repeats} pairs; "
          'medians\n\n| measure | ms | % | of |\n|---|---:|---:|---|')
    for label, value, percent, of in table_rows(results):
        print(f"| {label} | {value:.4g} | {'' if percent is None else f'{percent:+.3g}'} | {of} |")
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as file:
            json.dump(results, file, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
