"""Train a small MLP on scikit-learn's handwritten digits: standardize the pixels with
fusedoptim.preprocessing.StandardScaler (fitted batch by batch on the training split),
optimize with fusedoptim.AdamW and its L1 option, stop early on the validation loss with
fusedoptim.EarlyStopping, score the test set with fusedoptim.metrics, and time the
optimizer step against torch.optim.AdamW in the same run. Needs scikit-learn (for the
data only)."""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

HELP = "train an MLP on the digits data: scaling, AdamW + L1, early stopping, metrics"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--epochs", type=int, default=100, help="at most this many epochs")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--l1", type=float, default=0.1, help="L1 strength on weight matrices")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--hidden", type=int, default=256, help="width of the two hidden layers")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--timing-steps", type=int, default=200, help="steps per optimizer in the step timing"
    )
    # [note: one thread] An 85K-param MLP gains nothing from more threads, and on a
    # busy machine every parallel region of torch's forward/backward can wait a whole
    # scheduler slice for a descheduled thread (measured: 1.3 ms -> 25 ms per
    # iteration at 2 threads with the load average at 6 on 2 cores).
    parser.add_argument(
        "--threads", type=int, default=1, help="torch and fusedoptim threads (default 1)"
    )


def load_data(seed: int):
    """Digits (1797 8x8 images of pixel values 0-16, 10 classes) split 60/20/20 into
    train/val/test."""
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32)
    y = torch.tensor(digits.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_train, n_val = int(0.6 * len(y)), int(0.2 * len(y))
    parts = order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :]
    return [(x[i], y[i]) for i in parts]


def standardize(splits, batch_size: int):
    """Fits a StandardScaler on the training images batch by batch, as one would stream a
    dataset too large for memory, and scales every split in place with the training
    statistics (pixels that are 0 in every training image keep scale 1)."""
    from fusedoptim.preprocessing import StandardScaler

    (x_train, _), _, _ = splits
    scaler = StandardScaler()
    for batch in x_train.split(batch_size):
        scaler.partial_fit(batch)
    for x, _ in splits:
        scaler.transform(x, copy=False)
    constant = int((scaler.var_ == 0).sum())
    print(
        f"standardized the pixels with fusedoptim StandardScaler: fitted on "
        f"{int(scaler.n_samples_seen_)} training images in batches of {batch_size}; "
        f"{constant} of {scaler.n_features_in_} pixels are constant in training"
    )
    return splits


def build_model(hidden: int, seed: int):
    import torch

    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(64, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden, 10),
    )


def param_groups(model, l1: float):
    """L1 on the weight matrices only: sparse weights, biases left free."""
    weights = [p for p in model.parameters() if p.dim() > 1]
    biases = [p for p in model.parameters() if p.dim() <= 1]
    return [{"params": weights, "l1": l1}, {"params": biases, "l1": 0.0}]


def sparsity(model) -> tuple[int, int]:
    weights = [p for p in model.parameters() if p.dim() > 1]
    return sum(int((p == 0).sum()) for p in weights), sum(p.numel() for p in weights)


