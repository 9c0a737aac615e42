"""``python -m serving.rollout``: apply, status, promote, rollback, wait and analyze a canary.

Works in both KServe deployment modes (Serverless and Standard), read from the InferenceService.
When a model comes to serve all traffic (promote, analyze --act promoting, or an apply that needs
no canary), its W&B model version gets the alias ``production`` (the --wandb_* flags, and
WANDB_API_KEY); with W&B offline or failing, the command still succeeds and says so.

Exit codes: 0 done (analyze: promote), 1 a named error (printed), 2 bad arguments,
3 analyze decided to roll back, 4 analyze held (too little canary traffic for a verdict).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

from serving.rollout import analysis
from textclf import tracking
from textclf.platform.kube import InferenceServiceAPI
from textclf.rollout import operations
from textclf.rollout.errors import AnalysisError, InvalidManifestError, RolloutError
from textclf.settings import from_values, parameters_only

EXIT_CODES = {"promote": 0, "rollback": 3, "hold": 4}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m serving.rollout", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("-n", "--namespace", help="namespace (default: the manifest's, else the context's)")
    parser.add_argument("--request-timeout", type=float, default=30.0, help="seconds per API request")
    commands = parser.add_subparsers(dest="command", required=True)

    wandb = settings_parser(parameters_only(tracking.TrackingSettings))
    apply = commands.add_parser(
        "apply", help="create the InferenceService, or patch it so the new model is a canary", parents=[wandb]
    )
    apply.add_argument("manifest", help="InferenceService YAML or JSON file, '-' for stdin")
    apply.add_argument(
        "--canary-percent",
        type=int,
        help="traffic share for the new model when one is already live (overrides the manifest)",
    )
    apply.add_argument("--wait", type=float, metavar="SECONDS", help="then wait this long for it to be ready")

    status = commands.add_parser("status", help="readiness, revisions, traffic split, URL")
    status.add_argument("name")
    status.add_argument("--json", action="store_true", help="print JSON instead of text")

    commands.add_parser("promote", help="100%% to the canary (and W&B alias production)", parents=[wandb]).add_argument(
        "name"
    )
    commands.add_parser("rollback", help="100%% back to the previous model").add_argument("name")

    wait = commands.add_parser("wait", help="wait until ready at the current generation")
    wait.add_argument("name")
    wait.add_argument("--timeout", type=float, default=600.0, help="seconds (default 600)")
    wait.add_argument("--interval", type=float, default=5.0, help="seconds between polls (default 5)")

    analyze = commands.add_parser(
        "analyze",
        help="compare canary and previous revision, then decide",
        parents=[
            settings_parser(analysis.CanaryRules, analysis.MetricNames, parameters_only(tracking.TrackingSettings))
        ],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    analyze.add_argument("name")
    analyze.add_argument("--prometheus", required=True, help="Prometheus base URL, e.g. http://localhost:9090")
    analyze.add_argument("--ingress-url", help="send probe requests here, with the tag URL's host as Host header")
    analyze.add_argument("--model-name", help="model name in the V1 path (default: the InferenceService name)")
    analyze.add_argument(
        "--token-file",
        default=os.environ.get("TEXTCLF_TOKEN_FILE"),
        help="JWT sent as Authorization: Bearer with the probes, e.g. from `kubectl create token "
        "textclf-rollout -n textclf --audience textclf` (default: $TEXTCLF_TOKEN_FILE)",
    )
    probes = analyze.add_mutually_exclusive_group()
    probes.add_argument(
        "--probes",
        help="file with one probe text per line (default: the canary model's own "
        "probe_texts.jsonl, read from its storage URI)",
    )
    probes.add_argument("--no-probes", action="store_true", help="decide on metrics only")
    analyze.add_argument("--act", action="store_true", help="promote or roll back as decided (default: only print)")
    return parser


def settings_parser(*classes) -> argparse.ArgumentParser:
    """The flags of settings dataclasses (help from their fields), as a parent parser."""
    from transformers import HfArgumentParser

    return HfArgumentParser(list(classes), add_help=False)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return run(args)
    except RolloutError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    api = InferenceServiceAPI.connect(args.kubeconfig, args.context, timeout_s=args.request_timeout)
    ns = args.namespace
    if args.command == "apply":
        result = operations.apply_inference_service(
            load_manifest(args.manifest), ns, canary_percent=args.canary_percent, api=api
        )
        meta = result["metadata"]
        if args.wait:
            print(operations.wait_ready(meta["name"], meta["namespace"], timeout_s=args.wait, api=api).describe())
        else:
            print(f"InferenceService {meta['namespace']}/{meta['name']} applied (generation {meta.get('generation')})")
        record_production(args, result)
    elif args.command == "status":
        status = operations.get_status(args.name, ns, api=api)
        print(json.dumps(status.to_dict(), indent=2) if args.json else status.describe())
    elif args.command == "promote":
        record_production(args, operations.promote(args.name, ns, api=api))
        print(operations.get_status(args.name, ns, api=api).describe())
    elif args.command == "rollback":
        operations.rollback(args.name, ns, api=api)
        print(operations.get_status(args.name, ns, api=api).describe())
    elif args.command == "wait":
        print(
            operations.wait_ready(args.name, ns, timeout_s=args.timeout, interval_s=args.interval, api=api).describe()
        )
    elif args.command == "analyze":
        return run_analysis(args, api)
    return 0


def run_analysis(args: argparse.Namespace, api: InferenceServiceAPI) -> int:
    def values(cls):
        return from_values(cls, vars(args))

    status = operations.get_status(args.name, args.namespace, api=api)
    if args.no_probes:
        probes: tuple[str, ...] | None = ()
    elif args.probes:
        probes = load_probes(args.probes)
    else:
        probes = None  # the canary model's own
    verdict = analysis.analyze(
        status,
        analysis.Prometheus(args.prometheus),
        rules=values(analysis.CanaryRules),
        names=values(analysis.MetricNames),
        probes=probes,
        model_name=args.model_name,
        ingress_url=args.ingress_url,
        token=read_token(args.token_file),
    )
    print(f"canary analysis of InferenceService {status.namespace}/{status.name}, window {args.window}")
    print(verdict.describe())
    if verdict.action == "hold":
        print("no action: wait for more canary traffic and analyze again")
    elif args.act:
        result = getattr(operations, verdict.action)(status.name, status.namespace, api=api)
        print(f"done: {verdict.action}")
        if verdict.action == "promote":
            record_production(args, result)
    else:
        print(f"dry run: pass --act to {verdict.action}")
    return EXIT_CODES[verdict.action]


def record_production(args: argparse.Namespace, isvc: dict) -> None:
    """Give the W&B model version that now serves all traffic the alias ``production``; print what happened."""
    model_uri = operations.serving_model(isvc)
    if model_uri is None:
        return  # a canary splits the traffic: production stays where it is
    print(tracking.set_production_alias(from_values(tracking.TrackingSettings, vars(args)), model_uri))


def load_manifest(path: str) -> dict:
    """One InferenceService from a YAML/JSON file (or stdin); several documents are an error."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except OSError as e:
        raise InvalidManifestError(f"cannot read manifest {path}: {e}") from e
    except yaml.YAMLError as e:
        raise InvalidManifestError(f"manifest {path} is not valid YAML: {e}") from e
    if len(documents) != 1:
        raise InvalidManifestError(f"manifest {path} must hold exactly one document, found {len(documents)}")
    return documents[0]


def read_token(path: str | None) -> str | None:
    """The bearer token in ``path`` (surrounding whitespace dropped), None without a path."""
    if not path:
        return None
    try:
        token = Path(path).read_text().strip()
    except OSError as error:
        raise SystemExit(f"error: cannot read the token file {path}: {error.strerror}") from None
    if not token:
        raise SystemExit(f"error: the token file {path} is empty")
    return token


def load_probes(path: str) -> tuple[str, ...]:
    try:
        with open(path) as f:
            texts = tuple(line.rstrip("\n") for line in f if line.strip())
    except OSError as e:
        raise AnalysisError(f"cannot read probe file {path}: {e}") from e
    if not texts:
        raise AnalysisError(f"probe file {path} has no texts")
    return texts


if __name__ == "__main__":
    sys.exit(main())
