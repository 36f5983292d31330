"""``basicsr train``'s pipeline: BasicSR's ``train_pipeline`` (options, folders, logs, data, model, iterations,
checkpoints, validation) with what a run of days on a shared cluster needs.

- Resume (:mod:`.resume`): the newest *readable* training state; a damaged one is named and passed over.
- Exact resume: each training state holds the RNG states of every rank and the data position; the sampler
  continues the interrupted epoch, each sample's augmentation has its own seed (:mod:`basicsr_nlattn.data`), and
  validation leaves the training generators as it found them.
- Preemption (:mod:`.preemption`): SIGTERM, SIGINT or SIGUSR1 stop the run after the current optimizer step, on
  all ranks (one collective per step in a distributed run); the training state and models of that iteration are
  saved, exit 75. During the start-up the run stops between phases without writing a state; after the last
  iteration the latest model's save completes, and the final validation is left to ``--auto_resume``.
- Temporary files of saves that a SIGKILL interrupted are removed when the next run starts (rank 0), before a
  fresh start archives the folder.
- Faults: an unreadable sample, a failed save or too many non-finite updates end the run with one line
  (:class:`RunStopped`), the files already written intact.
- ``logger.keep_states: N`` keeps the N newest training states.
"""
import contextlib
import datetime
import logging
import math
import time
from os import path as osp
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.prefetch_dataloader import CPUPrefetcher, CUDAPrefetcher
from basicsr.models import build_model
from basicsr.utils import (AvgTimer, MessageLogger, check_resume, get_env_info, get_root_logger, get_time_str,
                           make_exp_dirs, mkdir_and_rename)
from basicsr.utils.options import copy_opt_file, dict2str

from basicsr_nlattn.data import (BAD_SAMPLE_KEY, DataFault, ResumableSampler, ResumableSamples, data_fault_line,
                                 parse_skip_bad)
from basicsr_nlattn.models.nonfinite import NonFiniteStop
from basicsr_nlattn.training.preemption import (StoppableLoader, ValidationStopped, agreed_signal,
                                                stop_if_requested_while_starting, stopped_after_the_end)
from basicsr_nlattn.training.resume import choose_resume_state, load_training_state, prune_training_states
from basicsr_nlattn.training.run_options import RunOptions, parse_run_options
from basicsr_nlattn.utils.atomic_write import remove_temporaries
from basicsr_nlattn.utils.checkpoint_files import CheckpointWriteError
from basicsr_nlattn.utils.distributed import gather_on_all_ranks
from basicsr_nlattn.utils.errors import RunStopped
from basicsr_nlattn.utils.rng_states import capture_rng_states, preserved_rng_states, restore_rng_states
from basicsr_nlattn.utils.stop_signals import PREEMPTED_EXIT_CODE, StopRequest

FAULT_EXIT_CODE = 2
NONFINITE_EXIT_CODE = 3


class TrainData:
    """The training loader, its sampler and set, and the numbers of the run's length."""

    def __init__(self, opt: Dict[str, Any], options: RunOptions, logger: logging.Logger) -> None:
        dataset_opt = opt['datasets']['train']
        skip_bad, self.max_bad_fraction = parse_skip_bad('train', dataset_opt)
        ratio = dataset_opt.get('dataset_enlarge_ratio', 1)
        self.samples = ResumableSamples(
            build_dataset(dataset_opt), f"datasets.train ({dataset_opt['name']})",
            opt.get('manual_seed') or 0, skip_bad)
        self.sampler = ResumableSampler(self.samples, opt['world_size'], opt['rank'], ratio)
        self.loader = build_dataloader(
            self.samples,
            dataset_opt,
            num_gpu=opt['num_gpu'],
            dist=opt['dist'],
            sampler=self.sampler,
            seed=opt['manual_seed'])
        self.batch_size = dataset_opt['batch_size_per_gpu']
        iters_per_epoch = math.ceil(len(self.samples) * ratio / (self.batch_size * opt['world_size']))
        self.total_iters = options.total_iter
        self.total_epochs = math.ceil(self.total_iters / iters_per_epoch)
        self.position_key = {
            'world_size': opt['world_size'],
            'batch_size_per_gpu': self.batch_size,
            'dataset_size': len(self.samples),
            'enlarge_ratio': ratio
        }
        self.bad_samples: List[str] = []
        logger.info('Training statistics:'
                    f'\n\tNumber of train images: {len(self.samples)}'
                    f'\n\tDataset enlarge ratio: {ratio}'
                    f'\n\tBatch size per gpu: {self.batch_size}'
                    f"\n\tWorld size (gpu number): {opt['world_size']}"
                    f'\n\tRequire iter number per epoch: {iters_per_epoch}'
                    f'\n\tTotal epochs: {self.total_epochs}; iters: {self.total_iters}.')

    def note_bad_samples(self, batch: Dict[str, Any], logger: logging.Logger) -> None:
        """Log the samples ``skip_bad`` replaced in ``batch``; too many (per process) stop the run."""
        for line in batch.get(BAD_SAMPLE_KEY) or []:
            if line and line not in self.bad_samples:
                self.bad_samples.append(line)
                logger.warning(f'{line}; replaced by the next readable sample (skip_bad)')
        limit = max(1, int(self.max_bad_fraction * len(self.samples)))
        if len(self.bad_samples) > limit:
            raise RunStopped(
                f'datasets.train: {len(self.bad_samples)} unreadable samples, more than '
                f'skip_bad_max_fraction {self.max_bad_fraction} of {len(self.samples)}; last: '
                f'{self.bad_samples[-1]}', FAULT_EXIT_CODE)


