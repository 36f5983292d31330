"""Training data that a resumed run continues exactly: the sampler starts where the interrupted epoch stopped,
and each sample's augmentation is drawn from a seed of its own, not from a worker's running generator.

BasicSR's ``EnlargedSampler`` restarts an epoch from its first sample after a resume, and its workers seed Python's
and NumPy's generators once per epoch (``worker_init_fn``), so a crop or a flip depends on the worker that loaded
the sample and on how many samples it loaded before. Here the sampler yields :class:`SampleKey` (epoch, position in
the epoch's order, dataset index) and :class:`ResumableSamples` loads sample ``index`` with Python's, NumPy's and
torch's generators seeded by (manual_seed, epoch, position): the same sample gets the same augmentation in any
worker, with or without workers, resumed or not.
"""
import atexit
import logging
import signal
import time
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Union

import torch
from basicsr.data.data_sampler import EnlargedSampler
from torch.utils.data import Dataset, get_worker_info

from basicsr_nlattn.data.data_faults import DataFault, describe_fault
from basicsr_nlattn.utils.rng_states import seeded_rngs
from basicsr_nlattn.utils.stop_signals import ignore_stop_signals

BAD_SAMPLE_KEY = 'bad_sample'  # in each loaded sample with skip_bad: '' or the line of the sample it replaced
_SUBSTITUTE_TRIES = 16
_EXIT_GRACE_SECONDS = 1.0  # for a daemonic child to end on SIGTERM at exit before it is killed
_worker_setup_done = False


def _stop_workers_at_exit() -> None:
    """At the interpreter's exit, stop the daemonic child processes (data-loader workers) as multiprocessing's own
    exit handler would, SIGTERM, and kill those that ignore it; registered after that handler, this one runs first.

    Our workers ignore SIGTERM (:func:`ignore_stop_signals`), and multiprocessing's handler waits for every child
    it terminated: a worker whose iterator was never shut down (a load that failed in a test or a script that keeps
    the exception) would keep the process from ever exiting. Worker processes are not told apart from other
    daemonic children (Python drops a process's target once it started); those that honour SIGTERM end as before."""
    import multiprocessing
    children = [child for child in multiprocessing.active_children() if child.daemon]
    if not children:
        return
    if hasattr(signal, 'SIGCHLD'):  # torch's handler raises when a worker it still watches ends
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in children:
        child.terminate()
    deadline = time.monotonic() + _EXIT_GRACE_SECONDS
    for child in children:
        child.join(timeout=max(0.0, deadline - time.monotonic()))
    for child in children:
        if child.is_alive():
            child.kill()
            child.join(timeout=5)


atexit.register(_stop_workers_at_exit)


class SampleKey(NamedTuple):
    epoch: int
    position: int  # in the epoch's order over all ranks
    index: int  # in the dataset


def sample_seed(manual_seed: int, epoch: int, position: int) -> int:
    """The seed of one sample's augmentation: a function of the run's seed, the epoch and the position only."""
    return ((manual_seed * 1_000_003 + epoch) * 1_000_033 + position) % (2**63 - 1)


