"""Soak test (``make soak``): mixed good, bad and huge traffic against the model server and the
drift monitor at once, bounded in time, with the targets of issue 11 checked at the end.

Starts on loopback, each with its real CLI: the model server (``python -m serving``) and the
monitor (``python -m serving.monitor serve``). Then, with ``--concurrency`` workers:

1. warm-up (good traffic only): the RSS at its end is the "start" RSS;
2. burst for ``--duration`` seconds: every kind of :data:`KINDS`, drawn by weight, plus a few
   anonymous admin calls (unload, load) at fixed points;
3. cool-down (good traffic only), then a pause: the "end" RSS.

All along, one prober per process polls its liveness route (``/v2/health/live``, ``/healthz``).
The report: requests and statuses by kind, unexpected answers, p50/p99, health latency by phase,
RSS at start / burst peak / end. Exit status 0 when the targets hold: no good request failed, no
5xx, health p99 under 1 s in every phase, RSS at the end within 10% of the start.

    .venv/bin/python bench/soak.py [--model_dir DIR] [--duration 120] [--concurrency 16] [--report FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shlex
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.logger_agent import LoggerTarget, binary_event_headers  # noqa: E402
from bench.machine import bf16_instructions, cpu_model  # noqa: E402
from bench.monitor_demo import MODEL_NAME, Processes, predict, read_texts  # noqa: E402
from bench.net import free_port, serving_args  # noqa: E402
from bench.procmem import tree_rss_mb  # noqa: E402
from serving.monitor.events import REQUEST_TYPE, RESPONSE_TYPE  # noqa: E402

HEALTH_TARGET_S = 1.0
RSS_TOLERANCE = 0.10
PROBE_INTERVAL_S = 0.2
REQUEST_TIMEOUT_S = 60.0
ADMIN_REFUSED = frozenset({401, 403, 404, 405})
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    """One kind of traffic: where it goes, how often, which answers are right, and the calls it makes."""

    target: str  # "server" or "monitor"
    weight: int
    expected: frozenset[int]
    good: bool
    calls: Callable[[Traffic, random.Random], list[Call]]


class Traffic:
    """The bodies of every kind, built once from real texts and the server's own predictions."""

    def __init__(self, texts: list[str], predictions: list[dict], labels: list[str]):
        self.texts, self.predictions, self.labels = texts, predictions, labels
        self.predict = f"/v1/models/{MODEL_NAME}:predict"
        self.infer = f"/v2/models/{MODEL_NAME}/infer"
        self.huge_text = json.dumps({"instances": ["a very long review " * 200_000]}).encode()  # ~3.8 MB, under 4 MB
        self.too_large = json.dumps({"instances": ["x" * (5 << 20)]}).encode()
        self.issue_flood = json.dumps({"instances": ["ok film"] * 700_000}).encode()  # 7.7 MB, under the monitor's 8 MB
        self.target = LoggerTarget(url="", source="http://localhost:9081/", inference_service=MODEL_NAME)

    def some(self, rng: random.Random, most: int = 8) -> tuple[list[str], list[dict]]:
        start, size = rng.randrange(len(self.texts)), rng.randint(1, most)
        picked = [(start + i) % len(self.texts) for i in range(size)]
        return [self.texts[i] for i in picked], [self.predictions[i] for i in picked]

    def event(self, event_id: str, kind: str, body: dict | bytes, without: tuple[str, ...] = ()) -> Call:
        """A CloudEvent as KServe's logger sends it (binary mode), less the headers named in ``without``."""
        headers = binary_event_headers(self.target, event_id, kind, "application/json")
        headers = {k: v for k, v in headers.items() if k.lower() not in without}
        return Call("POST", "/", body if isinstance(body, bytes) else json.dumps(body).encode(), headers)


def _v1(texts: list[str]) -> bytes:
    return json.dumps({"instances": texts}).encode()


def _v2(texts: list[str]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}]}
    ).encode()


def _good_event(t: Traffic, rng: random.Random) -> list[Call]:
    texts, predictions = t.some(rng)
    event_id = f"soak-{rng.getrandbits(64):x}"
    return [
        t.event(event_id, REQUEST_TYPE, {"instances": texts}),
        t.event(event_id, RESPONSE_TYPE, {"predictions": predictions}),
    ]


