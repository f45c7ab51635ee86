"""Parameter-shape lists: one tensor, many small tensors, and real models' shapes.

GPT-2 small and ResNet-50 are written out from their architectures (no
transformers or torchvision needed): what matters to an optimizer step is the
list of tensor sizes, not the model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Workload:
    name: str  # the key used on the command line and in JSON
    label: str
    shapes: tuple[Shape, ...]

    @property
    def num_tensors(self) -> int:
        return len(self.shapes)

    @property
    def numel(self) -> int:
        return sum(math.prod(s) for s in self.shapes)


def gpt2_small_shapes() -> list[Shape]:
    """GPT-2 small (124M params, 148 tensors), in the order of its named_parameters()."""
    d, vocab, context, layers = 768, 50257, 1024, 12
    shapes: list[Shape] = [(vocab, d), (context, d)]  # wte, wpe
    for _ in range(layers):
        shapes += [(d,), (d,)]  # ln_1 weight, bias
        shapes += [(d, 3 * d), (3 * d,)]  # attn.c_attn (Conv1D: in x out) + bias
        shapes += [(d, d), (d,)]  # attn.c_proj
        shapes += [(d,), (d,)]  # ln_2
        shapes += [(d, 4 * d), (4 * d,)]  # mlp.c_fc
        shapes += [(4 * d, d), (d,)]  # mlp.c_proj
    shapes += [(d,), (d,)]  # ln_f
    return shapes


def resnet50_shapes() -> list[Shape]:
    """ResNet-50 (25.6M params, 161 tensors): convs, batch-norm weight + bias, fc."""
    shapes: list[Shape] = [(64, 3, 7, 7), (64,), (64,)]  # conv1, bn1

    def conv_bn(out_ch: int, in_ch: int, k: int) -> None:
        shapes.extend([(out_ch, in_ch, k, k), (out_ch,), (out_ch,)])

    in_ch = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            conv_bn(width, in_ch, 1)
            conv_bn(width, width, 3)
            conv_bn(4 * width, width, 1)
            if block == 0:
                conv_bn(4 * width, in_ch, 1)  # downsample
            in_ch = 4 * width
    shapes += [(1000, 2048), (1000,)]  # fc
    return shapes


_NAMED = {
    "gpt2": ("GPT-2 small shapes", gpt2_small_shapes),
    "resnet50": ("ResNet-50 shapes", resnet50_shapes),
}

# 16M and 64M are decimal, as in the table (16M fp32 Adam = 448 MB a step).
_SUFFIX = {"": 1, "k": 1_000, "m": 1_000_000}
_GENERIC = re.compile(r"^(?:(\d+)x)?(\d+)([km]?)$")

QUICK = ("16M", "500x1000")
FULL = ("16M", "64M", "gpt2", "500x1000", "resnet50")


def parse(name: str) -> Workload:
    """A named model ("gpt2", "resnet50") or "[COUNTx]SIZE[k|M]", e.g. "16M", "500x1000"."""
    key = name.strip()
    if key.lower() in _NAMED:
        label, shapes = _NAMED[key.lower()]
        return Workload(key.lower(), label, tuple(shapes()))
    match = _GENERIC.match(key.lower())
    if not match or int(match.group(2)) == 0 or (match.group(1) and int(match.group(1)) == 0):
        raise ValueError(
            f"unknown workload {name!r}: use one of {sorted(_NAMED)} or "
            "[COUNTx]SIZE[k|M] such as 16M or 500x1000"
        )
    count = int(match.group(1) or 1)
    size = int(match.group(2)) * _SUFFIX[match.group(3)]
    noun = "tensor" if count == 1 else "tensors"
    return Workload(key, f"{count} {noun} of {_human(size)}", ((size,),) * count)


def _human(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n:,}"