class ResumableSampler(EnlargedSampler):
    """BasicSR's ``EnlargedSampler`` (same order: ``randperm`` seeded by the epoch, every ``num_replicas``-th
    position from ``rank``) yielding :class:`SampleKey`, which can start an epoch after its first samples."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, ratio: int = 1) -> None:
        super().__init__(dataset, num_replicas, rank, ratio)
        self._resume_epoch: Optional[int] = None
        self._resume_consumed = 0

    def resume_at(self, epoch: int, consumed: int) -> None:
        """Passes over ``epoch`` skip this rank's first ``consumed`` samples, until ``set_epoch`` moves on (BasicSR's
        prefetcher makes an iterator it never uses before the first ``set_epoch``: the skip must outlive it)."""
        self._resume_epoch, self._resume_consumed = epoch, consumed

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self._resume_epoch is not None and epoch != self._resume_epoch:
            self._resume_epoch = None

    def _skipped(self) -> int:
        return self._resume_consumed if self._resume_epoch == self.epoch else 0

    def __iter__(self) -> Iterator[SampleKey]:
        generator = torch.Generator()
        generator.manual_seed(self.epoch)
        order = torch.randperm(self.total_size, generator=generator).tolist()
        positions = range(self.rank, self.total_size, self.num_replicas)[self._skipped():]
        size = len(self.dataset)
        return iter([SampleKey(self.epoch, position, order[position] % size) for position in positions])

    def __len__(self) -> int:
        return self.num_samples - self._skipped()


class ResumableSamples(Dataset):
    """A BasicSR dataset whose samples load seeded (training, :class:`SampleKey` keys) or as they are (validation,
    int keys), and whose read failures become :class:`DataFault` (one line) or, with ``skip_bad``, are replaced.

    Args:
        dataset: the BasicSR dataset (its ``opt``, ``paths`` and other attributes stay reachable through this one).
        label (str): ``datasets.<phase> (<name>)``, the start of every message.
        manual_seed (int): the run's seed, for :func:`sample_seed`.
        skip_bad (bool): replace an unreadable training sample by the next readable one in dataset order (its
            ``bad_sample`` entry says which it replaced); an unreadable validation sample is dropped beforehand by
            :meth:`drop_unreadable`.
    """

    def __init__(self, dataset: Dataset, label: str, manual_seed: int = 0, skip_bad: bool = False) -> None:
        self.dataset = dataset
        self.label = label
        self.manual_seed = manual_seed
        self.skip_bad = skip_bad
        self.backend: Dict[str, Any] = dict(getattr(dataset, 'io_backend_opt', None) or {})
        self.indices: Optional[List[int]] = None  # validation, after drop_unreadable

    def __getattr__(self, name: str) -> Any:
        if name == 'dataset' or name.startswith('__'):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __len__(self) -> int:
        return len(self.dataset) if self.indices is None else len(self.indices)

    def _load(self, index: int) -> Dict[str, Any]:
        try:
            return self.dataset[index]
        except DataFault:
            raise
        except Exception as error:  # noqa: B902  (any failure of one sample is a data fault)
            raise DataFault(describe_fault(self.dataset, self.backend, index, error, self.label)) from error

    def _load_or_substitute(self, index: int) -> Dict[str, Any]:
        try:
            sample = self._load(index)
            if self.skip_bad:
                sample[BAD_SAMPLE_KEY] = ''
            return sample
        except DataFault as fault:
            if not self.skip_bad:
                raise
            first_fault = str(fault)
        for step in range(1, _SUBSTITUTE_TRIES + 1):
            try:
                sample = self._load((index + step) % len(self.dataset))
            except DataFault:
                continue
            sample[BAD_SAMPLE_KEY] = first_fault
            return sample
        raise DataFault(f'{first_fault}; and the next {_SUBSTITUTE_TRIES} samples cannot be read either')

    def __getitem__(self, key: Union[SampleKey, int]) -> Dict[str, Any]:
        global _worker_setup_done
        if not _worker_setup_done and get_worker_info() is not None:
            ignore_stop_signals()
            _worker_setup_done = True
        if isinstance(key, SampleKey):
            with seeded_rngs(sample_seed(self.manual_seed, key.epoch, key.position)):
                return self._load_or_substitute(key.index)
        return self._load(key if self.indices is None else self.indices[key])

    def drop_unreadable(self, logger: logging.Logger) -> List[str]:
        """Validation: load every sample once; without ``skip_bad`` the first unreadable one raises
        :class:`DataFault`, with it the unreadable ones are left out (logged). Returns their lines."""
        kept, dropped = [], []
        for index in range(len(self.dataset)):
            try:
                self._load(index)
            except DataFault as fault:
                if not self.skip_bad:
                    raise
                logger.warning(f'{fault}; left out (skip_bad)')
                dropped.append(str(fault))
                continue
            kept.append(index)
        self.indices = kept
        return dropped
