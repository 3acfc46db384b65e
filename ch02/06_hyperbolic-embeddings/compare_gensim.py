"""The notebook's Poincaré embeddings of the WordNet mammal closure against gensim's ``PoincareModel``.

Both are trained on the same (child, ancestor) pairs for the same number of epochs and scored with the same
function (``llms_from_scratch.hyperbolic.rank_and_map``, the reference implementation's convention); gensim's own
``ReconstructionEvaluation`` is printed beside it as a cross-check of the metric. gensim is a reference here, not a
dependency of the package: ``pip install gensim`` first.

    python compare_gensim.py --epochs 150 --dims 2 5 10
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from llms_from_scratch.data import fetch
from llms_from_scratch.hyperbolic import (
    MAMMAL_OFFSET,
    TrainConfig,
    rank_and_map,
    read_data_noun,
    subtree_closure,
    train_embeddings,
)
from llms_from_scratch.nn.autotune import cpu_description

# Nickel & Kiela's reference implementation, mammal closure, 5 dimensions (reconstruction).
REFERENCE = {"dim": 5, "mean_rank": 1.26, "map": 0.927}


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def gensim_embeddings(nodes: list[int], pairs: list[tuple[int, int]], dim: int, epochs: int, args) -> tuple:
    """Train gensim's model on the same pairs; return its vectors in our node order and its own metrics."""
    from gensim.models.poincare import PoincareModel, ReconstructionEvaluation

    relations = [(str(c), str(a)) for c, a in pairs]
    model = PoincareModel(relations, size=dim, alpha=args.gensim_alpha, negative=args.gensim_negatives,
                          burn_in=10, burn_in_alpha=args.gensim_alpha / 10, seed=0, workers=1,
                          regularization_coeff=args.gensim_regularization)
    model.train(epochs=epochs, batch_size=args.gensim_batch_size, print_every=10**9)
    vectors = np.stack([model.kv[str(i)] for i in range(len(nodes))])  # (n_nodes, dim)

    # gensim's evaluator reads relations from a tab-separated file.
    path = f"/tmp/gensim-mammal-{os.getpid()}.tsv"
    with open(path, "w") as f:
        f.writelines(f"{c}\t{a}\n" for c, a in relations)
    try:
        own = ReconstructionEvaluation(path, model.kv).evaluate(max_n=None)
    finally:
        os.remove(path)
    return torch.from_numpy(vectors).float(), own["mean_rank"], own["MAP"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--negatives", type=int, default=50, help="our negatives per pair (the notebook's)")
    parser.add_argument("--batch-size", type=int, default=50, help="our pairs per update (the notebook's)")
    parser.add_argument("--lr", type=float, default=3.0, help="our learning rate (the notebook's)")
    # gensim draws negatives in proportion to node degree and redraws the whole set until it holds no duplicate
    # and no true neighbour; in the mammal closure (where "mammal" is in every pair) 50 such draws practically
    # never succeed, so gensim keeps its own defaults.
    parser.add_argument("--gensim-negatives", type=int, default=10, help="gensim's negatives (its default)")
    parser.add_argument("--gensim-batch-size", type=int, default=10, help="gensim's batch size (its default)")
    parser.add_argument("--gensim-alpha", type=float, default=0.1, help="gensim's learning rate (its default)")
    parser.add_argument("--gensim-regularization", type=float, default=1.0,
                        help="gensim's regularization_coeff (its default; the paper has none)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    synsets = read_data_noun([fetch("wordnet-data-noun-1"), fetch("wordnet-data-noun-2")])
    nodes, edges = subtree_closure(synsets, MAMMAL_OFFSET)
    index = {offset: i for i, offset in enumerate(nodes)}
    pairs = [(index[c], index[a]) for c, a in edges]
    print(f"mammal closure: {len(nodes)} nodes, {len(pairs)} pairs; {args.epochs} epochs; ours: lr {args.lr}, "
          f"{args.negatives} negatives, batch {args.batch_size}; gensim: alpha {args.gensim_alpha}, "
          f"{args.gensim_negatives} negatives, batch {args.gensim_batch_size}, "
          f"regularization {args.gensim_regularization}")
    print(f"CPU: {cpu_description()[0]}, {args.threads} thread(s), load at start {load_average()}")

    rows = []
    for dim in args.dims:
        start = time.perf_counter()
        ours, _ = train_embeddings(len(nodes), pairs, TrainConfig(dim=dim, epochs=args.epochs, lr=args.lr,
                                                                   negatives=args.negatives,
                                                                   batch_size=args.batch_size, seed=0))
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        theirs, gensim_rank, gensim_map = gensim_embeddings(nodes, pairs, dim, args.epochs, args)
        gensim_s = time.perf_counter() - start
        ours_rank, ours_map = rank_and_map(ours, pairs)
        theirs_rank, theirs_map = rank_and_map(theirs, pairs)
        rows.append((dim, ours_rank, ours_map, ours_s, theirs_rank, theirs_map, gensim_rank, gensim_map, gensim_s))
        print(f"dim {dim:2}: ours rank {ours_rank:.2f} MAP {ours_map:.3f} ({ours_s:.0f} s) | gensim rank "
              f"{theirs_rank:.2f} MAP {theirs_map:.3f} (its own evaluator: {gensim_rank:.2f} / {gensim_map:.3f}, "
              f"{gensim_s:.0f} s)", flush=True)

    print(f"\nload at end {load_average()}")
    print("| dim | ours mean rank | ours MAP | gensim mean rank | gensim MAP | gensim's evaluator (rank / MAP) "
          "| ours s | gensim s |")
    print("|---|---|---|---|---|---|---|---|")
    for dim, o_r, o_m, o_s, t_r, t_m, g_r, g_m, g_s in rows:
        print(f"| {dim} | {o_r:.2f} | {o_m:.3f} | {t_r:.2f} | {t_m:.3f} | {g_r:.2f} / {g_m:.3f} | {o_s:.0f} "
              f"| {g_s:.0f} |")
    print(f"reference implementation (Nickel & Kiela), dim {REFERENCE['dim']}: mean rank {REFERENCE['mean_rank']}, "
          f"MAP {REFERENCE['map']}")


if __name__ == "__main__":
    main()