def build_validation_loaders(opt: Dict[str, Any], logger: logging.Logger) -> List[Any]:
    """One loader per ``datasets.val*``; every sample is read once here, so an unreadable one stops the run (or,
    with ``skip_bad``, is left out) before training starts."""
    loaders = []
    for phase, dataset_opt in opt['datasets'].items():
        if phase == 'train':
            continue
        if phase.split('_')[0] != 'val':
            raise ValueError(f'Dataset phase {phase} is not recognized.')
        skip_bad, _ = parse_skip_bad(phase, dataset_opt)
        samples = ResumableSamples(
            build_dataset(dataset_opt), f"datasets.{phase} ({dataset_opt['name']})", skip_bad=skip_bad)
        samples.drop_unreadable(logger)
        loaders.append(
            build_dataloader(
                samples, dataset_opt, num_gpu=opt['num_gpu'], dist=opt['dist'], sampler=None, seed=opt['manual_seed']))
        logger.info(f"Number of val images/folders in {dataset_opt['name']}: {len(samples)}")
    return loaders


def _prefetcher(opt: Dict[str, Any], loader: Any, logger: logging.Logger) -> Any:
    mode = opt['datasets']['train'].get('prefetch_mode')
    if mode is None or mode == 'cpu':
        return CPUPrefetcher(loader)
    if mode == 'cuda':
        if opt['datasets']['train'].get('pin_memory') is not True:
            raise ValueError('Please set pin_memory=True for CUDAPrefetcher.')
        logger.info(f'Use {mode} prefetch dataloader')
        return CUDAPrefetcher(loader, opt)
    raise ValueError(f"Wrong prefetch_mode {mode}. Supported ones are: None, 'cuda', 'cpu'.")


def _shut_down_workers(prefetcher: Any) -> None:
    """Stop the data-loader workers of ``prefetcher``'s current iterator now, as its ``__del__`` would.

    Workers ignore the stop signals (a signal sent to the process group must not kill them mid-batch); when a run
    ends by an exception that keeps the iterator referenced, they would otherwise last until the interpreter's exit,
    where ``resumable_samples`` kills them after a second's grace. Asked by their iterator, they end at once."""
    shutdown = getattr(getattr(prefetcher, 'loader', None), '_shutdown_workers', None)
    if shutdown is not None:
        shutdown()


@contextlib.contextmanager
def _workers_shut_down_at_the_end(prefetcher: Any) -> Iterator[None]:
    """:func:`_shut_down_workers` when the block ends, by an exception or not."""
    try:
        yield
    finally:
        _shut_down_workers(prefetcher)


def _at_step_boundary(model: Any, current_iter: int) -> bool:
    """Whether ``current_iter`` ends an optimizer step (``train.accumulate``): only there is a state whole."""
    return current_iter % getattr(model, 'accumulate', 1) == 0


