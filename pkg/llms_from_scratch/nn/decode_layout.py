"""A decoding copy of a model: the same weights, multiplied by the kernels a plan names.

A decode step multiplies one activation row per sequence by every weight matrix, so it is bound by how fast the
weights stream from memory, and which matrix-product kernel streams them fastest differs between CPUs. This
module holds the candidates and builds a model that uses the ones a :class:`DecodePlan` chose;
:mod:`.autotune` measures them on the running machine and makes the plan.

Candidate kernels for ``rows @ weight.T + bias`` (:data:`KERNELS`):

* ``"linear"``: ``F.linear``, the plain path, always available;
* ``"split"``: for 1 to :data:`SPLIT_MAX_ROWS` rows, the row-major weight viewed as :data:`SPLIT_PARTS` blocks of
  rows and multiplied in one ``torch.bmm`` (no copy: a row-major matrix already is those blocks);
* ``"onednn"``: PyTorch's oneDNN linear kernel, a private op, offered only where this PyTorch has it.

Candidate layouts: layers that read the same input (the query, key and value projections; SwiGLU's gate and up
projections) as one product over their weights stacked into one matrix (:class:`FusedQKVAttention`,
:class:`FusedGateUpSwiGLU`), or as separate products.

:func:`build_decoding_model` returns a new model and leaves the given one as it was; the new one shares every
weight with it except the stacked ones, which it owns. Its linear layers use their kernel only for exactly the
number of rows it was chosen for, in the dtype it was chosen in, with autograd off; anything else (prefill,
training, a model moved to another dtype) takes ``F.linear``.

>>> plan = DecodePlan(rows=1, dtype=torch.float32, choices={"linear 50257x768": "onednn"})
>>> fast = build_decoding_model(model, plan)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .attention import GroupedQueryAttention
from .ffn import SwiGLU

SPLIT_MAX_ROWS = 4  # the split product is a candidate up to this many input rows
SPLIT_PARTS = 4  # row blocks per weight
PLAIN = "linear"  # the kernel of the plain path
SEPARATE = "separate"  # the choice for a projection group that stays as separate layers


def split_linear(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``rows @ weight.T + bias`` for rows (M, in) and a weight (out, in), as one ``torch.bmm`` over
    :data:`SPLIT_PARTS` blocks of the weight's rows. Returns (M, out)."""
    out_features, in_features = weight.shape
    if not weight.is_contiguous() or out_features < SPLIT_PARTS:
        return F.linear(rows, weight, bias)  # the blocks are views of a row-major weight only
    m = rows.shape[0]
    main = out_features - out_features % SPLIT_PARTS  # rows that split evenly; the rest (< SPLIT_PARTS) go alone
    blocks = weight[:main].view(SPLIT_PARTS, main // SPLIT_PARTS, in_features)  # a view: no copy
    # (parts, out / parts, in) @ (parts, in, M) -> (parts, out / parts, M), which is (main, M) row by row
    y = torch.bmm(blocks, rows.t().expand(SPLIT_PARTS, in_features, m)).view(main, m)
    if main < out_features:
        y = torch.cat([y, weight[main:] @ rows.t()])  # (out, M)
    y = y.t()  # (M, out)
    return y + bias if bias is not None else y


def _find_onednn_linear() -> Callable | None:
    """PyTorch's oneDNN linear op (the one ``torch.compile`` calls on CPUs), or None in builds without it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN_LINEAR = _find_onednn_linear()


def onednn_linear(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``rows @ weight.T + bias`` by oneDNN's kernel. A private op: the autotuner offers it only where it exists
    and gives ``F.linear``'s values on the real shapes (:func:`kernel_candidates`, :mod:`.autotune`)."""
    return _ONEDNN_LINEAR(rows, weight, bias, "none", [], "")


KERNELS: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]] = {
    PLAIN: F.linear,
    "split": split_linear,
    "onednn": onednn_linear,
}


def available_kernels() -> list[str]:
    """The kernels this PyTorch build can run (the oneDNN one is missing from builds without it)."""
    return [name for name in KERNELS if name != "onednn" or _ONEDNN_LINEAR is not None]


def kernel_candidates(rows: int, weight: torch.Tensor) -> list[str]:
    """The kernels worth trying for ``rows`` input rows times ``weight``; the plain one always comes first."""
    if weight.device.type != "cpu":
        return [PLAIN]
    too_many_rows = rows > SPLIT_MAX_ROWS or weight.shape[0] < SPLIT_PARTS
    return [name for name in available_kernels() if not (name == "split" and too_many_rows)]


@dataclass(frozen=True)
class DecodePlan:
    """Which kernel each kind of layer uses when decoding ``rows`` input rows per product in ``dtype``.

    ``choices`` maps a site key (:func:`linear_key`, :func:`qkv_key`, :func:`gate_up_key`) to a kernel name;
    a projection group may also be :data:`SEPARATE`. A key that is missing takes the plain path.
    """

    rows: int
    dtype: torch.dtype
    choices: dict[str, str] = field(default_factory=dict)

    def is_plain(self) -> bool:
        """True if every choice is the plain path (so the decoding model is the model itself)."""
        return all(choice == plain_choice(key) for key, choice in self.choices.items())


