"""The stateful-metric protocol: update / compute / reset / state_dict / sync.

A metric's running state lives in a ``State`` object of plain tensors. Metrics built
with ``share_state_with=other`` hold the very same object: one ``update`` on any of
them feeds all, so a confusion matrix, accuracy and F1 cost one counting pass.

``update`` takes ``(y_true, y_pred)``, scikit-learn's order, or torchmetrics' keyword
names ``preds=`` and ``target=`` (see ``update_arguments``).
"""

from __future__ import annotations

import torch

from fusedoptim._opaque import opaque_to_dynamo

# [note: metrics under torch.compile] update, compute and sync are each one opaque call
# to dynamo (see [note: opaque to dynamo] in fusedoptim/_opaque.py): traced, update
# breaks at the C++ kernel and recompiles on each step (dynamo guards on the Python
# update counter that every update changes), compute breaks at every host read
# (int(...) of a count), and a traced sync fails (gloo's all_gather of 0-d tensors).
# reset, plain in-place zeroing, traces cleanly and stays in the graph.


ORDER = (
    "update() takes (y_true, y_pred), scikit-learn's order; torchmetrics' order is "
    "update(preds=..., target=...)"
)


def update_arguments(metric, y_true, y_pred, preds, target):
    """(truth, prediction, their argument names) from update's two naming schemes:
    ``y_true``/``y_pred`` (positional or keyword) or ``preds=``/``target=``."""
    where = f"{type(metric).__name__}.update()"
    ours = [name for name, x in (("y_true", y_true), ("y_pred", y_pred)) if x is not None]
    theirs = [name for name, x in (("preds", preds), ("target", target)) if x is not None]
    if ours and theirs:
        raise TypeError(
            f"{where} got {' and '.join(ours)} and also {' and '.join(theirs)}: pass either "
            "(y_true, y_pred) in scikit-learn's order or preds= and target= by keyword, "
            "not a mix"
        )
    if theirs:
        if len(theirs) < 2:
            given, missing = ("preds", "target") if target is None else ("target", "preds")
            raise TypeError(f"{where} got {given}= without {missing}=")
        return target, preds, ("target", "preds")
    if len(ours) < 2:
        missing = " and ".join(n for n in ("y_true", "y_pred") if n not in ours)
        raise TypeError(f"{where} missing {missing}; {ORDER}")
    return y_true, y_pred, ("y_true", "y_pred")


class State:
    """Named tensors, an update counter, and how to combine copies across processes."""

    kind = "state"

    def __init__(self, tensors, signature):
        self.tensors = tensors
        self.signature = signature  # metrics may share a state only with equal signatures
        self.updates = 0

    # [note: state across processes] torch.multiprocessing pickles tensors as handles
    # to shared memory, so a metric built before mp.spawn (as metrics built in a
    # LightningModule's __init__ are under ddp_spawn) would reach every worker with one
    # count tensor, written by all of them and by the parent. A State pickles its
    # tensors by value instead, as numpy copies (every pickler copies those), and
    # builds tensors of its own on the same device when unpickled: each copy owns its
    # state, holds what the original held at pickling time, and two loads of one
    # pickle do not share. (Cloning the tensors would not do: under the "file_system"
    # sharing strategy a clone's shared memory is gone once the temporary is freed,
    # before the worker opens it.) Metrics pickled together still share one State:
    # pickle keeps one object per identity within a dump.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["tensors"] = {k: (v.device, v.cpu().numpy()) for k, v in self.tensors.items()}
        return state

    def __setstate__(self, state):
        state["tensors"] = {
            k: torch.tensor(values, device=device)
            for k, (device, values) in state["tensors"].items()
        }
        self.__dict__.update(state)

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
    ``update`` and ``compute``.

    ``update(y_true, y_pred)`` takes the true values first, as scikit-learn's functions
    do; torchmetrics' ``update(preds, target)`` puts them second, so its callers pass
    ``update(preds=..., target=...)`` by keyword. Two label arrays given in the wrong
    order cannot be told apart (precision and recall swap); scores or probabilities
    in y_true's place with labels in y_pred's are refused with a message naming the
    order.
    """

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

    @opaque_to_dynamo
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
