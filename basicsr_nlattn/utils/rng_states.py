"""The states of every random number generator a training process draws from, to save and restore them."""
import contextlib
import random
from typing import Any, Dict, Iterator

import numpy as np
import torch


def capture_rng_states() -> Dict[str, Any]:
    """Python's, NumPy's and torch's global generators (and CUDA's when initialised), in types that
    ``torch.load(weights_only=True)`` reads back (NumPy's key as a list of ints)."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    states: Dict[str, Any] = {
        'python': random.getstate(),
        'numpy': (name, keys.tolist(), int(position), int(has_gauss), float(cached_gaussian)),
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states['cuda'] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: Dict[str, Any]) -> None:
    """Set the generators to the states of :func:`capture_rng_states` (CUDA's only where both have it)."""
    version, internal, gauss = states['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gaussian = states['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(states['torch'])
    if 'cuda' in states and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.set_rng_state_all(states['cuda'])


@contextlib.contextmanager
def preserved_rng_states() -> Iterator[None]:
    """Whatever the block draws, the generators leave it in the state they entered it."""
    states = capture_rng_states()
    try:
        yield
    finally:
        restore_rng_states(states)


@contextlib.contextmanager
def seeded_rngs(seed: int) -> Iterator[None]:
    """Python's, NumPy's and torch's CPU generators seeded with ``seed`` inside the block, restored after it.

    Only torch's CPU generator: ``torch.manual_seed`` would also reseed the CUDA generators, which this block does
    not restore (and costs 0.2 ms a call on a CUDA build, queueing lazy seed calls)."""
    states = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states['python'])
        np.random.set_state(states['numpy'])
        torch.set_rng_state(states['torch'])
