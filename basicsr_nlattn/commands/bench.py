"""``basicsr bench``: time and memory, in modes that share ``--num_feat``, ``--device``, ``--repeats`` and ``--json``.

Modes (``MODES``): ``attention`` (the default) times ENLCA and NLSA against exact attention and the official formula,
and the contrastive loss against a full sort (:mod:`basicsr_nlattn.tools.bench`); ``network`` (``--network NAME``)
times a whole network beside EDSR (:mod:`basicsr_nlattn.tools.bench_network`); ``floor`` (``--floor``) sets the
attention blocks against their arithmetic floor (:mod:`basicsr_nlattn.tools.bench_floor`). A flag of one mode
given to another is an error naming it. Adding a mode is one entry in ``MODES``: its selecting flag, its flags with
their defaults and its run.
"""
import argparse
from typing import Any, Callable, Dict, List, NamedTuple, Optional

from basicsr_nlattn.commands.help_format import default_text
from basicsr_nlattn.utils.errors import OptionError

HELP = ('time and memory of ENLCA against exact attention and the official formula, and of the contrastive loss '
        'against a full sort; with --network, of a whole network beside EDSR (training step, inference, an Urban100 '
        'image); with --floor, of the attention blocks against their arithmetic floor')


class Flag(NamedTuple):
    """A flag only one mode reads: parsed with default None (so a given flag is seen), then set to ``default`` when
    its mode runs without it. ``default_text`` describes a default the run works out itself (``default`` None)."""
    name: str  # e.g. '--sizes'
    default: Any
    help: str
    options: Dict[str, Any] = {}  # more add_argument keywords: type, nargs, metavar, action
    default_text: Optional[str] = None

    @property
    def dest(self) -> str:
        return self.name.lstrip('-')


class Mode(NamedTuple):
    name: str
    description: str  # the argument group's text in --help
    selector: Optional[str]  # the flag whose value selects this mode (one of ``flags``); None for the default mode
    flags: List[Flag]
    run: Callable[[argparse.Namespace], int]


def _run_attention(args: argparse.Namespace) -> int:
    args.num_feat = 64 if args.num_feat is None else args.num_feat
    if any(size < 1 for size in args.sizes + args.eval_sizes) or args.repeats < 1:
        raise OptionError('--sizes, --eval_sizes and --repeats must be >= 1')
    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools.bench import run_benchmarks
    run_benchmarks(
        args.sizes,
        args.num_feat,
        args.num_random_features,
        args.device,
        args.repeats,
        with_loss=not args.skip_loss,
        eval_sizes=[] if args.skip_eval else args.eval_sizes,
        json_path=args.json,
        plot_path=args.plot)
    return 0


def _run_network(args: argparse.Namespace) -> int:
    args.num_feat = 64 if args.num_feat is None else args.num_feat
    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools.bench_network import NetworkBenchSettings, run_network_benchmark
    batch = args.batch if args.batch is not None else 16 if args.device.startswith('cuda') else 2
    settings = NetworkBenchSettings(
        args.network,
        scale=args.scale,
        batch=batch,
        size=args.size,
        num_feat=args.num_feat,
        num_block=args.num_block,
        device=args.device,
        repeats=args.repeats,
        amp=args.amp,
        compile=args.compile,
        image_size=tuple(args.image_size) if args.image_size else None,
        tile=tuple(args.tile))
    run_network_benchmark(settings, json_path=args.json)
    return 0


def flag(name: str, default: Any, help: str, default_text: Optional[str] = None, **options: Any) -> Flag:
    """A :class:`Flag`; ``options`` are more ``add_argument`` keywords (type, nargs, metavar, action)."""
    return Flag(name, default, help, options, default_text)


ATTENTION_FLAGS = [
    flag('--sizes', [48, 100, 150], 'input sizes (pixels a side)', type=int, nargs='+'),
    flag('--num_random_features', 128, 'ENLCA m', type=int),
    flag('--skip_loss', False, 'skip the contrastive-loss comparison', action='store_true'),
    flag(
        '--eval_sizes', [100, 200],
        'input sizes of the ENLCA eval table (256 channels, ours against the official formula)',
        type=int,
        nargs='+'),
    flag('--skip_eval', False, 'skip the ENLCA eval table', action='store_true'),
    flag('--plot', None, 'also draw time and memory against the input size', metavar='OUT.png'),
]
NETWORK_FLAGS = [
    flag('--network', None, 'ENLCN, NLSN, CCLNN or EDSR: selects this mode', metavar='NAME'),
    flag('--scale', 4, 'upscale, 2, 3 or 4', type=int),
    flag('--batch', None, 'LR patches per training step', '2 on cpu, 16 on cuda', type=int),
    flag('--size', 48, 'LR patch side', type=int),
    flag('--num_block', 8, 'residual blocks', type=int),
    flag('--amp', None, 'bf16 or fp16: run the passes under torch.autocast', metavar='DTYPE'),
    flag('--compile', False, 'torch.compile both networks (timed after warm-up)', action='store_true'),
    flag(
        '--image_size',
        None,
        'LR size of the whole-image rows',
        'an Urban100 image, 1024x768 HR (384 512 at x2, 192 256 at x4)',
        type=int,
        nargs=2,
        metavar=('H', 'W')),
    flag(
        '--tile', [128, 32],
        'LR tile side and overlap of the tiled rows',
        type=int,
        nargs=2,
        metavar=('SIZE', 'OVERLAP')),
]


