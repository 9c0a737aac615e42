"""``python -m serving.monitor {serve,check}``: the drift monitor and the scheduled drift check."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from serving.monitor.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED_EVENTS
from serving.monitor.monitor import METRICS, MonitorConfig, parse_thresholds


def _add_serve(sub) -> None:
    p = sub.add_parser("serve", help="run the drift monitor (the KServe logger's target)")
    p.add_argument("--model_dir", required=True, help="the model directory: its tokenizer, and profile.json by default")
    p.add_argument("--profile", default=None, help="reference profile (default: MODEL_DIR/profile.json)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--window_size", type=int, default=MonitorConfig.window_size)
    p.add_argument("--min_samples", type=int, default=MonitorConfig.min_samples)
    p.add_argument("--max_pending", type=int, default=MonitorConfig.max_pending)
    p.add_argument("--max_event_texts", type=int, default=MonitorConfig.max_event_texts,
                   help="events with more texts get 413 too_many_texts; set it to the model server's --max_instances")
    p.add_argument("--texts_per_event", type=int, default=MonitorConfig.texts_per_event,
                   help="at most this many texts of one event (a random sample) enter the windows")
    p.add_argument("--source_key", default=None,
                   help="cap each caller's share of the windows; the caller is this ce-metadata key (a request "
                        "header in the InferenceService's logger.metadataHeaders, e.g. X-Client-Id)")
    p.add_argument("--max_source_share", type=float, default=MonitorConfig.max_source_share,
                   help="with --source_key: the largest share of a window one caller may hold")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help=f"alert threshold (repeatable; VALUE 'off' disables); NAME in {', '.join(METRICS)}")
    p.add_argument("--webhook_url", default=os.environ.get("MONITOR_WEBHOOK_URL"),
                   help="POSTed on alert changes (default: $MONITOR_WEBHOOK_URL; keep it in a Secret)")
    p.add_argument("--webhook_url_file", default=os.environ.get("MONITOR_WEBHOOK_URL_FILE"),
                   help="read the webhook URL from this file when --webhook_url is not given (a Secret mounted as "
                        "a file: it stays out of the environment, which crash dumps and child processes see); "
                        "a missing file means no webhook")
    p.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    p.add_argument("--max_queued_events", type=int, default=DEFAULT_MAX_QUEUED_EVENTS,
                   help="events read and decoded at once; the others wait unread (bounds memory)")
    p.add_argument("--wandb_project", default=None, help="log metrics and samples to this W&B project")
    p.add_argument("--wandb_mode", default=None, help="offline (default), online or disabled")
    p.add_argument("--wandb_every", type=int, default=100, help="events between two W&B logs")
    p.add_argument("--wandb_dir", default=None)


def _add_check(sub) -> None:
    p = sub.add_parser("check", help="read a monitor's /drift; on drift, run a command (e.g. submit training)")
    p.add_argument("--url", required=True, help="the monitor's /drift URL")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=VALUE",
                   help="judge with these thresholds (over the defaults) instead of the monitor's own alerts")
    p.add_argument("--then", default=None, help="command run (without a shell) when drift is over threshold")
    p.add_argument("--timeout", type=float, default=10.0)


def serve(args) -> None:
    import uvicorn
    from transformers import AutoTokenizer

    from textclf.profile import load_profile
    from serving.monitor.app import create_app
    from serving.memory import fix_mmap_threshold
    from serving.monitor.monitor import DriftMonitor

    fix_mmap_threshold()  # large event bodies go back to the OS once freed

    config = MonitorConfig(
        window_size=args.window_size,
        min_samples=args.min_samples,
        max_pending=args.max_pending,
        thresholds=parse_thresholds(args.threshold),
        max_event_texts=args.max_event_texts,
        texts_per_event=args.texts_per_event,
        source_key=args.source_key,
        max_source_share=args.max_source_share,
    )
    profile = load_profile(args.profile or args.model_dir)
    monitor = DriftMonitor(profile, AutoTokenizer.from_pretrained(args.model_dir), config)
    sink = None
    if args.wandb_project:
        from serving.monitor.wandb_sink import WandbSink

        sink = WandbSink(args.wandb_project, every=args.wandb_every, mode=args.wandb_mode, dir=args.wandb_dir,
                         config={"window_size": config.window_size, "thresholds": config.thresholds})
    app = create_app(monitor, webhook_url=webhook_url(args), max_body_bytes=args.max_body_bytes,
                     max_queued_events=args.max_queued_events, wandb_sink=sink)
    logging.getLogger("serving.monitor").info(
        "monitoring against %s (%d reference samples), window %d, at most %d texts per event (of %d), thresholds %s",
        args.profile or args.model_dir, profile["n_samples"], config.window_size, config.texts_per_event,
        config.max_event_texts, config.thresholds,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_check(sub)
    return parser


def webhook_url(args) -> str | None:
    """--webhook_url, else the URL in --webhook_url_file (an optional Secret's file: absent means none)."""
    if args.webhook_url or not args.webhook_url_file:
        return args.webhook_url
    path = Path(args.webhook_url_file)
    return (path.read_text().strip() or None) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "check":
            from serving.monitor.check import run_check

            return run_check(args.url, parse_thresholds(args.threshold) if args.threshold else None, args.then, args.timeout)
        serve(args)
    except ValueError as err:  # bad thresholds, config or profile: say what, no traceback
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
