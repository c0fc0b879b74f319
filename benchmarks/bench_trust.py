"""Benchmark: the trust tools in one compiled program against a Python loop doing the same work.

One workload, the 8x8 digits (scikit-learn's bundled set) and a 64-128-10 ReLU MLP trained with
`jl.fit`; on a batch of test digits:

- **PGD with restarts over a vector of epsilons**: `jl.robust.pgd(..., eps=eps_vector,
  restarts=R)` (epsilons and restarts vmapped in one program) against a Python loop over the
  epsilons calling the same function with one epsilon at a time (the same arithmetic, one
  compiled program reused per call). The results are compared (they must be equal: the eps-th
  slice of the vector call is the scalar call).
- **Integrated gradients for a batch**: `jl.explain.integrated_gradients` on the batch against a
  Python loop over the examples (batch of 1, one compiled program reused).
- **Deletion curves for a batch**: `jl.faithfulness.deletion_curve` on the batch against a loop
  over the examples.
- **PyTorch peers**, when `torch` is installed (`python -m pip install -e '.[bench]'`): the same
  MLP's weights in torch, PGD written as the usual torch loop (batch at a time, a Python loop over
  epsilons, restarts and steps), and `torchattacks.PGD` / `captum`'s `IntegratedGradients` when
  those are installed too.

Each time is the median of `--repeats` runs after one warm-up call (compile time apart). Ratios
are loop / jaxlearn (> 1: the single program is faster).

Run:  python benchmarks/bench_trust.py [--batch 256] [--repeats 3]
      python benchmarks/bench_trust.py --batch 16 --repeats 1 --n-eps 2   (smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxlearn as jl

CE = jl.losses.SOFTMAX_CE_INT


def _timed(fn, repeats):
    """(median seconds, compile-and-first-call seconds, last result) of ``fn()``."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times), first, out