def _run_floor(args: argparse.Namespace) -> int:
    if args.num_feat is not None:
        raise OptionError('--num_feat: not read by the floor mode (selected by --floor), whose blocks are fixed: '
                          'NLSA(64) at 192x256, NLSA(256) and ENLCA(256) at 100x100')
    if args.repeats < 1 or args.matmul_size < 1:
        raise OptionError(f'--repeats and --matmul_size must be >= 1, got {args.repeats} and {args.matmul_size}')
    import basicsr_nlattn  # noqa: F401  (compat first, then the archs register)
    from basicsr_nlattn.tools.bench_floor import run_floor_benchmark
    run_floor_benchmark(args.device, args.repeats, args.matmul_size, json_path=args.json)
    return 0


FLOOR_FLAGS = [
    flag('--floor', False, 'selects this mode', action='store_true'),
    flag('--matmul_size', 2048, 'side of the square float32 matmul whose rate sets the floor', type=int),
]
MODES = [
    Mode(
        'attention', 'attention blocks (the default mode): ENLCA and NLSA against exact attention at each --sizes, '
        'the ENLCA eval table against the official formula, the contrastive loss against a full sort', None,
        ATTENTION_FLAGS, _run_attention),
    Mode(
        'network', "whole networks (--network NAME): a training step, an inference pass and one Urban100-sized image "
        "(whole, tiled, chopped) beside BasicSR's EDSR of the same --num_feat and --num_block (res_scale 0.1); the "
        "defaults are a CPU-sized trunk, the papers' is --num_feat 256 --num_block 32 --batch 16", '--network',
        NETWORK_FLAGS, _run_network),
    Mode(
        'floor', 'attention blocks against their arithmetic floor (--floor): NLSA(64) on a 192x256 image, NLSA(256) '
        'and ENLCA(256) at 100x100 in evaluation: multiply-adds, the matmul rate measured in the same run, the floor '
        '(their time at that rate), the measured time and the ratio, peak memory, the official formula beside',
        '--floor', FLOOR_FLAGS, _run_floor),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        '--num_feat',
        type=int,
        default=None,
        help='channels: of the attention block input (attention mode), of the trunk (network mode). Default: 64')
    parser.add_argument('--device', default='cpu', help='cpu or cuda')
    parser.add_argument('--repeats', type=int, default=3, help='timed passes per row (median)')
    parser.add_argument('--json', metavar='FILE', help='also write the rows as JSON')
    for mode in MODES:
        group = parser.add_argument_group(f'{mode.name} mode', mode.description)
        for flag in mode.flags:
            group.add_argument(
                flag.name,
                default=None,
                help=f'{flag.help}. Default: {flag.default_text or default_text(flag.default)}',
                **flag.options)


def selected_mode(args: argparse.Namespace) -> Mode:
    """The mode whose selector is given (else the default mode), after checking that no flag of another mode is
    given; fills in the defaults of the mode's flags that were not given."""
    given = {flag.dest for mode in MODES for flag in mode.flags if getattr(args, flag.dest) is not None}
    chosen = [mode for mode in MODES if mode.selector is not None and mode.selector.lstrip('-') in given]
    if len(chosen) > 1:
        raise OptionError(f"{chosen[1].selector}: selects the {chosen[1].name} mode, {chosen[0].selector} the "
                          f'{chosen[0].name} mode; give one')
    mode = chosen[0] if chosen else next(mode for mode in MODES if mode.selector is None)
    for other in MODES:
        for flag in other.flags:
            if other is not mode and flag.dest in given:
                selectors = ' or '.join(m.selector for m in MODES if m.selector)
                selected_by = f'selected by {mode.selector}' if mode.selector else f'without {selectors}'
                raise OptionError(f'{flag.name}: a flag of the {other.name} mode, not read by the {mode.name} mode '
                                  f'({selected_by})')
    for flag in mode.flags:
        if flag.dest not in given:
            setattr(args, flag.dest, flag.default)
    return mode


def run(args: argparse.Namespace) -> int:
    """Print the mode's tables (and write JSON); OptionError, naming the flag, for a flag the mode does not read or
    a value it cannot run."""
    return selected_mode(args).run(args)