class TrainingRun:
    """One run of the loop: the model, its data, the saving and the stopping (``stop``: the run's stop request)."""

    def __init__(self, opt: Dict[str, Any], options: RunOptions, model: Any, data: TrainData, val_loaders: List[Any],
                 logger: logging.Logger, tb_logger: Any, stop: StopRequest) -> None:
        self.opt, self.options, self.model, self.data, self.val_loaders = opt, options, model, data, val_loaders
        self.logger, self.tb_logger, self.stop = logger, tb_logger, stop
        self.keep_states = options.keep_states
        self.device = getattr(model, 'device', torch.device('cpu'))
        self.first_save_logged = False
        self.pending_rng: Optional[Dict[str, Any]] = None
        self.epoch_samples = 0  # this rank's samples of the current epoch used so far
        self.last_saved = 0  # the iteration of the newest training state on disk (resumed from or saved)
        # (epoch, training state extras) at the last iteration, when no state was saved there
        self.end_state: Optional[Tuple[int, Dict[str, Any]]] = None

    def resume(self, state: Dict[str, Any]) -> Tuple[int, int]:
        """Optimizers, schedulers (and scalers) from ``state``; the data position and RNG states when it has them
        and they fit this run. Returns (epoch, iteration)."""
        self.model.resume_training(state)
        epoch, current_iter = state['epoch'], state['iter']
        self.last_saved = current_iter
        self.logger.info(f'Resuming training from epoch: {epoch}, iter: {current_iter}.')
        position = state.get('data_position')
        if position is not None and {k: position.get(k) for k in self.data.position_key} == self.data.position_key:
            self.data.sampler.resume_at(position['epoch'], position['samples'])
            epoch = position['epoch']
        else:
            self.logger.warning('Resume: the training state has no data position for this data, world size and '
                                'batch (a state of BasicSR, or another setting): the epoch starts from its first '
                                'sample, as in BasicSR')
        rng_states = state.get('rng_states')
        if rng_states is not None and len(rng_states) == self.opt['world_size']:
            self.pending_rng = rng_states[self.opt['rank']]
        else:
            self.logger.warning('Resume: the training state has no RNG states for this world size; the generators '
                                'continue from the seed')
        return epoch, current_iter

    def state_extras(self, epoch: int) -> Dict[str, Any]:
        """What a training state holds beside BasicSR's keys: the RNG states of all ranks (a collective) and the
        data position."""
        return {
            'rng_states': gather_on_all_ranks(capture_rng_states()),
            'data_position': dict(self.data.position_key, epoch=epoch, samples=self.epoch_samples),
        }

    def save(self, epoch: int, current_iter: int, extras: Optional[Dict[str, Any]] = None) -> None:
        """Models and a training state (with ``extras``, by default :meth:`state_extras` now); then
        ``logger.keep_states``. Raises RunStopped (one line) when a file cannot be written."""
        self.model.training_state_extras = self.state_extras(epoch) if extras is None else extras
        self.logger.info('Saving models and training states.')
        try:
            self.model.save(epoch, current_iter)
        except CheckpointWriteError as error:
            self.logger.error(f'{error}; the previous checkpoints are intact')
            raise RunStopped(f'{error}; the previous checkpoints are intact', FAULT_EXIT_CODE) from error
        self.last_saved = current_iter
        if self.opt['rank'] != 0:
            return
        folder = self.opt['path']['training_states']
        if not self.first_save_logged:
            path = osp.join(folder, f'{current_iter}.state')
            if osp.isfile(path):
                keep = 'all' if self.keep_states is None else self.keep_states
                self.logger.info(f'Training state {current_iter}.state: {osp.getsize(path) / 2**20:.1f} MB '
                                 f'(logger.keep_states: {keep})')
            self.first_save_logged = True
        deleted, warning = prune_training_states(folder, self.keep_states)
        if warning:
            self.logger.warning(warning)
        if deleted:
            self.logger.info(f"logger.keep_states: deleted {', '.join(osp.basename(p) for p in deleted)}")

    def validate(self, current_iter: int, stoppable: bool = False) -> None:
        """Each validation set (BasicSR's ``model.validation``); ``stoppable``: raise ValidationStopped before the
        next image once a stop signal is recorded."""
        if len(self.val_loaders) > 1:
            self.logger.warning('Multiple validation datasets are *only* supported by SRModel.')
        with preserved_rng_states():  # the loaders draw a seed; training continues as if validation had not run
            for loader in self.val_loaders:
                loader = StoppableLoader(loader, self.stop) if stoppable else loader
                self.model.validation(loader, current_iter, self.tb_logger, self.opt['val']['save_img'])

    def _stop_agreed(self, current_iter: int) -> Optional[str]:
        """The stop signal the ranks agree on at a step boundary, or None."""
        if not _at_step_boundary(self.model, current_iter):
            return None
        return agreed_signal(self.stop, self.device)

    def train(self, start_epoch: int, current_iter: int) -> None:
        """Iterations from ``current_iter`` + 1 to ``train.total_iter``, then the latest model and a last
        validation (BasicSR's order); raises RunStopped when the run stops early."""
        if current_iter >= self.data.total_iters:  # resumed from a state of the last iteration
            self.logger.info(f'No iteration left: the training state is of iter {current_iter}, train.total_iter '
                             f'{self.data.total_iters}.')
            current_iter += 1  # as BasicSR's loop leaves its counter
        else:
            msg_logger = MessageLogger(self.opt, current_iter, self.tb_logger)
            prefetcher = _prefetcher(self.opt, self.data.loader, self.logger)
            self.logger.info(f'Start training from epoch: {start_epoch}, iter: {current_iter}')
            start_time = time.time()
            current_iter = self._iterate(prefetcher, msg_logger, start_epoch, current_iter)
            consumed = str(datetime.timedelta(seconds=int(time.time() - start_time)))
            self.logger.info(f'End of training. Time consumed: {consumed}')
        self._finish(current_iter)

    def _finish(self, current_iter: int) -> None:
        """The latest model (its save completes whatever signal arrives), then the final validation, left with
        exit 75 when a stop signal arrived before it or arrives during it (:mod:`.preemption`)."""
        self.logger.info('Save the latest model.')
        try:
            self.model.save(epoch=-1, current_iter=-1)
        except CheckpointWriteError as error:
            raise RunStopped(f'{error}; the previous checkpoints are intact', FAULT_EXIT_CODE) from error
        if self.opt.get('val') is None:
            if self.stop.requested:
                self.logger.info(f'{self.stop.signal_name} received after the last iteration: the run had finished')
            return
        signal_name = agreed_signal(self.stop, self.device)
        if signal_name is None:
            try:
                self.validate(current_iter, stoppable=True)
                return
            except ValidationStopped:  # rank 0 alone, in a distributed run: the others do not validate
                signal_name = self.stop.signal_name
        if self.end_state is not None:  # else a state of the last iteration is on disk: saved, or resumed from
            epoch, extras = self.end_state
            self.save(epoch, self.data.total_iters, extras)
        stopped = stopped_after_the_end(signal_name, self.last_saved)
        self.logger.warning(str(stopped))
        raise stopped

    def _iterate(self, prefetcher: Any, msg_logger: MessageLogger, start_epoch: int, current_iter: int) -> int:
        """BasicSR's epochs and iterations with the saves, the agreed stop and validation; returns the iteration
        counter as BasicSR's loop leaves it (one past ``total_iter``)."""
        model, logger = self.model, self.logger
        data_timer, iter_timer = AvgTimer(), AvgTimer()
        save_freq, print_freq = self.options.save_checkpoint_freq, self.options.print_freq
        with _workers_shut_down_at_the_end(prefetcher):
            for epoch in range(start_epoch, self.data.total_epochs + 1):
                self.data.sampler.set_epoch(epoch)
                self.epoch_samples = self.data.sampler.num_samples - len(self.data.sampler)
                prefetcher.reset()
                if self.pending_rng is not None:  # after the loader drew its seed, as the interrupted run had
                    restore_rng_states(self.pending_rng)
                    self.pending_rng = None
                train_data = prefetcher.next()
                while train_data is not None:
                    data_timer.record()
                    current_iter += 1
                    if current_iter > self.data.total_iters:
                        break
                    self.epoch_samples += self.data.batch_size
                    self.data.note_bad_samples(train_data, logger)
                    model.update_learning_rate(current_iter, warmup_iter=self.options.warmup_iter)
                    model.feed_data(train_data)
                    try:
                        model.optimize_parameters(current_iter)
                    except NonFiniteStop as error:
                        logger.error(str(error))
                        self.save(epoch, current_iter)
                        raise RunStopped(str(error), NONFINITE_EXIT_CODE) from error
                    iter_timer.record()
                    if current_iter == 1:
                        msg_logger.reset_start_time()
                    if current_iter % print_freq == 0:
                        log_vars = {'epoch': epoch, 'iter': current_iter, 'lrs': model.get_current_learning_rate()}
                        log_vars.update({'time': iter_timer.get_avg_time(), 'data_time': data_timer.get_avg_time()})
                        log_vars.update(model.get_current_log())
                        msg_logger(log_vars)
                    if current_iter % save_freq == 0:
                        self.save(epoch, current_iter)
                    signal_name = self._stop_agreed(current_iter)
                    if signal_name:
                        if self.last_saved != current_iter:
                            self.save(epoch, current_iter)
                        line = (f'stopped by {signal_name} at iter {current_iter}: '
                                'training state and models saved; continue with --auto_resume')
                        logger.warning(line)
                        raise RunStopped(line, PREEMPTED_EXIT_CODE)
                    if current_iter == self.data.total_iters and self.last_saved != current_iter:
                        # what a stop after the last iteration saves (a collective: every rank is here)
                        self.end_state = (epoch, self.state_extras(epoch))
                    if self.options.val_freq is not None and current_iter % self.options.val_freq == 0:
                        self.validate(current_iter)
                    data_timer.start()
                    iter_timer.start()
                    train_data = prefetcher.next()
        return current_iter