KINDS: dict[str, Kind] = {
    # model server
    "good_v1": Kind(
        "server", 40, frozenset({200}), True, lambda t, r: [Call("POST", t.predict, _v1(t.some(r)[0]), JSON)]
    ),
    "good_v2": Kind("server", 8, frozenset({200}), True, lambda t, r: [Call("POST", t.infer, _v2(t.some(r)[0]), JSON)]),
    "bad_json": Kind(
        "server", 3, frozenset({400}), False, lambda t, r: [Call("POST", t.predict, b'{"instances": ["unclosed', JSON)]
    ),
    "bad_types": Kind(
        "server",
        3,
        frozenset({400}),
        False,
        lambda t, r: [Call("POST", t.predict, b'{"instances": [1, null, {"x": 2}]}', JSON)],
    ),
    "too_many_texts": Kind(
        "server",
        3,
        frozenset({400, 413}),
        False,
        lambda t, r: [Call("POST", t.predict, _v1(["fine film"] * 5000), JSON)],
    ),
    # Texts the tokenizer may not take (a lone surrogate, a NUL), batched with good texts of other
    # callers: refused (400) or served, they must not fail anyone else's request.
    "poison_batch": Kind(
        "server",
        4,
        frozenset({200, 400}),
        False,
        lambda t, r: [
            Call(
                "POST",
                t.predict,
                b'{"instances": ["a fine film", "\\ud800 broken \\udfff", "nul \\u0000 inside"]}',
                JSON,
            )
        ],
    ),
    "empty_text": Kind(
        "server",
        1,
        frozenset({400}),
        False,
        lambda t, r: [Call("POST", t.predict, b'{"instances": ["ok", " "]}', JSON)],
    ),
    "huge_text": Kind("server", 2, frozenset({200}), False, lambda t, r: [Call("POST", t.predict, t.huge_text, JSON)]),
    "too_large": Kind("server", 1, frozenset({413}), False, lambda t, r: [Call("POST", t.predict, t.too_large, JSON)]),
    # drift monitor
    "good_event": Kind("monitor", 25, frozenset({200}), True, _good_event),
    "event_missing_headers": Kind(
        "monitor",
        3,
        frozenset({400}),
        False,
        lambda t, r: [t.event("bad", REQUEST_TYPE, {"instances": ["x"]}, without=("ce-id", "ce-specversion"))],
    ),
    "event_bad_payload": Kind(
        "monitor", 2, frozenset({400}), False, lambda t, r: [t.event("bad", REQUEST_TYPE, b'{"instances": 7}')]
    ),
    "event_flood": Kind(
        "monitor",
        1,
        frozenset({413}),
        False,
        lambda t, r: [t.event(f"flood-{r.random()}", REQUEST_TYPE, t.issue_flood)],
    ),
}
# Anonymous admin calls, sent at fixed points of the burst: they must be refused.
ADMIN = {
    "admin_unload": Kind(
        "server", 0, ADMIN_REFUSED, False, lambda t, r: [Call("POST", f"/v2/repository/models/{MODEL_NAME}/unload")]
    ),
    "admin_load": Kind(
        "server", 0, ADMIN_REFUSED, False, lambda t, r: [Call("POST", f"/v2/repository/models/{MODEL_NAME}/load")]
    ),
}
GOOD_KINDS = [name for name, kind in KINDS.items() if kind.good]


@dataclass
class Record:
    kind: str
    phase: str
    status: int | str  # HTTP status, or "timeout" / "connection error"
    seconds: float