def plain_choice(key: str) -> str:
    """The plain path for a site key: :data:`PLAIN` for a linear layer, :data:`SEPARATE` for a projection group."""
    return PLAIN if key.startswith("linear ") else SEPARATE


def _bias_suffix(layer: nn.Linear) -> str:
    return " bias" if layer.bias is not None else ""


def linear_key(layer: nn.Linear) -> str:
    """``"linear {out}x{in}"`` (plus ``" bias"``): the layers that share a key share a kernel choice."""
    return f"linear {layer.out_features}x{layer.in_features}{_bias_suffix(layer)}"


def _group_key(kind: str, layers: Sequence[nn.Linear]) -> str | None:
    """The key of layers fusable into one product, or None (not all plain ``nn.Linear``, or mixed biases)."""
    if any(type(layer) is not nn.Linear for layer in layers):
        return None
    if len({layer.bias is not None for layer in layers}) != 1 or len({layer.in_features for layer in layers}) != 1:
        return None
    sizes = "+".join(str(layer.out_features) for layer in layers)
    return f"{kind} {sizes}x{layers[0].in_features}{_bias_suffix(layers[0])}"


def qkv_key(attention: nn.Module) -> str | None:
    """The key of an attention block's q/k/v projections as one group (None where they cannot be fused)."""
    if type(attention) is not GroupedQueryAttention:
        return None
    return _group_key("qkv", [attention.W_query, attention.W_key, attention.W_value])


def gate_up_key(ffn: nn.Module) -> str | None:
    """The key of a SwiGLU block's gate and up projections as one group (None where they cannot be fused)."""
    if type(ffn) is not SwiGLU:
        return None
    return _group_key("gate_up", [ffn.fc1, ffn.fc2])


def decode_sites(model: nn.Module) -> tuple[dict[str, list[nn.Linear]], dict[str, list[list[nn.Linear]]]]:
    """What a plan chooses for: the model's plain linear layers by key, and its projection groups by key (each
    group as its layers, in output order)."""
    linears: dict[str, list[nn.Linear]] = {}
    groups: dict[str, list[list[nn.Linear]]] = {}
    for module in model.modules():
        if type(module) is nn.Linear:
            linears.setdefault(linear_key(module), []).append(module)
        if (key := qkv_key(module)) is not None:
            groups.setdefault(key, []).append([module.W_query, module.W_key, module.W_value])
        elif (key := gate_up_key(module)) is not None:
            groups.setdefault(key, []).append([module.fc1, module.fc2])
    return linears, groups


class TunedLinear(nn.Module):
    """A linear layer whose product runs on the kernel ``kernel`` for exactly ``rows`` input rows.

    Other row counts, another dtype than the one it was chosen in, a non-CPU tensor or autograd on take
    ``F.linear``, so prefill and training always run the plain path.
    """

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, kernel: str, rows: int) -> None:
        super().__init__()
        if kernel not in available_kernels():
            raise ValueError(f"kernel {kernel!r} is not available here; choose one of {available_kernels()}")
        self.weight = weight
        self.bias = bias
        self.kernel = kernel
        self.rows = rows
        self.tuned_dtype = weight.dtype

    @classmethod
    def from_linear(cls, layer: nn.Linear, kernel: str, rows: int) -> TunedLinear:
        """A layer with ``layer``'s own parameters (the same objects: nothing is copied)."""
        return cls(layer.weight, layer.bias, kernel, rows)

    @classmethod
    def stacked(cls, layers: Sequence[nn.Linear], kernel: str, rows: int) -> TunedLinear:
        """One layer computing all of ``layers`` at once: their weights (and biases) stacked into new parameters,
        outputs side by side in the order given."""
        weight = torch.cat([layer.weight.detach() for layer in layers])  # (sum of out_features, in)
        bias = torch.cat([layer.bias.detach() for layer in layers]) if layers[0].bias is not None else None
        trainable = layers[0].weight.requires_grad
        return cls(nn.Parameter(weight, requires_grad=trainable),
                   None if bias is None else nn.Parameter(bias, requires_grad=trainable), kernel, rows)

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        if (torch.is_grad_enabled() or x.dtype != self.tuned_dtype or w.dtype != self.tuned_dtype
                or x.device.type != "cpu" or x.numel() != self.rows * w.shape[1]):
            return F.linear(x, w, self.bias)
        y = KERNELS[self.kernel](x.reshape(self.rows, w.shape[1]), w, self.bias)  # (..., in) -> (rows, in)
        return y.view(*x.shape[:-1], w.shape[0])

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"kernel={self.kernel!r}, rows={self.rows}")


