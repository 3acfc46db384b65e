"""A preallocated key/value cache that owns its position.

Generation first runs the prompt through the model (prefill), then feeds one token per step (decode). The
cache keeps, for every layer, the keys and values of all tokens seen so far, so a decode step only computes
the new token's projections. Unlike caches that grow with ``torch.cat``, this one allocates its full
length once and writes into slots, and it keeps the bookkeeping that callers otherwise get wrong:

* ``length``: how many slots are filled (the next token goes into slot ``length``);
* ``key_valid``: which slots hold real tokens rather than left padding, per row;
* ``next_position``: the position id the next real token of each row gets (padding does not count, so a
  left-padded row numbers its tokens exactly as it would alone);
* ``has_padding``: whether any slot written so far was padding (then attention needs an explicit mask).

One object is the whole state: ``reset()`` clears it, nothing else has to be reset alongside.
:class:`KVCacheBase` holds this bookkeeping; :class:`KVCache` adds buffers of ``max_length`` slots for every
layer, ``ring_kv_cache.RingKVCache`` ring buffers for sliding-window layers.
"""

from __future__ import annotations

import torch


class KVCacheBase:
    """The slot bookkeeping every cache shares; subclasses own the key/value buffers (``write``, ``nbytes``).

    Slots are counted over the whole sequence, padding included: ``length`` slots are filled, ``key_valid``
    (batch, max_length) says which hold real tokens, ``next_position`` (batch,) is the position id of each row's
    next real token.
    """

    def __init__(self, batch_size: int, max_length: int, *, device: torch.device | str = "cpu") -> None:
        self.key_valid = torch.zeros(batch_size, max_length, dtype=torch.bool, device=device)
        self.next_position = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.max_length = max_length
        self.length = 0
        self._start = 0  # first slot of the tokens currently being processed
        # a Python flag rather than a look at key_valid: a compiled decode step can branch on it without
        # leaving its graph (it stays True after a rollback, which only costs an unneeded mask)
        self.has_padding = False

    @property
    def batch_size(self) -> int:
        return self.key_valid.shape[0]

    def nbytes(self) -> int:
        """Bytes held by the key/value buffers."""
        raise NotImplementedError

    def reset(self) -> None:
        self.key_valid.zero_()
        self.next_position.zero_()
        self.length = 0
        self._start = 0
        self.has_padding = False

    def append_tokens(self, attention_mask: torch.Tensor, padded: bool | None = None) -> tuple[int, torch.Tensor]:
        """Reserve slots for ``attention_mask.shape[1]`` new tokens (mask 1 = real token, 0 = padding).

        ``padded`` says whether the mask holds any 0 when the caller already knows (None: look at the mask).
        Returns the first reserved slot and the new tokens' position ids (batch, tokens). Layers then store
        their keys and values with :meth:`write`.
        """
        batch, n_new = attention_mask.shape
        if batch != self.batch_size:
            raise ValueError(f"the cache holds {self.batch_size} rows but the input has {batch}")
        if self.length + n_new > self.max_length:
            raise ValueError(
                f"KV cache overflow: {self.length} tokens cached + {n_new} new > max_length {self.max_length}; "
                "create the cache with a larger max_length (prompt length + max_new_tokens)"
            )
        mask = attention_mask.to(device=self.key_valid.device, dtype=torch.bool)
        start = self.length
        self.key_valid[:, start : start + n_new] = mask
        self.has_padding = self.has_padding or (not bool(mask.all()) if padded is None else padded)
        # real tokens count up from the row's next position; padding gets a harmless position
        positions = self.next_position[:, None] + mask.long().cumsum(dim=-1) - 1
        positions = positions.clamp(min=0)
        self.next_position += mask.sum(dim=-1)
        self.length = start + n_new
        self._start = start
        return start, positions

    def visible_keys(self, window: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validity (batch, keys) and absolute slots (keys,) of the keys :meth:`write` returns for a layer
        with this sliding ``window``; slots None means "slot i is key i" (the cache stores every slot)."""
        return self.key_valid[:, : self.length], None

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store one layer's new keys/values (batch, n_kv_groups, tokens, head_dim); return the keys/values the
        new queries attend to."""
        raise NotImplementedError

    def rollback(self, n_tokens: int) -> None:
        """Forget the newest ``n_tokens`` slots (speculative decoding drops a rejected draft this way)."""
        end = self.length - n_tokens
        if n_tokens < 0 or end < 0:
            raise ValueError(f"cannot roll back {n_tokens} of {self.length} cached tokens")
        self.next_position -= self.key_valid[:, end : self.length].sum(dim=-1)
        self.key_valid[:, end : self.length] = False
        self.length = self._start = end


class KVCache(KVCacheBase):
    """Every layer keeps all ``max_length`` slots, allocated once.

    Each layer has buffers of its own (``keys_per_layer[layer]``: batch, n_kv_groups, max_length, head_dim)
    rather than one tensor with a layer axis: a compiled decode step (``torch.compile``) turns a write into a
    slice of a shared tensor into a fresh copy of that whole tensor, once per layer, so the step would grow with
    the number of layers times the cache size; writes into separate buffers stay in place.
    """

    def __init__(
        self,
        n_layers: int,
        batch_size: int,
        n_kv_groups: int,
        head_dim: int,
        max_length: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        value_dim: int | None = None,
    ) -> None:
        super().__init__(batch_size, max_length, device=device)
        # value_dim != head_dim: multi-head latent attention stores its latent as "keys" and its shared
        # RoPE key as "values" (see nn/mla.py)
        shape = (batch_size, n_kv_groups, max_length, head_dim)
        self.keys_per_layer = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values_per_layer = [torch.zeros(shape[:-1] + (value_dim or head_dim,), dtype=dtype, device=device)
                                 for _ in range(n_layers)]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys_per_layer + self.values_per_layer)

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._start + keys.shape[2]
        k_buf, v_buf = self.keys_per_layer[layer], self.values_per_layer[layer]
        k_buf[:, :, self._start : end] = keys
        v_buf[:, :, self._start : end] = values
        return k_buf[:, :, :end], v_buf[:, :, :end]
