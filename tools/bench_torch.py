#!/usr/bin/python3
"""The networks of `fer bench`, timed in PyTorch: same flags, same JSON fields.

    /usr/bin/python3 tools/bench_torch.py --model mobilenet_v1 --alpha 0.75 --size 96 \\
        --batch 64 --mode train --threads 2 [--config default|tuned] [--json]

The networks are built natively (not converted from a fer model file), the way a PyTorch
user would write them, with the same layer widths and FLOPs as fer's:
  cnn3          3 x [2 x (Conv3x3 no bias, BN, ReLU), MaxPool 2, Dropout 0.25] with
                32/64/128 filters, Flatten, Linear 256 no bias, BN1d, ReLU, Dropout 0.5,
                Linear 7 (fer/architectures.cpp)
  mobilenet_v1  Keras's MobileNet: Conv3x3/2 int(32*alpha), 13 depthwise-separable blocks
                int(filters*alpha), ReLU6, then fer's default head (GAP, Linear 7)
  mobilenet_v2  torchvision.models.mobilenet_v2(width_mult=alpha, num_classes=7)
  vgg16         13 Conv3x3 with bias + ReLU, 5 MaxPools, GAP, Linear 7
Convolutions pad symmetrically (PyTorch's way); for even input sizes the output shapes
and FLOPs are those of fer's TensorFlow 'same' padding. --check-params FILE.npz (written
by `fer bench --save-model`) verifies that the trainable parameter counts agree.

Configurations (--config):
  default  torch as installed, NCHW tensors, the environment as it is, no_grad inference.
  tuned    (a) OpenBLAS (openmp build) loaded explicitly through LD_LIBRARY_PATH, with
               OPENBLAS_CORETYPE unset so it picks the kernels for this CPU;
           (b) model and input in torch.channels_last;
           (c) glibc malloc's mmap threshold raised (MALLOC_MMAP_THRESHOLD_,
               MALLOC_TRIM_THRESHOLD_) so large activations are reused from the heap
               instead of being mmap'ed and unmapped (page faults) every step;
           inference under torch.inference_mode(), zero_grad(set_to_none=True).
The environment variables must be in place before the process starts (the dynamic
loader and malloc read them at start-up), so the script re-executes itself with them.
"""
import argparse
import json
import math
import os
import re
import resource
import sys
import time

OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
# Larger than any activation of these networks, so none is served by mmap.
MMAP_THRESHOLD = str(1 << 30)
TRIM_THRESHOLD = str(1 << 34)
ENV_MARK = "FER_BENCH_TORCH_CONFIG"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, choices=["cnn3", "mobilenet_v1", "mobilenet_v2", "vgg16"])
    p.add_argument("--alpha", type=float, default=None, help="MobileNet width multiplier (1.0)")
    p.add_argument("--size", type=int, default=None, help="input side (cnn3: 48, others: 224)")
    p.add_argument("--channels", type=int, default=None, help="input channels (cnn3: 1, others: 3)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--mode", choices=["train", "infer"], default="train")
    p.add_argument("--threads", type=int, default=None,
                   help="compute threads (default: OMP_NUM_THREADS or all cores)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--config", choices=["default", "tuned"], default="default")
    p.add_argument("--memory-format", choices=["auto", "contiguous", "channels_last"], default="auto",
                   help="override the configuration's memory format")
    p.add_argument("--profile", action="store_true",
                   help="after timing, profile the steps with torch.profiler (ops by self time)")
    p.add_argument("--top", type=int, default=15, help="with --profile: ops shown")
    p.add_argument("--check-params", metavar="FILE.npz",
                   help="fer model file (fer bench --save-model): fail unless the trainable "
                        "parameter counts agree")
    a = p.parse_args(argv)
    if a.batch < 1 or a.steps < 1 or a.warmup < 0 or (a.threads is not None and a.threads < 1):
        p.error("--batch, --steps and --threads must be >= 1, --warmup >= 0")
    if a.alpha is not None and not a.model.startswith("mobilenet"):
        p.error("--alpha applies to mobilenet_v1 and mobilenet_v2 only")
    if a.alpha is None:
        a.alpha = 1.0
    if a.channels is None:
        a.channels = 1 if a.model == "cnn3" else 3
    if a.size is None:
        a.size = 48 if a.model == "cnn3" else 224
    if a.threads is None:
        a.threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or os.cpu_count()
    return a