def time_steps(model, batch, args) -> dict[str, float]:
    """Median ms of one step of each optimizer on the same model and gradients,
    interleaved so that the machine's noise hits all of them alike."""
    import torch

    import fusedoptim

    x, y = batch
    kw = {"lr": args.lr, "weight_decay": args.weight_decay}
    builders = {
        "fusedoptim.AdamW (with L1)": lambda m: fusedoptim.AdamW(param_groups(m, args.l1), **kw),
        "torch.optim.AdamW (default)": lambda m: torch.optim.AdamW(m.parameters(), **kw),
        "torch.optim.AdamW(fused=True)": lambda m: torch.optim.AdamW(
            m.parameters(), fused=True, **kw
        ),
    }
    steps = {}
    for name, build in builders.items():
        twin = copy.deepcopy(model)
        torch.nn.functional.cross_entropy(twin(x), y).backward()
        steps[name] = build(twin).step
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        for _ in range(10):
            step()
    for _ in range(args.timing_steps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def train(model, data, args) -> list[float]:
    """Trains until early stopping fires (or --epochs); returns every step's seconds."""
    import torch

    import fusedoptim
    from fusedoptim import metrics

    (x_train, y_train), (x_val, y_val) = data
    optimizer = fusedoptim.AdamW(
        param_groups(model, args.l1), lr=args.lr, weight_decay=args.weight_decay
    )
    stopper = fusedoptim.EarlyStopping(
        mode="min", patience=args.patience, restore_best_weights=True
    )
    loss_fn = torch.nn.functional.cross_entropy
    generator = torch.Generator().manual_seed(args.seed)
    print(" epoch  train loss  val loss  val acc  zero weights  step ms")
    step_times: list[float] = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        total = 0.0
        epoch_steps = []
        for start in range(0, len(order), args.batch_size):
            idx = order[start : start + args.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            t0 = time.perf_counter()
            optimizer.step()
            epoch_steps.append(time.perf_counter() - t0)
            total += loss.item() * len(idx)
        step_times += epoch_steps
        model.eval()
        with torch.no_grad():
            val_logits = model(x_val)
            val_loss = loss_fn(val_logits, y_val).item()
        val_acc = metrics.accuracy_score(y_val, val_logits.argmax(1))
        zeros, count = sparsity(model)
        print(
            f"{epoch:6d}  {total / len(y_train):10.4f}  {val_loss:8.4f}  {val_acc:7.4f}  "
            f"{100 * zeros / count:11.1f}%  {statistics.median(epoch_steps) * 1e3:7.3f}",
            flush=True,
        )
        if stopper.step(val_loss, model):
            break
    if not stopper.should_stop:
        stopper.restore(model)
    stop_text = stopper.reason or f"ran all {args.epochs} epochs"
    print(f"stopped: {stop_text}; restored the weights of epoch {stopper.best_epoch}")
    return step_times


def evaluate(model, test) -> None:
    import torch

    from fusedoptim import metrics

    x_test, y_test = test
    model.eval()
    with torch.no_grad():
        predicted = model(x_test).argmax(1)
    print(f"test accuracy: {metrics.accuracy_score(y_test, predicted):.4f}")
    print(f"test macro F1: {metrics.f1_score(y_test, predicted, average='macro'):.4f}")
    print("test confusion matrix (rows: true digit, columns: predicted):")
    matrix = metrics.confusion_matrix(y_test, predicted, labels=list(range(10)))
    print("      " + " ".join(f"{d:4d}" for d in range(10)))
    for digit, row in enumerate(matrix.tolist()):
        print(f"  {digit:2d}  " + " ".join(f"{c:4d}" for c in row))
    zeros, count = sparsity(model)
    print(f"L1 sparsity: {zeros:,} of {count:,} weights are exactly zero ({zeros / count:.1%})")
    for name, p in model.named_parameters():
        if p.dim() > 1:
            share = float((p == 0).float().mean())
            print(f"  {name:10s} {tuple(p.shape)}: {share:.1%} zero")


def run(args: argparse.Namespace) -> int:
    try:
        import sklearn  # noqa: F401  (the data only)
    except ImportError:
        print(
            "fusedoptim demo needs scikit-learn for its dataset: pip install scikit-learn",
            file=sys.stderr,
        )
        return 1
    numbers = (args.epochs, args.batch_size, args.hidden, args.timing_steps, args.threads)
    if min(numbers) < 1:
        print(
            "fusedoptim demo: error: --epochs, --batch-size, --hidden, --timing-steps and "
            "--threads must be >= 1",
            file=sys.stderr,
        )
        return 2
    from fusedoptim.cli._runtime import threads_and_isa

    with threads_and_isa(args.threads):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    import torch

    started = time.perf_counter()
    train_data, val_data, test_data = standardize(load_data(args.seed), args.batch_size)
    model = build_model(args.hidden, args.seed)
    print(
        f"digits: {len(train_data[1])} train / {len(val_data[1])} val / {len(test_data[1])} "
        f"test images, MLP 64-{args.hidden}-{args.hidden}-10, fusedoptim.AdamW(lr={args.lr}, "
        f"weight_decay={args.weight_decay}, l1={args.l1} on weights)"
    )
    step_times = train(model, (train_data, val_data), args)
    print()
    evaluate(model, test_data)
    print()
    batch = (train_data[0][: args.batch_size], train_data[1][: args.batch_size])
    medians = time_steps(model, batch, args)
    ours = medians["fusedoptim.AdamW (with L1)"]
    params = sum(p.numel() for p in model.parameters())
    print(
        f"optimizer step, median of {args.timing_steps} interleaved steps each "
        f"({params:,} params, {torch.get_num_threads()} thread(s)):"
    )
    for name, ms in medians.items():
        ratio = "" if ms == ours else f"  ({ms / ours:.2f}x fusedoptim's time)"
        print(f"  {name:30s} {ms:8.4f} ms{ratio}")
    print(
        f"  during training, fusedoptim steps took {statistics.median(step_times) * 1e3:.4f} ms "
        f"(median of {len(step_times)})"
    )
    print(f"demo took {time.perf_counter() - started:.1f} s")
    return 0