def _resume_state(opt: Dict[str, Any]) -> Tuple[Optional[Dict[str, Any]], List[str]]:
    path, warnings = choose_resume_state(opt)
    if path is None:
        return None, warnings
    opt['path']['resume_state'] = path
    state = load_training_state(opt, path)
    check_resume(opt, state['iter'])
    return state, warnings


def _init_tb_logger(opt: Dict[str, Any]) -> Any:
    from basicsr.train import init_tb_loggers
    return init_tb_loggers(opt)


def _remove_interrupted_saves(opt: Dict[str, Any]) -> List[str]:
    """Rank 0: remove the temporary files of saves that a kill interrupted from the experiment folder, its models
    and its training states (before a fresh start archives the folder). Returns their paths."""
    if opt['rank'] != 0:
        return []
    return remove_temporaries([opt['path'][key] for key in ('experiments_root', 'models', 'training_states')])


def _log_removed(removed: List[str], experiments_root: str, logger: logging.Logger) -> None:
    if removed:
        names = ', '.join(osp.relpath(path, experiments_root) for path in removed)
        files = 'file' if len(removed) == 1 else 'files'
        logger.info(f'removed {len(removed)} temporary {files} left by an interrupted save: {names}')


def run_training(opt: Dict[str, Any], option_file: str, stop: StopRequest) -> None:
    """Train with parsed options (BasicSR's ``parse_options`` result, ``root_path`` set); ``stop``, installed by the
    caller, records the stop signals, which are checked between the phases of the start-up (:mod:`.preemption`)."""
    options = parse_run_options(opt)  # checked by the pre-flight pass: the one reading of the loop's keys
    stop_if_requested_while_starting(stop)
    resume_state, resume_warnings = _resume_state(opt)
    stop_if_requested_while_starting(stop)
    removed = _remove_interrupted_saves(opt)
    if resume_state is None:
        make_exp_dirs(opt)
        if options.use_tb_logger and 'debug' not in opt['name'] and opt['rank'] == 0:
            mkdir_and_rename(osp.join(opt['root_path'], 'tb_logger', opt['name']))
    copy_opt_file(option_file, opt['path']['experiments_root'])
    log_file = osp.join(opt['path']['log'], f"train_{opt['name']}_{get_time_str()}.log")
    logger = get_root_logger(logger_name='basicsr', log_level=logging.INFO, log_file=log_file)
    logger.info(get_env_info())
    logger.info(dict2str(opt))
    for warning in resume_warnings:
        logger.warning(warning)
    _log_removed(removed, opt['path']['experiments_root'], logger)
    tb_logger = _init_tb_logger(opt)
    try:
        stop_if_requested_while_starting(stop, logger)
        data = TrainData(opt, options, logger)
        stop_if_requested_while_starting(stop, logger)
        val_loaders = build_validation_loaders(opt, logger)
        stop_if_requested_while_starting(stop, logger)
        model = build_model(opt)
        stop_if_requested_while_starting(stop, logger)
        run = TrainingRun(opt, options, model, data, val_loaders, logger, tb_logger, stop)
        start_epoch, current_iter = run.resume(resume_state) if resume_state else (0, 0)
        stop_if_requested_while_starting(stop, logger)
        run.train(start_epoch, current_iter)
    except DataFault as error:
        line = data_fault_line(error)
        logger.error(line)
        raise RunStopped(line, FAULT_EXIT_CODE) from None
    finally:
        if tb_logger:
            tb_logger.close()
