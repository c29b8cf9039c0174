"""Assignment a01's reference solution at work: the numbers Chapter 1 quotes.

    .venv/bin/python bench/a01_foundations.py [--graphs 200] [--moon-epochs 100]
        [--epochs 15] [--depth 16] [--width 16] [--threads 1] [--json bench/results/a01_foundations.json]

The code measured is the reference solution itself: the setup and answer cells of
solutions/a01/a01.ipynb, taken with autograder.extract.reference_cells (what the
grader runs as the reference) and executed in one namespace; nothing is copied here.
It measures

  * `Value`: values and gradients of random expression graphs against PyTorch's
    autograd in float64 (the suite's own generator of expressions): the largest
    absolute error (target <= 1e-6);
  * `MLP(2, [16, 16, 1])` of Values on two moons (100 points made in code), trained
    with the hinge loss by plain gradient descent: train accuracy (target 100 %) and
    wall time (target under a minute);
  * a ResNet of `ResidualBlock`s on scikit-learn's digits (1,437 train and 360 test
    images), trained with the reference `adam_step` and `cross_entropy`, beside the
    same network without its skip connections: test accuracy (target >= 97 %) and CPU
    minutes, and the gradient norm of every convolution at initialisation.

Prints a table (our number beside the target, and the wall time) and writes every
number to a JSON file that the book quotes. Not a test: timings depend on the machine.
"""
import argparse
import datetime
import importlib.util
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from autograder.extract import reference_cells  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "a01_foundations.json"


def reference_namespace() -> dict:
    """The solution's setup and answer cells, run in order in one namespace."""
    namespace = {"__name__": "a01_reference"}
    for cell_id, source in reference_cells("a01", ROOT):
        exec(compile(source, f"<solutions/a01 {cell_id}>", "exec"), namespace)
    return namespace


def suite_module(name: str):
    """A module of the hidden suite (for its generator of random expressions)."""
    path = ROOT / "autograder" / "suites" / "a01" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"a01_suite_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Value against float64 autograd --------------------------------------------------------------

def value_graphs(ns: dict, n_graphs: int) -> dict:
    suite = suite_module("test_value")
    exec(suite.HELPERS, ns)  # the suite's interpreter of expressions, on the reference Value
    rng = random.Random(2024)
    programs = [suite.random_program(rng, rng.randint(1, 4), rng.randint(3, 14)) for _ in range(n_graphs)]
    start = time.perf_counter()
    worst_data = worst_grad = worst_rel = 0.0
    nodes = 0
    for program in tqdm(programs, desc="Value graphs", unit="graph", leave=False):
        got = ns["grader_a01_value_programs"]([program])[0]
        data, grads = suite.torch_program(program)
        worst_data = max(worst_data, (got[0] - data).abs().max().item())
        worst_grad = max(worst_grad, (got[1] - grads).abs().max().item())
        worst_rel = max(worst_rel, suite.relative_error(got[1], grads), suite.relative_error(got[0], data))
        nodes += len(program)
    chain = ns["grader_a01_value_chain"](5000, 0.8)  # [output, d out / d input, d out / d shared constant]
    want = suite.torch_chain(5000, 0.8)
    return {"graphs": n_graphs, "nodes": nodes, "max_abs_error_values": worst_data,
            "max_abs_error_gradients": worst_grad, "max_relative_error": worst_rel,
            "chain_5000_max_relative_error": ((chain - want).abs() / want.abs()).max().item(),
            "seconds": time.perf_counter() - start}


# --- an MLP of Values on two moons ----------------------------------------------------------------

def two_moons(n=100, noise=0.1, seed=0):
    """n points on two interleaved half circles, labels +1 and -1."""
    rng = random.Random(seed)
    points, labels = [], []
    for i in range(n):
        t = math.pi * rng.random()
        if i % 2 == 0:
            px, py, label = math.cos(t), math.sin(t), 1.0
        else:
            px, py, label = 1.0 - math.cos(t), 0.5 - math.sin(t), -1.0
        points.append([px + rng.gauss(0.0, noise), py + rng.gauss(0.0, noise)])
        labels.append(label)
    return points, labels