class Columns(nn.Module):
    """Columns ``start:stop`` of the last dimension: one projection's share of a stacked product's output."""

    def __init__(self, start: int, stop: int) -> None:
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., self.start : self.stop]  # a view; (..., stop - start)

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


def _take_over(new: nn.Module, old: nn.Module) -> None:
    """Give ``new`` (just initialised as a bare ``nn.Module``) the settings, submodules, parameters and buffers of
    ``old``, shared, not copied. The parent class's constructor would build new weights; these are ``old``'s."""
    for name, value in vars(old).items():
        if not name.startswith("_"):  # settings such as n_heads or sliding_window, and the training flag
            setattr(new, name, value)
    for name, child in old.named_children():
        setattr(new, name, child)
    for name, param in old.named_parameters(recurse=False):
        new.register_parameter(name, param)
    saved = old.state_dict(keep_vars=True)
    for name, buf in old.named_buffers(recurse=False):
        new.register_buffer(name, buf, persistent=name in saved)


def _split_columns(sizes: Sequence[int]) -> list[Columns]:
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return [Columns(start, start + size) for start, size in zip(starts, sizes)]


class FusedQKVAttention(GroupedQueryAttention):
    """:class:`GroupedQueryAttention` whose query, key and value come from one product.

    ``qkv`` computes all three side by side (a :class:`TunedLinear` over the stacked weights, or any layer with the
    same outputs, such as a quantized one); ``W_query``, ``W_key`` and ``W_value`` become :class:`Columns` of its
    output, so the inherited ``forward`` runs unchanged on it. Built from an attention block (whose norms and
    output projection it shares); the block itself is left as it was.
    """

    def __init__(self, attention: GroupedQueryAttention, qkv: nn.Module) -> None:
        nn.Module.__init__(self)  # not GroupedQueryAttention.__init__: the weights come from `attention`
        _take_over(self, attention)
        self.qkv = qkv
        projections = self.projections(attention)
        self.W_query, self.W_key, self.W_value = _split_columns([p.out_features for p in projections])

    @staticmethod
    def projections(attention: GroupedQueryAttention) -> list[nn.Module]:
        """The layers whose outputs ``qkv`` stacks, in order."""
        return [attention.W_query, attention.W_key, attention.W_value]

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return super().forward(self.qkv(x), *args, **kwargs)  # the projections read (batch, tokens, q + k + v)


class FusedGateUpSwiGLU(SwiGLU):
    """:class:`SwiGLU` whose gate and up projections come from one product (``gate_up``); ``fc1`` and ``fc2``
    become :class:`Columns` of its output, so the inherited ``forward`` runs unchanged on it."""

    def __init__(self, ffn: SwiGLU, gate_up: nn.Module) -> None:
        nn.Module.__init__(self)  # not SwiGLU.__init__: the weights come from `ffn`
        _take_over(self, ffn)
        self.gate_up = gate_up
        self.fc1, self.fc2 = _split_columns([ffn.fc1.out_features, ffn.fc2.out_features])

    @staticmethod
    def projections(ffn: SwiGLU) -> list[nn.Module]:
        """The layers whose outputs ``gate_up`` stacks, in order."""
        return [ffn.fc1, ffn.fc2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.gate_up(x))  # fc1 and fc2 read (..., 2 * hidden_dim)


def structural_copy(model: nn.Module) -> nn.Module:
    """A new module tree holding the very same tensors as ``model``: only the modules are new."""
    memo: dict[int, object] = {}
    for module in model.modules():
        tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False), *vars(module).values()]
        memo.update((id(t), t) for t in tensors if isinstance(t, torch.Tensor))
    return copy.deepcopy(model, memo)


def _fused_block(module: nn.Module, plan: DecodePlan) -> nn.Module | None:
    """The fused stand-in for ``module`` if the plan stacks its projections, else None."""
    for key_of, fused_class in ((qkv_key, FusedQKVAttention), (gate_up_key, FusedGateUpSwiGLU)):
        key = key_of(module)
        if key is not None and plan.choices.get(key, SEPARATE) != SEPARATE:
            stacked = TunedLinear.stacked(fused_class.projections(module), plan.choices[key], plan.rows)
            return fused_class(module, stacked)
    return None


def build_decoding_model(model: nn.Module, plan: DecodePlan) -> nn.Module:
    """A model that decodes with ``plan``'s kernels: ``model`` itself where the plan is all plain, else a new one
    that shares ``model``'s weights (the stacked projections are its own); ``model`` is left as it was."""
    if plan.is_plain():
        return model
    fast = structural_copy(model)
    for parent in list(fast.modules()):  # first the blocks whose projections are stacked ...
        for name, child in list(parent.named_children()):
            fused = _fused_block(child, plan)
            if fused is not None:
                setattr(parent, name, fused)
    for parent in list(fast.modules()):  # ... then every remaining plain linear layer, theirs included
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and (choice := plan.choices.get(linear_key(child), PLAIN)) != PLAIN:
                setattr(parent, name, TunedLinear.from_linear(child, choice, plan.rows))
    return fast
