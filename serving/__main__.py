"""``python -m serving --model_dir DIR --model_name NAME [kserve ModelServer flags]``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys

from serving.backends import cpu_threads
from serving.classifier import InferenceSettings

DEFAULT_MODEL_DIR = "/mnt/models"  # where KServe's storage initializer puts storageUri


def build_parser() -> argparse.ArgumentParser:
    from kserve import model_server  # imported here: kserve parses sys.argv on import

    parser = argparse.ArgumentParser(description=__doc__, parents=[model_server.parser],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model_dir", default=DEFAULT_MODEL_DIR, help="Model artifact directory")
    parser.add_argument("--host", default="0.0.0.0", help="address for REST and gRPC (127.0.0.1: this machine only)")
    defaults = InferenceSettings()
    parser.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default=defaults.backend)
    parser.add_argument("--max_length", type=int, default=None, help="truncate texts to this many tokens "
                        "(default: as trained, from training.json; else the model's limit)")
    parser.add_argument("--truncation", choices=["head", "head_tail"], default=defaults.truncation,
                        help="keep the start of long texts, or the start and the end (default: as trained)")
    parser.add_argument("--head_tokens", type=int, default=defaults.head_tokens,
                        help="with head_tail: tokens kept from the start (default: a quarter of max_length, as in training)")
    parser.add_argument("--max_batch_size", type=int, default=32, help="most texts merged into one batch")
    parser.add_argument("--max_batch_delay_ms", type=float, default=2.0,
                        help="how long a request waits for others to batch with")
    parser.add_argument("--max_batch_tokens", type=int, default=defaults.max_batch_tokens,
                        help="padded tokens per forward pass; larger merged batches are split")
    parser.add_argument("--max_instances", type=int, default=128, help="most texts per request (400 above)")
    parser.add_argument("--max_body_bytes", type=int, default=4 << 20, help="largest request body (413 above)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per inference worker (default: usable CPUs / inference_workers)")
    parser.add_argument("--inference_workers", type=int, default=1,
                        help="batches run concurrently; N workers x 1 thread often beats 1 x N on small CPUs")
    parser.add_argument("--bf16", choices=["auto", "on", "off"], default=defaults.bf16,
                        help="torch bf16 autocast; auto: on CPUs with AVX512-BF16/AMX when the probe texts "
                        "keep their predictions")
    parser.add_argument("--cache_dir", default=None, help="where ONNX exports are cached "
                        "(default: $TEXTCLF_CACHE_DIR or ~/.cache/textclf-serving)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    from serving.model import TextClassifierModel
    from serving.server import TextServer

    if args.threads is None:
        args.threads = max(1, cpu_threads(None) // args.inference_workers)
    settings = InferenceSettings(**{field.name: getattr(args, field.name) for field in dataclasses.fields(InferenceSettings)
                                    if hasattr(args, field.name)})
    # The server first: it configures kserve's logging, so that loading is logged too.
    server = TextServer(host=args.host, max_body_bytes=args.max_body_bytes, http_port=args.http_port,
                        grpc_port=args.grpc_port, enable_grpc=args.enable_grpc, workers=1,
                        max_threads=args.max_threads, enable_docs_url=args.enable_docs_url,
                        enable_latency_logging=args.enable_latency_logging)
    # This package logs through the handlers kserve just configured.
    package_logger = logging.getLogger("serving")
    package_logger.setLevel(logging.INFO)
    package_logger.handlers = logging.getLogger("kserve").handlers
    package_logger.propagate = False
    model = TextClassifierModel(args.model_name, args.model_dir, settings, max_batch_size=args.max_batch_size,
                                max_batch_delay_ms=args.max_batch_delay_ms, max_instances=args.max_instances,
                                inference_workers=args.inference_workers)
    model.load()
    logging.getLogger(__name__).info("Serving %s on %s:%d", args.model_name, args.host, args.http_port)
    server.start([model])
    # Requests are drained and the model is unloaded by now. Skip the interpreter's teardown,
    # which spends seconds garbage-collecting torch/transformers objects, eating the pod's grace period.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