def tuned_env(threads):
    env = dict(os.environ)
    if os.path.isdir(OPENBLAS_DIR):
        env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    else:
        sys.stderr.write("bench_torch.py: %s not found (apt-get install libopenblas0-openmp); "
                         "the tuned configuration keeps the system BLAS\n" % OPENBLAS_DIR)
    env.pop("OPENBLAS_CORETYPE", None)
    env["MALLOC_MMAP_THRESHOLD_"] = MMAP_THRESHOLD
    env["MALLOC_TRIM_THRESHOLD_"] = TRIM_THRESHOLD
    env["OMP_NUM_THREADS"] = str(threads)
    env[ENV_MARK] = "tuned"
    return env


def reexec_if_needed(args):
    """Restarts the interpreter with the tuned environment (once: the mark stops a loop)."""
    if args.config == "tuned" and os.environ.get(ENV_MARK) != "tuned":
        argv = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
        os.execve(sys.executable, argv, tuned_env(args.threads))


# ---------------------------------------------------------------------------------------
# Networks


def build_model(args):
    import torch.nn as nn

    def conv_bn(cin, cout, k, stride=1, groups=1, act=nn.ReLU6, eps=1e-3, momentum=0.01):
        return [nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout, eps=eps, momentum=momentum), act(inplace=True)]

    classes = 7
    if args.model == "cnn3":
        layers, c = [], args.channels
        for f in (32, 64, 128):
            for _ in range(2):
                # fer's cnn3 uses BN momentum 0.9 in Keras terms = 0.1 in PyTorch's.
                layers += conv_bn(c, f, 3, act=nn.ReLU, momentum=0.1)
                c = f
            layers += [nn.MaxPool2d(2), nn.Dropout(0.25)]
        side = args.size // 8
        layers += [nn.Flatten(), nn.Linear(128 * side * side, 256, bias=False),
                   nn.BatchNorm1d(256, eps=1e-3, momentum=0.1), nn.ReLU(inplace=True),
                   nn.Dropout(0.5), nn.Linear(256, classes)]
        return nn.Sequential(*layers)
    if args.model == "mobilenet_v1":
        c = int(32 * args.alpha)
        layers = conv_bn(args.channels, c, 3, 2)
        blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
                  (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
        for filters, stride in blocks:
            f = int(filters * args.alpha)
            layers += conv_bn(c, c, 3, stride, groups=c) + conv_bn(c, f, 1)
            c = f
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
        return nn.Sequential(*layers)
    if args.model == "mobilenet_v2":
        import torchvision
        if args.channels != 3:
            raise SystemExit("bench_torch.py: mobilenet_v2 (torchvision) takes 3 input channels")
        return torchvision.models.mobilenet_v2(weights=None, width_mult=args.alpha, num_classes=classes)
    if args.model == "vgg16":
        layers, c = [], args.channels
        for filters, n in [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]:
            for _ in range(n):
                layers += [nn.Conv2d(c, filters, 3, padding=1), nn.ReLU(inplace=True)]
                c = filters
            layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
        return nn.Sequential(*layers)
    raise AssertionError(args.model)


def trainable_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fer_trainable_parameters(path):
    """Trainable parameters of a fer model file: every array except BatchNorm statistics."""
    import numpy as np
    with np.load(path) as z:
        return sum(int(np.prod(z[k].shape)) for k in z.files
                   if k != "architecture" and not k.startswith("optimizer/")
                   and not k.endswith(("/moving_mean", "/moving_variance")) and z[k].dtype != np.dtype("O")
                   and z[k].dtype.kind == "f")


# ---------------------------------------------------------------------------------------
# What this process actually runs on


def loaded_libraries():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ".so" in parts[-1]:
                libs.add(parts[-1])
    return sorted(libs)


def blas_info():
    """The BLAS library torch loaded (per /proc/self/maps) and, for OpenBLAS, its kernels."""
    libs = loaded_libraries()
    blas = [l for l in libs if re.search(r"libblas\.so|openblas|libmkl_rt|libblis", l)]
    entry = [l for l in blas if re.search(r"libblas\.so|libmkl_rt|libblis", os.path.basename(l))]
    core = None
    for lib in blas:
        if "openblas" in lib and "libopenblas" in os.path.basename(lib):
            try:
                import ctypes
                h = ctypes.CDLL(lib)
                h.openblas_get_corename.restype = ctypes.c_char_p
                core = h.openblas_get_corename().decode()
            except (OSError, AttributeError):
                pass
    # The reference BLAS is .../blas/libblas.so.3; OpenBLAS is .../openblas-*/libblas.so.3.
    return ",".join(os.path.realpath(b) for b in (entry or blas)) or "none", core


# ---------------------------------------------------------------------------------------
# Timing (median and nearest-rank percentile, as fer/cli_bench.cpp computes them)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def percentile(v, p):
    v = sorted(v)
    return v[max(int(math.ceil(p / 100.0 * len(v))), 1) - 1]


def main(argv):
    args = parse_args(argv)
    reexec_if_needed(args)

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tuned = args.config == "tuned"
    fmt = args.memory_format
    if fmt == "auto":
        fmt = "channels_last" if tuned else "contiguous"
    memory_format = torch.channels_last if fmt == "channels_last" else torch.contiguous_format

    model = build_model(args)
    params = trainable_parameters(model)
    if args.check_params:
        expected = fer_trainable_parameters(args.check_params)
        if expected != params:
            raise SystemExit("bench_torch.py: %s has %d trainable parameters, the PyTorch %s has %d"
                             % (args.check_params, expected, args.model, params))
    model = model.to(memory_format=memory_format)
    x = torch.rand(args.batch, args.channels, args.size, args.size).contiguous(memory_format=memory_format)
    y = torch.randint(0, 7, (args.batch,))
    train = args.mode == "train"

    if train:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=tuned)
    else:
        model.eval()
        guard = torch.inference_mode if tuned else torch.no_grad

        def step():
            with guard():
                model(x)

    times = []
    faults_before = 0
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        step()
        ms = (time.perf_counter() - t0) * 1e3
        if i >= args.warmup:
            times.append(ms)

    # Page faults per step: memory handed back to the OS and faulted in again each step.
    faults_per_step = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / args.steps
    blas, core = blas_info()
    med = median(times)
    result = {
        "tool": "pytorch", "config": args.config, "model": args.model, "size": args.size,
        "channels": args.channels, "alpha": args.alpha if args.model.startswith("mobilenet") else None,
        "batch": args.batch, "mode": args.mode, "threads": torch.get_num_threads(),
        "steps": args.steps, "warmup": args.warmup,
        "ms_per_batch": med, "min_ms": min(times), "p90_ms": percentile(times, 90),
        "mean_ms": sum(times) / len(times), "images_per_s": args.batch / (med / 1e3),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "page_faults_per_step": faults_per_step, "parameters": params,
        "torch_version": torch.__version__, "memory_format": fmt, "blas": blas, "blas_core": core,
        "mkldnn": torch.backends.mkldnn.is_available(),
        "malloc_env": {k: os.environ[k] for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_",
                                                  "GLIBC_TUNABLES") if k in os.environ},
    }
    table = None
    if args.profile:
        from torch.profiler import ProfilerActivity, profile
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
        averages = prof.key_averages()
        ops = sorted(averages, key=lambda e: -e.self_cpu_time_total)
        result["profile"] = [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3 / args.steps,
                              "calls": e.count / args.steps} for e in ops[:args.top]]
        table = averages.table(sort_by="self_cpu_time_total", row_limit=args.top)
    if args.json:
        print(json.dumps(result))
        return 0
    alpha = " alpha %g" % args.alpha if result["alpha"] is not None else ""
    print("bench_torch: %s%s [%d, %d, %d], %s, batch %d, %d threads, %d steps after %d warm-up, "
          "config %s (%s)" % (args.model, alpha, args.size, args.size, args.channels, args.mode,
                             args.batch, result["threads"], args.steps, args.warmup, args.config, fmt))
    print("  %.2f ms/batch median (min %.2f, p90 %.2f), %.1f images/s, peak RSS %.0f MiB, "
          "%.0f page faults/step, %d trainable parameters"
          % (med, result["min_ms"], result["p90_ms"], result["images_per_s"], result["peak_rss_mib"],
             faults_per_step, params))
    print("  torch %s, BLAS %s%s, mkldnn %s" % (torch.__version__, blas,
                                               " (%s)" % core if core else "", result["mkldnn"]))
    if table:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
