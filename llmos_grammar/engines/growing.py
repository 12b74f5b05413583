"""A cache layer whose keys and values live in buffers that grow by doubling.

transformers' DynamicLayer concatenates the whole cache with each step's new
columns, so a step copies every cached key and value of every layer. This
layer writes the new columns in place and hands out views of the used part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor
from transformers.cache_utils import DynamicLayer

MIN_CAPACITY = 256  # columns reserved at first


class GrowingLayer(DynamicLayer):
    """Keys and values of shape (batch, heads, columns, dim) in reserved buffers."""

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        self.device = key_states.device
        self._keys = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
        self._values = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))
        self.used = 0
        self._views()
        self.is_initialized = True

    def update(
        self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
    ) -> tuple[Tensor, Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = int(key_states.shape[-2])
        self._reserve(self.used + n)
        self._keys[:, :, self.used : self.used + n] = key_states
        self._values[:, :, self.used : self.used + n] = value_states
        self.used += n
        return self._views()

    def get_seq_length(self) -> int:
        return self.used if self.is_initialized else 0

    def replace(self, fn: Callable[[Tensor], Tensor]) -> None:
        """Replace the used keys and values by `fn` of them (a crop, a gather)."""
        if not self.is_initialized:
            return
        keys, values = self._views()
        self._keys, self._values = fn(keys), fn(values)
        self.used = int(self._keys.shape[2])
        self._views()

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of columns to remove")
        if self.is_initialized and tokens_to_remove:
            self.used = max(0, self.used + tokens_to_remove)
            self._views()

    def reset(self) -> None:
        self.used = 0
        if self.is_initialized:
            self._views()

    def _reserve(self, columns: int) -> None:
        capacity = int(self._keys.shape[2])
        if columns <= capacity:
            return
        capacity = max(columns, 2 * capacity, MIN_CAPACITY)
        self._keys = _grown(self._keys, capacity, self.used)
        self._values = _grown(self._values, capacity, self.used)

    def _views(self) -> tuple[Tensor, Tensor]:
        """Point `keys` and `values` at the used part of the buffers; returns them."""
        keys, values = self._keys[:, :, : self.used], self._values[:, :, : self.used]
        self.keys, self.values = keys, values
        return keys, values


def _grown(buffer: Tensor, capacity: int, used: int) -> Tensor:
    shape = (*buffer.shape[:2], capacity, buffer.shape[3])
    bigger = buffer.new_empty(shape)
    bigger[:, :, :used] = buffer[:, :, :used]
    return bigger