class Soak:
    """Workers, probes and RSS samples; every answer is recorded with the phase it came in."""

    def __init__(self, traffic: Traffic, urls: dict[str, str], pids: dict[str, int], seed: int = 0):
        self.traffic, self.urls, self.pids = traffic, urls, pids
        self.rng = random.Random(seed)
        self.records: list[Record] = []
        self.health: dict[str, list[Record]] = defaultdict(list)
        self.rss: dict[str, list[tuple[str, float]]] = defaultdict(list)
        self.phase = "warm-up"

    async def send(self, session: aiohttp.ClientSession, name: str, kind: Kind) -> None:
        for call in kind.calls(self.traffic, self.rng):
            started = time.perf_counter()
            try:
                async with session.request(
                    call.method, self.urls[kind.target] + call.path, data=call.body, headers=call.headers
                ) as response:
                    await response.read()
                    status: int | str = response.status
            except TimeoutError:
                status = "timeout"
            except aiohttp.ClientError as err:
                status = f"connection error ({type(err).__name__})"
            self.records.append(Record(name, self.phase, status, time.perf_counter() - started))

    async def worker(self, session, deadline: float, names: list[str]) -> None:
        weights = [KINDS[n].weight for n in names]
        while time.monotonic() < deadline:
            name = self.rng.choices(names, weights)[0]
            await self.send(session, name, KINDS[name])

    def probe(self, target: str, path: str, stop: threading.Event) -> None:
        """Poll a liveness route from a thread of its own, so that the load loop's own delays
        do not count as the server's."""
        while not stop.is_set():
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.urls[target] + path, timeout=REQUEST_TIMEOUT_S) as response:
                    response.read()
                    status: int | str = response.status
            except urllib.error.HTTPError as err:
                status = err.code
            except OSError as err:
                status = type(err).__name__
            self.health[target].append(Record("health", self.phase, status, time.perf_counter() - started))
            stop.wait(PROBE_INTERVAL_S)

    def sample_rss(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            self.mark_rss(self.phase)

    async def phase_run(
        self,
        session,
        phase: str,
        seconds: float,
        concurrency: int,
        names: list[str],
        exclude: frozenset[str] = frozenset(),
    ) -> None:
        self.phase = phase
        print(f"  {phase}: {seconds:.0f}s at concurrency {concurrency} ({', '.join(names)})", flush=True)
        deadline = time.monotonic() + seconds
        tasks = [asyncio.create_task(self.worker(session, deadline, names)) for _ in range(concurrency)]
        if phase == "burst":
            tasks.append(asyncio.create_task(self.admin_calls(session, seconds, exclude)))
        await asyncio.gather(*tasks)

    async def admin_calls(self, session, seconds: float, exclude: frozenset[str]) -> None:
        for share in (0.25, 0.5, 0.75):  # unload, then load, at three points of the burst
            await asyncio.sleep(seconds * 0.25)
            for name in ("admin_unload", "admin_load") if share < 0.75 else ("admin_unload",):
                if name not in exclude:
                    await self.send(session, name, ADMIN[name])

    async def run(self, args) -> None:
        stop = threading.Event()
        threads = [
            threading.Thread(target=self.sample_rss, args=(stop,), daemon=True),
            threading.Thread(target=self.probe, args=("server", "/v2/health/live", stop), daemon=True),
            threading.Thread(target=self.probe, args=("monitor", "/healthz", stop), daemon=True),
        ]
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
            for thread in threads:
                thread.start()
            await self.phase_run(session, "warm-up", args.warmup, args.concurrency, GOOD_KINDS)
            self.mark_rss("start")
            await self.phase_run(
                session,
                "burst",
                args.duration,
                args.concurrency,
                [n for n in KINDS if n not in args.exclude],
                args.exclude,
            )
            await self.phase_run(session, "cool-down", args.cooldown, args.concurrency, GOOD_KINDS)
            self.phase = "rest"
            await asyncio.sleep(args.rest)
            self.mark_rss("end")
        stop.set()
        for thread in threads:
            thread.join()

    def mark_rss(self, label: str) -> None:
        for target, pid in self.pids.items():
            self.rss[target].append((label, tree_rss_mb(pid)))


def percentile_ms(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def kind_of(name: str) -> Kind:
    return KINDS.get(name) or ADMIN[name]


def traffic_table(records: list[Record]) -> tuple[str, dict[str, int]]:
    """Markdown rows per kind, and the totals the targets need."""
    by_kind: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        by_kind[record.kind].append(record)
    totals = {"good_failed": 0, "5xx": 0, "unexpected": 0, "requests": len(records)}
    lines = [
        "| target | kind | requests | answers | unexpected | p50 ms | p99 ms |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for name, rows in by_kind.items():
        kind = kind_of(name)
        statuses = defaultdict(int)
        for row in rows:
            statuses[row.status] += 1
        unexpected = sum(1 for row in rows if row.status not in kind.expected)
        totals["unexpected"] += unexpected
        totals["5xx"] += sum(1 for row in rows if isinstance(row.status, int) and row.status >= 500)
        totals["good_failed"] += unexpected if kind.good else 0
        answers = ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items(), key=str))
        seconds = [row.seconds for row in rows]
        lines.append(
            f"| {kind.target} | {name} | {len(rows)} | {answers} | {unexpected} "
            f"| {percentile_ms(seconds, 0.5):.0f} | {percentile_ms(seconds, 0.99):.0f} |"
        )
    return "\n".join(lines), totals


def health_table(health: dict[str, list[Record]]) -> tuple[str, float]:
    phases = ["warm-up", "burst", "cool-down", "rest"]
    lines = [
        "| process | probes | not 200 | " + " | ".join(f"p99 ms {p}" for p in phases) + " | max ms |",
        "|---|---:|---:|" + "---:|" * (len(phases) + 1),
    ]
    worst = 0.0
    for target, rows in health.items():
        p99s = [percentile_ms([r.seconds for r in rows if r.phase == p], 0.99) for p in phases]
        worst = max([worst, *(p for p in p99s if p == p)])
        failed = sum(1 for r in rows if r.status != 200)
        lines.append(
            f"| {target} | {len(rows)} | {failed} | "
            + " | ".join(f"{p:.0f}" for p in p99s)
            + f" | {1000 * max(r.seconds for r in rows):.0f} |"
        )
    return "\n".join(lines), worst / 1000


def rss_table(rss: dict[str, list[tuple[str, float]]]) -> tuple[str, float]:
    lines = ["| process | start MB | burst peak MB | end MB | end vs start |", "|---|---:|---:|---:|---:|"]
    worst = 0.0
    for target, samples in rss.items():
        start = next(v for label, v in samples if label == "start")
        end = next(v for label, v in samples if label == "end")
        peak = max((v for label, v in samples if label == "burst"), default=float("nan"))
        growth = end / start - 1
        worst = max(worst, growth)
        lines.append(f"| {target} | {start:.0f} | {peak:.0f} | {end:.0f} | {100 * growth:+.1f}% |")
    return "\n".join(lines), worst


def report(soak: Soak, args, model_dir: Path) -> tuple[str, bool]:
    traffic, totals = traffic_table(soak.records)
    health, worst_health = health_table(soak.health)
    memory, worst_growth = rss_table(soak.rss)
    checks = [
        ("no good request failed", totals["good_failed"] == 0, f"{totals['good_failed']} failed"),
        ("no 5xx", totals["5xx"] == 0, f"{totals['5xx']} answers"),
        (
            f"health p99 under {HEALTH_TARGET_S:.0f} s in every phase",
            worst_health < HEALTH_TARGET_S,
            f"worst {1000 * worst_health:.0f} ms",
        ),
        (
            f"RSS back within {100 * RSS_TOLERANCE:.0f}% of its start",
            worst_growth <= RSS_TOLERANCE,
            f"worst {100 * worst_growth:+.1f}%",
        ),
    ]
    ok = all(passed for _, passed, _ in checks)
    header = (
        f"Machine: {platform.machine()} {os.cpu_count()} CPUs ({cpu_model()}; "
        f"bf16 instructions {bf16_instructions()}), load {os.getloadavg()[0]:.1f} "
        f"at the end, {date.today().isoformat()}; model {model_dir}; concurrency {args.concurrency}; warm-up "
        f"{args.warmup:.0f} s, burst {args.duration:.0f} s, cool-down {args.cooldown:.0f} s + {args.rest:.0f} s rest; "
        f"{totals['requests']} requests, {totals['unexpected']} unexpected answers."
    )
    targets = "\n".join(
        f"| {name} | {'met' if passed else '**not met**'} ({detail}) |" for name, passed, detail in checks
    )
    text = "\n\n".join([header, traffic, health, memory, "| target | result |\n|---|---|\n" + targets])
    return text + "\n", ok


def default_model() -> Path:
    from pipelines.run import latest_model

    model = latest_model(str(REPO / "runs"))
    print(f"  model of run {model.run_dir.name} (gate {model.gate})")
    return model.path


def monitor_profile(
    model_dir: Path, server_url: str, texts: list[str], labels: list[str], work_dir: Path
) -> tuple[Path, list[dict]]:
    """The model's own profile when this monitor reads it, else one built from ``texts`` through the
    server; and the server's predictions of ``texts`` (the good events' responses)."""
    import numpy as np

    from textclf.profile import ProfileError, build_reference_profile, load_profile, save_profile

    predictions = predict(server_url + f"/v1/models/{MODEL_NAME}:predict", texts, 16)
    try:
        load_profile(model_dir)
        return model_dir / "profile.json", predictions
    except ProfileError as err:
        print(f"  the model's profile cannot be used ({err}); building one from {len(texts)} texts")
    from transformers import AutoTokenizer

    probabilities = np.array([[p["probabilities"][name] for name in labels] for p in predictions])
    profile = build_reference_profile(
        texts, probabilities.argmax(1).tolist(), labels, probabilities, AutoTokenizer.from_pretrained(model_dir)
    )
    return save_profile(profile, work_dir), predictions


def start(processes: Processes, model_dir: Path, args) -> tuple[dict[str, str], Traffic]:
    ports = {name: free_port() for name in ("server", "grpc", "monitor")}
    urls = {"server": f"http://127.0.0.1:{ports['server']}", "monitor": f"http://127.0.0.1:{ports['monitor']}"}
    processes.start(
        "model-server",
        serving_args(
            str(model_dir),
            ports["server"],
            *shlex.split(args.server_flags),
            model_name=MODEL_NAME,
            grpc_port=ports["grpc"],
        ),
        f"{urls['server']}/v1/models/{MODEL_NAME}",
    )
    labels = [
        v
        for _, v in sorted(
            json.loads((model_dir / "config.json").read_text())["id2label"].items(), key=lambda kv: int(kv[0])
        )
    ]
    texts = read_texts(args.data, args.texts, seed=0)
    profile, predictions = monitor_profile(model_dir, urls["server"], texts, labels, Path(args.work_dir))
    processes.start(
        "monitor",
        [
            "serving.monitor",
            "serve",
            "--model_dir",
            str(model_dir),
            "--profile",
            str(profile),
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["monitor"]),
        ],
        f"{urls['monitor']}/healthz",
    )
    return urls, Traffic(texts, predictions, labels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model_dir", default=None, help="Model artifact (default: the newest make run model whose gate passed)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of mixed traffic (the burst)")
    parser.add_argument(
        "--warmup", type=float, default=None, help="seconds of good traffic before (default: duration / 6, 5..30)"
    )
    parser.add_argument(
        "--cooldown", type=float, default=None, help="seconds of good traffic after (default: as warm-up)"
    )
    parser.add_argument("--rest", type=float, default=3.0, help="idle seconds before the end RSS")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--data", default="sample:", help="where good texts come from (any source ingest reads)")
    parser.add_argument("--texts", type=int, default=400, help="good texts (predicted once for the good events)")
    parser.add_argument(
        "--exclude", default="", help=f"comma-separated kinds left out of the burst, of: {', '.join([*KINDS, *ADMIN])}"
    )
    parser.add_argument("--report", type=Path, help="also write the Markdown report here")
    parser.add_argument("--work_dir", default=str(REPO / "build" / "soak"))
    parser.add_argument(
        "--server_flags",
        default="",
        help="more `python -m serving` flags, e.g. '--backend torch' "
        "(default: the backend the optimize step chose, named in the model's serving.json)",
    )
    args = parser.parse_args(argv)
    args.exclude = frozenset(name for name in args.exclude.split(",") if name)
    unknown = args.exclude - set(KINDS) - set(ADMIN)
    if unknown:
        parser.error(f"--exclude: unknown kinds {sorted(unknown)}")
    args.warmup = args.warmup if args.warmup is not None else min(30.0, max(5.0, args.duration / 6))
    args.cooldown = args.cooldown if args.cooldown is not None else args.warmup
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)

    print("[1/3] model server and monitor")
    model_dir = Path(args.model_dir).resolve() if args.model_dir else default_model()
    processes = Processes(Path(args.work_dir))
    try:
        urls, traffic = start(processes, model_dir, args)
        pids = {"server": processes.running[0].pid, "monitor": processes.running[1].pid}
        print("[2/3] traffic")
        soak = Soak(traffic, urls, pids)
        asyncio.run(soak.run(args))
    finally:
        processes.stop()
    print("[3/3] report\n")
    text, ok = report(soak, args, model_dir)
    print(text)
    if args.report:
        args.report.write_text(text)
    print("OK: every target met" if ok else "NOT MET: see the targets above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
