"""Data-parallel training of the appendix's classifier with DistributedDataParallel, launched by torchrun.

One machine, two processes (CPU with gloo, or two GPUs with NCCL):

    torchrun --standalone --nproc_per_node=2 DDP-script.py

Two machines with 4 GPUs each: run the same command on both, naming machine 0 as the rendezvous point
(an address and a free port that both machines can reach) and giving each machine its rank:

    torchrun --nnodes=2 --nproc_per_node=4 --node_rank=0 --master_addr=10.0.0.1 --master_port=29500 DDP-script.py
    torchrun --nnodes=2 --nproc_per_node=4 --node_rank=1 --master_addr=10.0.0.1 --master_port=29500 DDP-script.py

Every process trains the same model on its own share of each global batch; during backward, DDP averages
the gradients of all processes, so every copy takes the same step. Only rank 0 prints and saves.
"""

import argparse

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from llms_from_scratch.appendix_a import (
    NeuralNetwork,
    ToyDataset,
    compute_accuracy,
    ddp_cleanup,
    ddp_setup,
    make_toy_data,
    prepare_dataloader,
    train_epochs,
)
from llms_from_scratch.checkpoints import save_checkpoint


def main(args: argparse.Namespace) -> None:
    ctx = ddp_setup(args.backend)
    try:
        if ctx.is_main:
            print(f"World size {ctx.world_size}, device {ctx.device.type}, global batch "
                  f"{args.batch_size} x {ctx.world_size} = {args.batch_size * ctx.world_size}", flush=True)
        torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP also broadcasts rank 0's)
        X, y = make_toy_data(args.num_examples, seed=args.seed)
        dataset = ToyDataset(X, y)
        loader = prepare_dataloader(dataset, args.batch_size, ctx.world_size, ctx.rank, seed=args.seed)

        model = NeuralNetwork(num_inputs=X.shape[1], num_outputs=2).to(ctx.device)
        ddp_model = DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
        optimizer = torch.optim.SGD(ddp_model.parameters(), lr=args.lr)

        train_epochs(ddp_model, loader, optimizer, args.epochs, ctx.device, log=print if ctx.is_main else None)

        if ctx.is_main:
            full = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size)
            print(f"Training accuracy (rank 0, all examples): {compute_accuracy(model.cpu(), full):.3f}")
            if args.checkpoint:
                save_checkpoint(args.checkpoint, model, world_size=ctx.world_size)
                print(f"Saved the model to {args.checkpoint}")
        torch.distributed.barrier()  # nobody leaves before rank 0 has saved
    finally:
        ddp_cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4, help="examples per process and step")
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--num-examples", type=int, default=64)
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--backend", choices=["gloo", "nccl"], default=None, help="default: nccl on GPUs, else gloo")
    parser.add_argument("--checkpoint", default=None, help="where rank 0 saves the trained model")
    main(parser.parse_args())