def moons(ns: dict, max_epochs: int) -> dict:
    MLP = ns["MLP"]
    points, labels = two_moons()
    random.seed(1)
    net = MLP(2, [16, 16, 1])
    start = time.perf_counter()
    reached, history = None, []
    bar = tqdm(range(max_epochs), desc="MLP on two moons", unit="epoch", leave=False)
    for epoch in bar:
        scores = [net(p) for p in points]
        accuracy = sum((s.data > 0) == (label > 0) for label, s in zip(labels, scores)) / len(points)
        if accuracy == 1.0:  # every point on its side: stop before another update
            reached = {"epochs": epoch, "seconds": time.perf_counter() - start}
            break
        hinge = sum((1 - label * s).relu() for label, s in zip(labels, scores)) * (1.0 / len(points))
        loss = hinge + 1e-4 * sum(w * w for w in net.parameters())
        net.zero_grad()
        loss.backward()
        lr = 1.0 - 0.9 * epoch / max_epochs
        for w in net.parameters():
            w.data -= lr * w.grad
        history.append({"epoch": epoch + 1, "loss": loss.data, "accuracy_before_update": accuracy})
        bar.set_postfix(loss=f"{loss.data:.3f}", accuracy=f"{accuracy:.0%}")
    final = sum((net(p).data > 0) == (label > 0) for p, label in zip(points, labels)) / len(points)
    return {"points": len(points), "architecture": [2, 16, 16, 1], "parameters": len(net.parameters()),
            "train_accuracy": final, "epochs_run": len(history), "reached_100_percent": reached,
            "seconds": time.perf_counter() - start, "history": history}


# --- residual against plain networks on the digits --------------------------------------------------

def digits_data():
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    classes = torch.tensor(digits.target)
    order = torch.randperm(len(classes), generator=torch.Generator().manual_seed(0))
    return images, classes, order[:1437], order[1437:]


def networks(ns: dict, depth: int, width: int):
    ResidualBlock = ns["ResidualBlock"]

    class PlainBlock(ResidualBlock):
        """The same layers without the skip connection."""

        def forward(self, x):
            return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    def make(block):
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                             *[block(width) for _ in range(depth)],
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
    return {"residual": make(ResidualBlock), "plain": make(PlainBlock)}


def grad_norms(ns, net, images, classes, idx) -> dict:
    """The gradient norm of every convolution's weight at initialisation, input side first."""
    net.zero_grad()
    ns["cross_entropy"](net(images[idx]), classes[idx]).backward()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    return {"layers": ["stem"] + [f"block {i // 2 + 1} conv{i % 2 + 1}" for i in range(len(convs) - 1)],
            "norms": [c.weight.grad.norm().item() for c in convs]}


def train(ns, net, images, classes, train_idx, test_idx, epochs, desc, lr=3e-3, batch=64) -> dict:
    adam_step, cross_entropy = ns["adam_step"], ns["cross_entropy"]
    params = list(net.parameters())
    state, shuffle = {}, torch.Generator().manual_seed(1)
    total, step = epochs * math.ceil(len(train_idx) / batch), 0
    wall, cpu = time.perf_counter(), time.process_time()
    history = []
    for epoch in tqdm(range(epochs), desc=desc, unit="epoch", leave=False):
        net.train()
        order = train_idx[torch.randperm(len(train_idx), generator=shuffle)]
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = cross_entropy(net(images[idx]), classes[idx])
            grads = torch.autograd.grad(loss, params)
            state = adam_step(params, list(grads), state, lr=lr * 0.5 * (1 + math.cos(math.pi * step / total)))
            step += 1
        net.eval()
        with torch.no_grad():
            accuracy = (net(images[test_idx]).argmax(1) == classes[test_idx]).float().mean().item()
            train_loss = cross_entropy(net(images[train_idx]), classes[train_idx]).item()
        history.append({"epoch": epoch + 1, "test_accuracy": accuracy, "train_loss": train_loss})
    return {"test_accuracy": history[-1]["test_accuracy"], "best_test_accuracy": max(h["test_accuracy"] for h in history),
            "cpu_minutes": (time.process_time() - cpu) / 60, "seconds": time.perf_counter() - wall,
            "history": history}


