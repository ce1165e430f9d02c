"""A seeded, shuffling mini-batch iterator whose position can be saved and restored.

The order of epoch ``e`` is the permutation drawn by
``numpy.random.default_rng([seed, e])``: a pure function of the seed and the
epoch, so the whole random state of the iterator is ``(seed, epoch, position)``
— a few integers, JSON-serialisable, stored in a checkpoint. Restoring it
replays exactly the batches a straight-through run would have produced,
whatever else drew random numbers in between.
"""
from __future__ import annotations

import numpy as np

from .dataset import DataError, Dataset

STATE_VERSION = 1


class BatchIterator:
    """Mini-batches of a :class:`Dataset` (its images) or of any array, first axis = examples.

    ``for batch in it`` yields the rest of the current epoch, then the epoch
    counter advances; :meth:`next_batch` is the same stream without epoch
    boundaries. Every example appears exactly once per epoch; with
    ``drop_last`` the last ``n % batch_size`` examples of each epoch's order are
    skipped so that every batch is full. With ``return_indices`` each item is
    ``(batch, indices)``, to look up labels or factors.
    """

    def __init__(self, data, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = False, return_indices: bool = False):
        self.data = data.images if isinstance(data, Dataset) else data
        if not hasattr(self.data, "shape") or len(self.data.shape) < 1:
            raise TypeError(f"BatchIterator needs a Dataset or an array, got {type(data).__name__}")
        self.n = int(self.data.shape[0])
        if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        self.seed, self.return_indices = int(seed), bool(return_indices)
        self.limit = self.n - self.n % self.batch_size if self.drop_last else self.n
        if self.limit == 0:
            raise ValueError(f"no batch: {self.n} example(s) with batch_size={self.batch_size} "
                             f"and drop_last={self.drop_last}")
        self.epoch, self.position = 0, 0
        self._order, self._order_epoch = None, None

    def __len__(self) -> int:
        """Batches per epoch."""
        return -(-self.limit // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The example order of ``epoch`` (a permutation, or ``arange`` without shuffling)."""
        if self._order_epoch != epoch:
            self._order = (np.random.default_rng([self.seed, epoch]).permutation(self.n)
                           if self.shuffle else np.arange(self.n))
            self._order_epoch = epoch
        return self._order

    def next_batch(self):
        """The next batch (and its indices if ``return_indices``), crossing epochs as needed."""
        indices = self.order(self.epoch)[self.position:min(self.position + self.batch_size, self.limit)]
        self.position += len(indices)
        if self.position >= self.limit:
            self.epoch, self.position = self.epoch + 1, 0
        batch = self.data[indices]
        return (batch, indices) if self.return_indices else batch

    def __iter__(self):
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_batch()

    # ------------------------------------------------------------------ resumable state

    def state_dict(self) -> dict:
        """A JSON-serialisable snapshot: the seed, epoch and position, and what they assume."""
        return {"version": STATE_VERSION, "seed": self.seed, "epoch": self.epoch,
                "position": self.position, "n": self.n, "batch_size": self.batch_size,
                "shuffle": self.shuffle, "drop_last": self.drop_last}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` snapshot; refuses one taken over other data."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise DataError(f"not a BatchIterator state (version {STATE_VERSION}): {state!r:.200}")
        for key in ("n", "batch_size", "shuffle", "drop_last"):
            if state.get(key) != getattr(self, key):
                raise DataError(f"cannot resume: the saved iterator had {key}={state.get(key)!r}, "
                                f"this one has {key}={getattr(self, key)!r}; resume with the same "
                                "dataset and batch settings, or start a new run")
        epoch, position = state.get("epoch"), state.get("position")
        if not all(isinstance(v, int) and v >= 0 for v in (epoch, position, state.get("seed"))) \
                or position >= self.limit:
            raise DataError(f"corrupt BatchIterator state: epoch={epoch!r}, position={position!r}")
        self.seed, self.epoch, self.position = int(state["seed"]), epoch, position
        self._order_epoch = None
