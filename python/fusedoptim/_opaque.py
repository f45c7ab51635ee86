"""How torch.compile sees fusedoptim: every public entry point is one opaque call.

[note: opaque to dynamo] A fused step, a clipping norm or a metric update is
host code around one native call: it reads tensor metadata, keeps caches
keyed by tensor identity and calls pybind functions. Traced by dynamo, each of
those is a graph break or a guard on one tensor's identity, so a compiled
training step broke into dozens of graphs and recompiled per param until it
hit the recompile limit. Marked opaque, the call is a single graph break at
the caller: dynamo compiles the code before and after it, runs the call
eagerly with real tensors, and traces nothing inside it (nested frames
included), so nothing recompiles from step to step.

``torch._disable_dynamo`` is the marker torch puts on its own
``Optimizer.zero_grad``/``state_dict``: it imports dynamo only on the first
call (``import fusedoptim`` stays fast) and lives in a file dynamo never
traces. ``torch.compiler.disable`` is the public fallback for a torch that
lacks it. Outside torch.compile the wrapper costs about 1 us per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

_F = TypeVar("_F", bound=Callable)


def opaque_to_dynamo(fn: _F) -> _F:
    """``fn`` as one call that torch.compile runs eagerly behind one graph break."""
    disable = getattr(torch, "_disable_dynamo", None)
    if disable is not None:
        return disable(fn)
    return torch.compiler.disable(fn)
