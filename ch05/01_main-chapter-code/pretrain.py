"""Pretrain the chapter's GPTModel on your own text; the same as `llms-from-scratch pretrain`.

    python pretrain.py --data the-verdict.txt --out-dir run --epochs 10 --batch-size 2 --warmup-steps 9
    python pretrain.py --data my_corpus_folder/ --out-dir run --steps 2000 --eval-interval 100
    python pretrain.py --data my_corpus_folder/ --out-dir run --steps 2000 --eval-interval 100 --resume

Run with --help for every option.
"""

import sys

from llms_from_scratch.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
