"""Training the book's GPT on your own text: the pretraining loop, token files, checkpoints and the base model.

* :mod:`.pretrain`: the resumable pretraining loop behind ``llms-from-scratch pretrain``;
* :mod:`.token_file`: a corpus tokenized once into a memory-mapped file of token ids;
* :mod:`.checkpoints`: atomic, ``weights_only`` checkpoints that survive ``torch.compile`` and DDP wrappers;
* :mod:`.base_model`: the GPT-2 (or quick-mode stand-in) the fine-tuning chapters start from;
* :mod:`.fused_loss`: the training loss with the output head fused into it.
"""