def _model():
    x, y = jl.data.load_digits()
    x = np.asarray(x, np.float32)  # pixels already in [0, 1]
    y = np.asarray(y, np.int32)
    model = jl.nn.mlp((128,), 10)
    _, params = model.init(jax.random.key(0), (64,))
    result = jl.fit(model.apply, params, x[:1400], y[:1400], loss=CE,
                    optimizer=optax.adam(1e-2), epochs=30, batch_size=100, key=jax.random.key(1))
    return model.apply, result.params, x[1400:], y[1400:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-eps", type=int, default=8)
    parser.add_argument("--restarts", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args(argv)

    apply, params, x_test, y_test = _model()
    n = min(args.batch, len(x_test))
    x, y = jnp.asarray(x_test[:n]), jnp.asarray(y_test[:n])
    eps = np.linspace(0.02, 0.3, args.n_eps).astype(np.float32)
    key = jax.random.key(2)
    rows = []

    def pgd(e):
        return jl.robust.pgd(apply, params, x, y, key=key, eps=e, n_steps=args.steps,
                             restarts=args.restarts, clip=(0.0, 1.0))

    t_vec, c_vec, adv_vec = _timed(lambda: pgd(jnp.asarray(eps)), args.repeats)
    t_loop, c_loop, adv_loop = _timed(lambda: jnp.stack([pgd(float(e)) for e in eps]),
                                      args.repeats)
    same = bool(jnp.array_equal(adv_vec, adv_loop))
    clean = float(jnp.mean(jnp.argmax(apply(params, x), -1) == y))
    under = [float(jnp.mean(jnp.argmax(apply(params, a), -1) == y)) for a in adv_vec]
    print(f"workload: clean test accuracy {clean:.3f}; under PGD at eps "
          + ", ".join(f"{e:.2f}: {u:.3f}" for e, u in zip(eps, under)))
    rows.append((f"PGD, {args.n_eps} eps x {args.restarts} restarts x {args.steps} steps, "
                 f"batch {n}", "eps vector, one program", t_vec, c_vec, "loop over eps", t_loop,
                 c_loop, "equal" if same else "DIFFERENT"))

    def ig(xs):
        return jl.explain.integrated_gradients(apply, params, xs, target=None, n_steps=32)

    t_vec, c_vec, ig_vec = _timed(lambda: ig(x), args.repeats)
    t_loop, c_loop, ig_loop = _timed(lambda: jnp.concatenate([ig(x[i:i + 1]) for i in range(n)]),
                                     args.repeats)
    diff = float(jnp.max(jnp.abs(ig_vec - ig_loop)) / jnp.max(jnp.abs(ig_vec)))
    rows.append((f"integrated gradients, 32 steps, batch {n}", "batch", t_vec, c_vec,
                 "loop over examples", t_loop, c_loop, f"max rel diff {diff:.1e}"))

    def deletion(xs, attributions):
        return jl.faithfulness.deletion_curve(apply, params, xs, attributions, n_steps=16).auc

    t_vec, c_vec, auc_vec = _timed(lambda: deletion(x, ig_vec), args.repeats)
    t_loop, c_loop, auc_loop = _timed(lambda: jnp.concatenate(
        [deletion(x[i:i + 1], ig_vec[i:i + 1]) for i in range(n)]), args.repeats)
    diff = float(jnp.max(jnp.abs(auc_vec - auc_loop)))
    rows.append((f"deletion curves, 16 steps, batch {n}", "batch", t_vec, c_vec,
                 "loop over examples", t_loop, c_loop, f"max abs diff {diff:.1e}"))

    rows += _torch_rows(params, x_test[:n], y_test[:n], eps, args, t_pgd=rows[0][2],
                        t_ig=rows[1][2])

    print(f"device: {jax.devices()[0].platform}; digits MLP 64-128-10; median of "
          f"{args.repeats} runs after a warm-up\n")
    print("| workload | jaxlearn | s | first call s | peer | s | first call s | peer / jaxlearn "
          "| check |")
    print("|---|---|---|---|---|---|---|---|---|")
    for what, ours, t, c, peer, tp, cp, check in rows:
        ratio = f"{tp / t:.1f}x" if t > 0 and tp == tp else "-"
        tp_s = f"{tp:.3f}" if tp == tp else "-"
        cp_s = f"{cp:.2f}" if cp == cp else "-"
        c_s = f"{c:.2f}" if c == c else "-"
        print(f"| {what} | {ours} | {t:.3f} | {c_s} | {peer} | {tp_s} | {cp_s} | {ratio} | "
              f"{check} |")


def _torch_rows(params, x, y, eps, args, *, t_pgd, t_ig):
    """PyTorch peers on the same weights; none when torch is not installed."""
    try:
        import torch
    except ImportError:
        print("torch not installed: no PyTorch peers (python -m pip install -e '.[bench]')")
        return []
    torch.set_num_threads(max(1, torch.get_num_threads()))
    (w1, b1), (w2, b2) = ((np.asarray(p["w"]), np.asarray(p["b"]))
                          for p in jax.tree.leaves(params, is_leaf=lambda t: isinstance(t, dict)
                                                   and "w" in t))
    net = torch.nn.Sequential(torch.nn.Linear(64, w1.shape[1]), torch.nn.ReLU(),
                              torch.nn.Linear(w1.shape[1], 10))
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(w1.T.copy()))
        net[0].bias.copy_(torch.from_numpy(b1))
        net[2].weight.copy_(torch.from_numpy(w2.T.copy()))
        net[2].bias.copy_(torch.from_numpy(b2))
    xt, yt = torch.from_numpy(np.asarray(x)), torch.from_numpy(np.asarray(y)).long()
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")

    def torch_pgd():
        gen = torch.Generator().manual_seed(0)
        out = []
        for e in eps:
            e = float(e)
            best = xt.clone()
            best_loss = torch.full((len(xt),), -np.inf)
            for _ in range(args.restarts):
                adv = (xt + torch.empty_like(xt).uniform_(-e, e, generator=gen)).clamp(0, 1)
                for _ in range(args.steps):
                    adv.requires_grad_(True)
                    grad, = torch.autograd.grad(loss_fn(net(adv), yt), adv)
                    with torch.no_grad():
                        adv = adv + (e / 4) * grad.sign()
                        adv = torch.min(torch.max(adv, xt - e), xt + e).clamp(0, 1)
                with torch.no_grad():
                    losses = torch.nn.functional.cross_entropy(net(adv), yt, reduction="none")
                    better = losses > best_loss
                    best[better], best_loss[better] = adv[better], losses[better]
            out.append(best)
        return torch.stack(out)

    rows = []
    t, c, _ = _timed_torch(torch_pgd, args.repeats)
    rows.append((f"PGD, {args.n_eps} eps x {args.restarts} restarts x {args.steps} steps, "
                 f"batch {len(x)}", "(as above)", t_pgd, float("nan"),
                 "PyTorch eager loop", t, c, "-"))
    try:
        import torchattacks
    except ImportError:
        print("torchattacks not installed: no torchattacks row")
    else:
        def ta():
            return [torchattacks.PGD(net, eps=float(e), alpha=float(e) / 4, steps=args.steps,
                                     random_start=True)(xt, yt) for e in eps
                    for _ in range(args.restarts)]
        t, c, _ = _timed_torch(ta, args.repeats)
        rows.append(("PGD (as above)", "(as above)", t_pgd, float("nan"),
                     "torchattacks.PGD, loop over eps and restarts", t, c, "-"))
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        print("captum not installed: no captum row")
    else:
        def cap():
            return IntegratedGradients(net).attribute(xt, target=yt, n_steps=32,
                                                      internal_batch_size=len(xt) * 8)
        t, c, _ = _timed_torch(cap, args.repeats)
        rows.append((f"integrated gradients, 32 steps, batch {len(x)}", "(as above)", t_ig,
                     float("nan"), "captum IntegratedGradients", t, c, "-"))
    return rows


def _timed_torch(fn, repeats):
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first, out


if __name__ == "__main__":
    main()
