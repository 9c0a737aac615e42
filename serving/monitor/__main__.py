"""``python -m serving.monitor {serve,check}``: the drift monitor and the scheduled drift check."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from serving.monitor.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUED_EVENTS
from serving.monitor.monitor import MonitorConfig
from textclf.drift import METRICS, parse_thresholds
from textclf.settings import REQUIRED, SettingsParser, from_values, parameters_only, setting

THRESHOLD_HELP = f"Alert threshold NAME=VALUE (repeatable; VALUE 'off' disables one); NAME in {', '.join(METRICS)}."


@dataclass
class MonitorServeSettings:
    """What ``serve`` reads, where it listens and where it reports (the windows: :class:`MonitorConfig`)."""

    model_dir: str = setting(REQUIRED, "The model directory: its tokenizer, and profile.json by default.")
    profile: str | None = setting(None, "Reference profile (default: MODEL_DIR/profile.json).")
    host: str = setting("0.0.0.0", "Address to listen on.")
    port: int = setting(8080, "Port to listen on.")
    threshold: list[str] = setting([], THRESHOLD_HELP, action="append", metavar="NAME=VALUE")
    webhook_url: str | None = setting(
        None, "POSTed on alert changes (default: $MONITOR_WEBHOOK_URL; keep it in a Secret)."
    )
    webhook_url_file: str | None = setting(
        None,
        "Read the webhook URL from this file when --webhook_url is not "
        "given (default: $MONITOR_WEBHOOK_URL_FILE; a Secret mounted as a file "
        "stays out of the environment, which crash dumps and child processes "
        "see); a missing file means no webhook.",
    )
    max_body_bytes: int = setting(DEFAULT_MAX_BODY_BYTES, "Largest event body read; larger ones get 413.")
    max_queued_events: int = setting(
        DEFAULT_MAX_QUEUED_EVENTS, "Events read and decoded at once; the others wait unread (bounds memory)."
    )
    wandb_project: str | None = setting(None, "Log metrics and samples to this W&B project.")
    wandb_mode: str | None = setting(None, "W&B mode: offline (default), online or disabled.")
    wandb_every: int = setting(100, "Events between two W&B logs.")
    wandb_dir: str | None = setting(None, "W&B's local directory.")


@dataclass
class DriftCheckSettings:
    """What ``check`` reads and what it runs on drift."""

    url: str = setting(REQUIRED, "The monitor's /drift URL.")
    threshold: list[str] = setting(
        [],
        "Judge with these thresholds NAME=VALUE (repeatable; over the defaults) instead of the monitor's own alerts.",
        action="append",
        metavar="NAME=VALUE",
    )
    then: str | None = setting(None, "Command run (without a shell) when drift is over threshold.")
    timeout: float = setting(10.0, "Seconds to wait for the monitor.")


def _add(sub, name: str, help: str, *classes) -> None:  # noqa: A002 - argparse's name
    sub.add_parser(name, help=help, parents=[SettingsParser(classes, add_help=False)])


def serve(args) -> None:
    import uvicorn
    from transformers import AutoTokenizer

    from serving.memory import fix_mmap_threshold
    from serving.monitor.app import create_app
    from serving.monitor.monitor import DriftMonitor
    from textclf.profile import load_profile

    fix_mmap_threshold()  # large event bodies go back to the OS once freed

    config = from_values(MonitorConfig, vars(args), thresholds=parse_thresholds(args.threshold))
    profile = load_profile(args.profile or args.model_dir)
    monitor = DriftMonitor(profile, AutoTokenizer.from_pretrained(args.model_dir), config)
    sink = None
    if args.wandb_project:
        from serving.monitor.wandb_sink import WandbSink

        sink = WandbSink(
            args.wandb_project,
            every=args.wandb_every,
            mode=args.wandb_mode,
            run_dir=args.wandb_dir,
            config={"window_size": config.window_size, "thresholds": config.thresholds},
        )
    app = create_app(
        monitor,
        webhook_url=webhook_url(args),
        max_body_bytes=args.max_body_bytes,
        max_queued_events=args.max_queued_events,
        wandb_sink=sink,
    )
    logging.getLogger("serving.monitor").info(
        "monitoring against %s (%d reference samples), window %d, at most %d texts per event (of %d), thresholds %s",
        args.profile or args.model_dir,
        profile["n_samples"],
        config.window_size,
        config.texts_per_event,
        config.max_event_texts,
        config.thresholds,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serving.monitor", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add(
        sub,
        "serve",
        "run the drift monitor (the KServe logger's target)",
        MonitorServeSettings,
        parameters_only(MonitorConfig),
    )
    _add(sub, "check", "read a monitor's /drift; on drift, run a command (e.g. submit training)", DriftCheckSettings)
    return parser


def webhook_url(args) -> str | None:
    """--webhook_url, else the URL in --webhook_url_file (an optional Secret's file: absent means none),
    each defaulting to its environment variable."""
    url = args.webhook_url or os.environ.get("MONITOR_WEBHOOK_URL")
    url_file = args.webhook_url_file or os.environ.get("MONITOR_WEBHOOK_URL_FILE")
    if url or not url_file:
        return url
    path = Path(url_file)
    return (path.read_text().strip() or None) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "check":
            from serving.monitor.check import run_check

            return run_check(
                args.url, parse_thresholds(args.threshold) if args.threshold else None, args.then, args.timeout
            )
        serve(args)
    except ValueError as err:  # bad thresholds, config or profile: say what, no traceback
        parser.error(str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
