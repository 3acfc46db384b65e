"""Training the book's GPT on your own text: the pretraining loop, token files, checkpoints and the base model.

* :mod:`.pretrain`: the resumable pretraining loop behind ``llms-from-scratch pretrain``;
* :mod:`.pretrain_loop`: the step loop both pretraining paths share, and the :class:`~.pretrain_loop.Strategy`
  through which one process or torchrun's ranks plug in;
* :mod:`.pretrain_args`: its settings and the checks that run before torch is imported;
* :mod:`.run_setup`: what both loops share (model configuration, device, mixed precision, random state, the
  checkpoint a run may resume, the loss plot);
* :mod:`.distributed_pretrain`: the same loop on every process torchrun starts (``--strategy ddp`` or ``fsdp``),
  with :mod:`.distributed` (process group, DDP / FSDP2 wrapping, full-state checkpoints) and
  :mod:`.window_stream` (every window once per epoch, dealt out to the ranks);
* :mod:`.token_loss`: micro-batch losses weighted by the global number of target tokens;
* :mod:`.corpus`: the corpus's text files and a record of them that tells when they change;
* :mod:`.token_file`: a corpus tokenized once into a memory-mapped file of token ids, with that record beside it;
* :mod:`.checkpoints`: atomic, checksummed, ``weights_only`` checkpoints that survive ``torch.compile`` and DDP
  wrappers;
* :mod:`.run_folder`: one run per output folder, and the temporary files of killed runs removed;
* :mod:`.base_model`: the GPT-2 (or quick-mode stand-in) the fine-tuning chapters start from;
* :mod:`.fused_loss`: the training loss with the output head fused into it.
"""
