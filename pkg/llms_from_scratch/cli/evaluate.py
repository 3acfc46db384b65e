"""``llms-from-scratch evaluate``: score saved responses with ROUGE-L, exact match and (optionally) an LLM judge.

The judge is any OpenAI-compatible server named by ``--judge-url`` or ``$LLMS_JUDGE_URL``. When neither is given,
the command starts this project's own server with SmolLM2-135M-Instruct (``--judge-model`` picks another zoo model)
on a free local port for the length of the run, so it works offline; a 135M judge is weak, and the output says so.
"""

import json
import os
import sys

from .errors import non_negative_int, positive_float, positive_int

LOCAL_JUDGE_NOTE = (
    "note: no --judge-url or $LLMS_JUDGE_URL given, so the judge is {model} served by this project on {url}. "
    "A model this small often ignores the grading instructions: read its scores as a test of the pipeline, and "
    "point --judge-url at a larger model (Ollama, llama.cpp, vLLM) for scores that mean something."
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score instruction responses: ROUGE-L, exact match, and an OpenAI-compatible LLM judge")
    parser.add_argument("responses", help="JSON list of entries with 'output' and the response field")
    parser.add_argument("--response-key", default="model_response")
    parser.add_argument("--judge-url", default=None,
                        help="server address (default: $LLMS_JUDGE_URL; if unset, start this project's own server "
                             "with --judge-model on a free local port)")
    parser.add_argument("--judge-model", default=None,
                        help="model name (default: $LLMS_JUDGE_MODEL, else llama3.2 for a given URL and "
                             "smollm2-135m-instruct for the project's own server)")
    parser.add_argument("--judge-threads", type=positive_int, default=2, help="CPU threads of the project's own server")
    parser.add_argument("--judge-max-tokens", type=positive_int, default=16, help="longest judge reply, in tokens")
    parser.add_argument("--include-task", action="store_true",
                        help="show the judge the instruction too (helps capable judges, confuses tiny ones)")
    parser.add_argument("--timeout", type=positive_float, default=60.0, help="seconds per judge request")
    parser.add_argument("--retries", type=non_negative_int, default=2)
    parser.add_argument("--no-judge", action="store_true", help="report only the metrics that need no judge")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from ..evaluation import judge_free_metrics

    try:
        with open(args.responses, encoding="utf-8") as f:
            entries = json.load(f)
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        print(f"error: cannot read {args.responses}: {exc}", file=sys.stderr)
        return 1
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        print(f"error: {args.responses} must hold a non-empty JSON list of objects (one per response), as "
              "`llms-from-scratch finetune-instruct` writes", file=sys.stderr)
        return 1
    missing = [i for i, e in enumerate(entries)
               if not isinstance(e.get(args.response_key), str) or not isinstance(e.get("output"), str)]
    if missing:
        print(f"error: {args.responses}: entries {missing[:5]} lack a text 'output' or {args.response_key!r}; "
              f"pass --response-key to name the response field", file=sys.stderr)
        return 1

    metrics = judge_free_metrics(entries, args.response_key)
    print(f"ROUGE-L (mean over {metrics['n']} responses): {metrics['rouge_l']:.4f}")
    print(f"exact match ({metrics['n_short']} references of at most 5 words): {metrics['exact_match']:.4f}")
    if args.no_judge:
        return 0

    url = args.judge_url or os.environ.get("LLMS_JUDGE_URL")
    if url:
        return _judge(entries, args, url, args.judge_model)

    from ..serving.background_server import DEFAULT_JUDGE, ServerStartError, serve_in_background

    model = args.judge_model or DEFAULT_JUDGE
    try:
        with serve_in_background(model, threads=args.judge_threads) as server:
            print(LOCAL_JUDGE_NOTE.format(model=model, url=server.url), flush=True)
            return _judge(entries, args, server.url, model)
    except ServerStartError as exc:
        print(f"error: could not start the local judge: {exc}", file=sys.stderr)
        return 1


def _judge(entries, args, url: str, model: str | None) -> int:
    from ..evaluation import JudgeClient, JudgeError, judge_responses, summarize_scores

    settings = {"url": url, **({"model": model} if model is not None else {})}
    try:
        client = JudgeClient(timeout=args.timeout, retries=args.retries, **settings)
        judgements = judge_responses(entries, client, args.response_key, args.judge_max_tokens, args.include_task)
    except (JudgeError, ValueError) as exc:
        print(f"error: judge failed: {exc}", file=sys.stderr)
        return 1
    summary = summarize_scores([j.score for j in judgements])
    unparsed = f"; {summary['unparsed']} unparsed (no integer 0-100 in the reply), left out of the mean" \
        if summary["unparsed"] else ""
    if summary["mean"] is None:
        example = next(j.reply for j in judgements)
        print(f"error: judge {client.model!r}: no reply contained a score (first reply: {example!r})",
              file=sys.stderr)
        return 1
    print(f"judge {client.model!r}: average score {summary['mean']:.2f} over {summary['parsed']} of "
          f"{len(judgements)} responses{unparsed}")
    return 0
