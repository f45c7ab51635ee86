"""The stateful-metric protocol: update / compute / reset / state_dict / sync.

A metric's running state lives in a ``State`` object of plain tensors. Metrics built
with ``share_state_with=other`` hold the very same object: one ``update`` on any of
them feeds all, so a confusion matrix, accuracy and F1 cost one counting pass.
"""

from __future__ import annotations

import torch


class State:
    """Named tensors, an update counter, and how to combine copies across processes."""

    kind = "state"

    def __init__(self, tensors, signature):
        self.tensors = tensors
        self.signature = signature  # metrics may share a state only with equal signatures
        self.updates = 0

    @property
    def device(self):
        return next(iter(self.tensors.values())).device

    def zero_(self):
        for t in self.tensors.values():
            t.zero_()
        self.updates = 0

    def to(self, device):
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}

    def follow(self, device):
        """Moves a fresh state to the inputs' device; refuses to mix devices later."""
        if device == self.device:
            return
        if self.updates == 0:
            self.to(device)
            return
        raise ValueError(
            f"the metric state is on {self.device} but the inputs are on {device}; "
            "call .to(device) (or reset()) first"
        )

    def all_reduce(self, group):
        """Replaces every tensor by its sum over the processes of ``group``."""
        import torch.distributed as dist

        for t in self.tensors.values():
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)


class Metric:
    """Base class: subclasses create their State in ``_make_state`` and implement
    ``update`` and ``compute``."""

    def __init__(self, *, share_state_with=None):
        state = self._make_state()
        if share_state_with is not None:
            other = share_state_with._state
            if other.signature != state.signature:
                raise ValueError(
                    f"share_state_with: {type(share_state_with).__name__} keeps state "
                    f"{other.signature}, this metric needs {state.signature}"
                )
            state = other
        self._state = state

    def _make_state(self):
        raise NotImplementedError

    @property
    def device(self):
        return self._state.device

    def to(self, device):
        """Moves the state (shared with other metrics, if any) to ``device``."""
        self._state.to(torch.device(device))
        return self

    def reset(self):
        """Forgets every update (for every metric sharing this state)."""
        self._state.zero_()

    def state_dict(self):
        """Copies of the state tensors, plus the update count."""
        out = {k: v.clone() for k, v in self._state.tensors.items()}
        out["updates"] = self._state.updates
        return out

    def load_state_dict(self, state_dict):
        """Restores a state_dict() of a metric with the same configuration."""
        expected = set(self._state.tensors) | {"updates"}
        if set(state_dict) != expected:
            raise ValueError(
                f"state_dict keys {sorted(state_dict)} do not match {sorted(expected)}"
            )
        for name, current in self._state.tensors.items():
            value = torch.as_tensor(state_dict[name])
            if value.shape != current.shape:
                raise ValueError(
                    f"state_dict[{name!r}] has shape {tuple(value.shape)}, "
                    f"expected {tuple(current.shape)}"
                )
        for name, current in self._state.tensors.items():
            current.copy_(torch.as_tensor(state_dict[name]))
        self._state.updates = int(state_dict["updates"])

    def sync(self, group=None):
        """Combines the states of all processes of ``group`` (torch.distributed), so each
        holds the global state. A no-op when torch.distributed is not initialized. Call it
        once per evaluation, before ``compute``: a second call would count twice."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            self._state.all_reduce(group)
        return self

    def __repr__(self):
        return f"{type(self).__name__}({self._state.signature})"