def digits(ns: dict, depth: int, width: int, epochs: int) -> dict:
    images, classes, train_idx, test_idx = digits_data()
    nets = networks(ns, depth, width)
    out = {"depth": depth, "width": width, "epochs": epochs, "train_images": len(train_idx),
           "test_images": len(test_idx), "optimizer": "reference adam_step, lr 3e-3 cosine to 0, batch 64"}
    for name, net in nets.items():
        out[name] = {"parameters": sum(p.numel() for p in net.parameters()),
                     "grad_norms_at_init": grad_norms(ns, net, images, classes, train_idx[:256])}
        out[name].update(train(ns, net, images, classes, train_idx, test_idx, epochs, f"{name} on digits"))
    return out


# --- the table ----------------------------------------------------------------------------------

def table(results: dict) -> str:
    v, m, d = results["value"], results["moons"], results["digits"]
    res, plain = d["residual"], d["plain"]
    spread = {k: max(d[k]["grad_norms_at_init"]["norms"]) / min(d[k]["grad_norms_at_init"]["norms"])
              for k in ("residual", "plain")}
    reached = m["reached_100_percent"]
    rows = [
        (f"Value vs float64 autograd, {v['graphs']} graphs: max abs error", f"{max(v['max_abs_error_values'], v['max_abs_error_gradients']):.1e}",
         "<= 1e-6", v["seconds"]),
        ("Value, chain of 5,000 operations: relative error", f"{v['chain_5000_max_relative_error']:.1e}", "<= 1e-6",
         None),
        ("MLP(2, [16, 16, 1]) of Values, two moons: train accuracy", f"{m['train_accuracy']:.0%}", "100%", m["seconds"]),
        ("  epochs to 100% (time)", f"{reached['epochs']} ({reached['seconds']:.0f} s)" if reached else "never",
         "< 60 s", None),
        (f"ResNet, {d['depth']} residual blocks, digits: test accuracy", f"{res['test_accuracy']:.1%}", ">= 97%",
         res["seconds"]),
        ("  CPU minutes to train", f"{res['cpu_minutes']:.2f}", "minutes", None),
        (f"same depth without skips: test accuracy", f"{plain['test_accuracy']:.1%}", "(comparison)", plain["seconds"]),
        ("gradient norms at init, largest / smallest layer: residual", f"{spread['residual']:.1f}x", "(comparison)", None),
        ("gradient norms at init, largest / smallest layer: plain", f"{spread['plain']:.1f}x", "(comparison)", None),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{'what':{width}}  {'ours':>14}  {'target':>12}  {'wall s':>7}", "-" * (width + 40)]
    for what, ours, target, seconds in rows:
        lines.append(f"{what:{width}}  {ours:>14}  {target:>12}  {'' if seconds is None else f'{seconds:7.1f}'}")
    lines.append("")
    lines.append("gradient norm per convolution at initialisation (stem, then conv1 and conv2 of each block):")
    for name in ("residual", "plain"):
        norms = d[name]["grad_norms_at_init"]["norms"]
        lines.append(f"  {name:8s} " + " ".join(f"{n:.3g}" for n in norms))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graphs", type=int, default=200, help="random expressions for Value")
    parser.add_argument("--moon-epochs", type=int, default=100, help="most epochs for the MLP on two moons")
    parser.add_argument("--epochs", type=int, default=15, help="epochs on the digits")
    parser.add_argument("--depth", type=int, default=16, help="residual blocks in each network")
    parser.add_argument("--width", type=int, default=16, help="channels of each block")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small tensors: 1 is fastest)")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where to write the numbers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    ns = reference_namespace()
    results = {"value": value_graphs(ns, args.graphs), "moons": moons(ns, args.moon_epochs),
               "digits": digits(ns, args.depth, args.width, args.epochs)}
    results["run"] = {"date": datetime.date.today().isoformat(), "python": platform.python_version(),
                      "torch": torch.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
                      "threads": args.threads, "seconds": time.perf_counter() - start,
                      "command": "bench/a01_foundations.py " + " ".join(sys.argv[1:])}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json} "
          f"in {results['run']['seconds']:.0f} s")


if __name__ == "__main__":
    main()
