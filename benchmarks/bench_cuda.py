"""One optimizer step on CUDA: fusedoptim vs torch.optim (foreach and fused),
as time per step and as GB/s against the card's measured copy bandwidth.

    python benchmarks/bench_cuda.py [--repeats 50] [--out bench_results/cuda.json]

The bandwidth reference is a device-to-device copy of 1 GiB (read + write);
an optimizer step moves, per element, Adam: 4 reads + 3 writes (amsgrad
5 + 4), SGD with momentum: 3 reads + 2 writes. Times are CUDA-event medians
over --repeats steps after --warmup untimed ones, so they include each
optimizer's Python overhead (what a training loop pays).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics

import torch

import fusedoptim

# A GPT-2-small-like block: attention and MLP weights, biases and norms.
BLOCK = (768 * 2304, 2304, 768 * 768, 768, 768, 768, 768 * 3072, 3072, 3072 * 768, 768, 768, 768)

# Parameter sets: (name, list of sizes).
SHAPES = {
    "one tensor, 64M": [64 * 2**20],
    "transformer, 148 tensors": [*BLOCK * 12, 50257 * 768, 1024 * 768, 768, 768],
    "1000 small tensors": [4096 + 17 * i for i in range(1000)],
}


def measure_copy_bandwidth(device):
    n = 2**30 // 4
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), warmup=3, repeats=20)
    return 2 * n * 4 / (ms * 1e-3) / 1e9


def time_ms(fn, warmup, repeats):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def optimizers(kind):
    if kind == "adam":
        config = dict(lr=1e-3, weight_decay=0.01)
        yield "fusedoptim.AdamW", lambda ps: fusedoptim.AdamW(ps, **config)
        yield "torch AdamW foreach", lambda ps: torch.optim.AdamW(ps, foreach=True, **config)
        yield "torch AdamW fused", lambda ps: torch.optim.AdamW(ps, fused=True, **config)
    else:
        config = dict(lr=1e-2, momentum=0.9)
        yield "fusedoptim.SGD", lambda ps: fusedoptim.SGD(ps, **config)
        yield "torch SGD foreach", lambda ps: torch.optim.SGD(ps, foreach=True, **config)
        yield "torch SGD fused", lambda ps: torch.optim.SGD(ps, fused=True, **config)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", default="bench_results/cuda.json")
    args = parser.parse_args()

    device = torch.device("cuda")
    bandwidth = measure_copy_bandwidth(device)
    name = torch.cuda.get_device_name(device)
    print(f"{name}: measured copy bandwidth {bandwidth:.0f} GB/s")
    results = []
    for kind, streams in (("adam", 7), ("sgd", 5)):
        for dtype in (torch.float32, torch.bfloat16):
            for shape_name, sizes in SHAPES.items():
                params = [
                    torch.nn.Parameter(torch.randn(n, device=device, dtype=dtype)) for n in sizes
                ]
                for p in params:
                    p.grad = torch.randn_like(p)
                moved = streams * sum(sizes) * params[0].element_size()
                baseline = None
                for label, make in optimizers(kind):
                    try:
                        optimizer = make(params)
                        ms = time_ms(optimizer.step, args.warmup, args.repeats)
                    except (RuntimeError, ValueError) as error:
                        print(f"  {label}: skipped ({error})")
                        continue
                    gbps = moved / (ms * 1e-3) / 1e9
                    if label.startswith("fusedoptim"):
                        baseline = ms
                    ratio = round(ms / baseline, 2) if baseline else None
                    row = dict(
                        optimizer=label,
                        dtype=str(dtype).replace("torch.", ""),
                        params=shape_name,
                        elements=sum(sizes),
                        ms_per_step=round(ms, 4),
                        gb_per_s=round(gbps, 1),
                        fraction_of_copy_bandwidth=round(gbps / bandwidth, 3),
                        time_vs_fusedoptim=ratio,
                    )
                    results.append(row)
                    print(
                        f"{label:22s} {row['dtype']:8s} {shape_name:26s} {ms:8.3f} ms "
                        f"{gbps:7.0f} GB/s ({gbps / bandwidth:4.0%} of copy) "
                        f"x{ratio} of fusedoptim's time"
                    )
                del params
                torch.cuda.empty_cache()

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(
            dict(
                device=name,
                copy_bandwidth_gb_per_s=round(bandwidth, 1),
                torch=torch.__version__,
                fusedoptim=fusedoptim.info(),
                platform=platform.platform(),
                results=results,
            ),
            f,
            indent=1,
            default=str,
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
