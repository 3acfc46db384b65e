"""``llms-from-scratch evaluate``: score saved responses with ROUGE-L, exact match and (optionally) an LLM judge."""

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score instruction responses: ROUGE-L, exact match, and an OpenAI-compatible LLM judge")
    parser.add_argument("responses", help="JSON list of entries with 'output' and the response field")
    parser.add_argument("--response-key", default="model_response")
    parser.add_argument("--judge-url", default=None, help="server address (default: $LLMS_JUDGE_URL or Ollama's)")
    parser.add_argument("--judge-model", default=None, help="model name (default: $LLMS_JUDGE_MODEL or llama3.2)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per judge request")
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--no-judge", action="store_true", help="report only the metrics that need no judge")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..evaluation import JudgeClient, JudgeError, generate_model_scores, judge_free_metrics

    try:
        with open(args.responses, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"cannot read {args.responses}: {exc}", file=sys.stderr)
        return 2
    missing = [i for i, e in enumerate(entries) if args.response_key not in e or "output" not in e]
    if missing:
        print(f"{args.responses}: entries {missing[:5]} lack 'output' or {args.response_key!r}; "
              f"pass --response-key to name the response field", file=sys.stderr)
        return 2

    metrics = judge_free_metrics(entries, args.response_key)
    print(f"ROUGE-L (mean over {metrics['n']} responses): {metrics['rouge_l']:.4f}")
    print(f"exact match ({metrics['n_short']} references of at most 5 words): {metrics['exact_match']:.4f}")
    if args.no_judge:
        return 0

    settings = {k: v for k, v in (("url", args.judge_url), ("model", args.judge_model)) if v is not None}
    try:
        client = JudgeClient(timeout=args.timeout, retries=args.retries, **settings)
        scores = generate_model_scores(entries, client, args.response_key)
    except (JudgeError, ValueError) as exc:
        print(f"judge failed: {exc}", file=sys.stderr)
        return 1
    valid = [s for s in scores if s is not None]
    if valid:
        print(f"judge {client.model!r}: average score {sum(valid) / len(valid):.2f} over {len(valid)} of "
              f"{len(scores)} responses")
    else:
        print(f"judge {client.model!r}: no reply contained a score", file=sys.stderr)
        return 1
    return 0
