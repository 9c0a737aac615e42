"""Optimize step: build each serving backend's artifact beside the model, measure it against fp32
PyTorch on the validation split, and record which one serves (``serving.json``).

The step's output is a new Model directory: the trained model's files plus ``onnx/`` (the fp32
export and its int8 quantization) and ``serving.json``. Evaluate scores that directory, the gate
decides on those numbers and deploy's ``storageUri`` names it: the bytes that were scored are the
bytes that serve, and a predictor pod starts without exporting anything.

Each backend (``textclf.inference.BACKENDS``) scores validation texts beside fp32 PyTorch, in the
engine's own batching: label flips (a share of the texts), the largest probability change,
accuracy, and its speed on this step's CPU (texts/s; backends take turns on each batch, so that a
busy neighbour slows them alike). ``auto`` then picks by ``textclf.inference.choice.RULE``.

The cost is bounded: at most ``max_agreement_texts`` validation texts (a seeded sample of a larger
split; they are held in memory, a few MB); a backend this CPU cannot run well (bf16 without
native bf16) is left out with the reason; and every backend scores only the first 256 texts
before, fastest first, only the likely choice goes on to the rest (:func:`screen_then_confirm`):
fp32 PyTorch and one or two backends score the whole split, not all of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from textclf.inference.backends import BACKENDS, REFERENCE
from textclf.inference.choice import may_win, needs_torch
from textclf.settings import SettingsParser, backend_flip_rate_setting, seed_setting, setting

log = logging.getLogger(__name__)

ALL = "all"
BATCH_ROWS = 512  # validation texts read, encoded and scored by every backend at a time
SCREEN_TEXTS = 256  # texts every backend scores before only the likely choice goes on (screen_then_confirm)
PROGRESS_SECONDS = 30.0
WARM_UP_TEXTS = 8  # scored once by each backend before it is timed (allocations, kernel choice)


@dataclasses.dataclass
class OptimizeSettings:
    """Which serving backends are built and how they are measured."""

    candidate_backends: str = setting(
        ALL,
        "Serving backends to build and measure against fp32 PyTorch, comma-"
        f"separated ({', '.join(BACKENDS)}), or all: every one this CPU "
        "runs well (torch-bf16 only with native bf16). torch is always measured: it "
        "is the reference.",
    )
    max_backend_flip_rate: float = backend_flip_rate_setting()
    max_agreement_texts: int = setting(
        5000,
        "Most validation texts the backends are measured on (a seeded sample "
        "of a larger split, held in memory): bounds the step's time.",
    )
    seed: int = seed_setting()

    def __post_init__(self):
        if not 0 <= self.max_backend_flip_rate < 1:
            raise ValueError(f"max_backend_flip_rate must be in [0, 1), got {self.max_backend_flip_rate}")
        if self.max_agreement_texts < 1:
            raise ValueError(f"max_agreement_texts must be at least 1, got {self.max_agreement_texts}")
        self.candidates()  # unknown names fail here, before any work

    def candidates(self) -> list[str]:
        """The backends to measure, the reference first, in registry order."""
        names = (
            list(BACKENDS)
            if self.candidate_backends.strip() == ALL
            else [name.strip() for name in self.candidate_backends.split(",") if name.strip()]
        )
        unknown = sorted(set(names) - set(BACKENDS))
        if unknown:
            raise ValueError(f"candidate_backends: unknown {unknown}; expected {ALL} or names of {', '.join(BACKENDS)}")
        return [name for name in BACKENDS if name == REFERENCE or name in names]


def copy_model(model_dir: str, output_dir: str) -> Path:
    """The trained Model directory copied to ``output_dir``, minus serving artifacts of an earlier optimize."""
    from textclf.inference.backends import ONNX_DIR
    from textclf.inference.choice import SERVING_FILE

    out = Path(output_dir)
    shutil.copytree(model_dir, out, dirs_exist_ok=True, ignore=shutil.ignore_patterns(ONNX_DIR, SERVING_FILE))
    return out


def build_artifacts(model_dir: Path, names: list[str]) -> dict[str, dict]:
    """Build each backend's artifact (and those it is built from) in ``model_dir``; per backend what
    happened: ``{"artifact", "build_seconds", "artifact_bytes"}``, ``{"skipped": why}`` or ``{"error": ...}``."""
    results: dict[str, dict] = {}

    def build(name: str) -> dict:
        if name in results:
            return results[name]
        kind = BACKENDS[name]
        for needed in kind.requires:
            if "error" in build(needed):
                results[name] = {"error": f"needs {needed}, whose build failed"}
                return results[name]
        started = time.perf_counter()
        try:
            kind.build(model_dir)
        except Exception as error:  # noqa: BLE001 - one backend's failure leaves the others; recorded, logged
            log.error("building %s failed: %s", name, error)
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            return results[name]
        results[name] = {"artifact": kind.artifact, "build_seconds": round(time.perf_counter() - started, 2)}
        if kind.artifact:
            results[name]["artifact_bytes"] = (model_dir / kind.artifact).stat().st_size
        log.info("built %s in %.1fs", name, results[name]["build_seconds"])
        return results[name]

    for name in names:
        reason = BACKENDS[name].unavailable()
        if reason:
            results[name] = {"skipped": reason}
            log.info("%s left out: %s", name, reason)
        else:
            build(name)
    return results


def _keep_share(rows: int, cap: int) -> float:
    return 1.0 if rows <= cap else cap / rows


def _kept(text: str, seed: int, share: float) -> bool:
    """A seeded, order-free coin: the same texts are kept however the split is read."""
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < share * 2**64


def validation_batches(tokenized_dir: str, cap: int, seed: int) -> Iterator[tuple[list[str], list[int]]]:
    """The validation split's (texts, labels) in batches: all of it, or about ``cap`` texts of a larger one."""
    from textclf.data.tokenized import iter_batches

    metadata_file = Path(tokenized_dir) / "tokenize.json"
    rows = json.loads(metadata_file.read_text())["splits"]["validation"]["rows"] if metadata_file.is_file() else 0
    share = _keep_share(rows, cap)
    for batch in iter_batches(tokenized_dir, ["text", "label"], BATCH_ROWS, split="validation"):
        pairs = zip(batch.column("text").to_pylist(), batch.column("label").to_pylist())
        kept = [(text, label) for text, label in pairs if share >= 1.0 or _kept(text, seed, share)]
        if kept:
            yield [text for text, _ in kept], [label for _, label in kept]


def probe_batches(model_dir: str) -> Iterator[tuple[list[str], list[int]]]:
    """The Model directory's probe texts (``probe_texts.jsonl``: a seeded validation sample) as one
    batch: what a model optimized without its tokenized data is measured on."""
    from textclf.inference import model_labels
    from textclf.probe import read_probe_texts

    rows = read_probe_texts(model_dir)
    if not rows:
        raise FileNotFoundError(f"{model_dir} has no probe_texts.jsonl: pass the tokenize step's folder instead")
    ids = {name: index for index, name in enumerate(model_labels(model_dir))}
    yield [row["text"] for row in rows], [ids[row["label"]] for row in rows]


class Measurer:
    """Scores batches with every engine, the reference first, and keeps agreement and time per engine."""

    def __init__(self, engines: dict):
        from textclf.inference import Agreement

        self.engines = engines
        self.reference = engines[REFERENCE]
        self.agreement = {name: Agreement() for name in engines}
        self.seconds = dict.fromkeys(engines, 0.0)
        self.warm = False

    def add(self, texts: list[str], labels: list[int]) -> None:
        ids = self.reference.encoder.encode(texts)
        if not self.warm:
            for engine in self.engines.values():
                engine.probabilities_of_ids(ids[:WARM_UP_TEXTS])
            self.warm = True
        reference = self._timed(self.reference.name, ids)
        for name in self.engines:
            probabilities = reference if name == self.reference.name else self._timed(name, ids)
            self.agreement[name].add(reference, probabilities, labels)

    def confirm(self, name: str, batch: tuple[list[str], list[int]], reference=None):
        """``name`` on one more batch, against the reference's probabilities (computed here for the reference)."""
        texts, labels = batch
        probabilities = self._timed(name, self.reference.encoder.encode(texts))
        self.agreement[name].add(probabilities if reference is None else reference, probabilities, labels)
        return probabilities

    def _timed(self, name: str, ids):
        started = time.perf_counter()
        probabilities = self.engines[name].probabilities_of_ids(ids)
        self.seconds[name] += time.perf_counter() - started
        return probabilities

    def result(self, name: str) -> dict:
        return {
            **self.agreement[name].to_dict(),
            "seconds": round(self.seconds[name], 3),
            "texts_per_second": self.agreement[name].texts / max(self.seconds[name], 1e-9),
        }

    def results(self) -> dict[str, dict]:
        return {name: self.result(name) for name in self.engines}


def measure(
    model_dir: Path,
    names: list[str],
    batches: Iterator[tuple[list[str], list[int]]],
    progress: Callable[[dict[str, dict]], None] | None = None,
) -> dict[str, dict]:
    """Agreement with fp32 PyTorch and speed of every backend in ``names`` (built in ``model_dir``) on
    every text of ``batches``: what ``bench/agreement.py`` reports on a test set. ``progress`` gets the
    results so far every ``PROGRESS_SECONDS``, so that a long run that is stopped still leaves them."""
    from textclf.inference import InferenceSettings, load_engine

    measurer = Measurer({name: load_engine(model_dir, InferenceSettings(backend=name)) for name in names})
    started = logged = time.perf_counter()
    for texts, labels in batches:
        measurer.add(texts, labels)
        if time.perf_counter() - logged >= PROGRESS_SECONDS:
            logged = time.perf_counter()
            done = measurer.agreement[names[0]].texts
            results = measurer.results()
            log.info(
                "scored %d texts with %d backends (%.1f texts/s for all of them); label flips so far: %s",
                done,
                len(names),
                done / (logged - started),
                ", ".join(f"{name} {result['label_flips']}" for name, result in results.items()),
            )
            if progress is not None:
                progress(results)
    return log_results(measurer.results())


def log_results(results: dict[str, dict]) -> dict[str, dict]:
    for name, result in results.items():
        log.info(
            "%s: %.1f texts/s, %d of %d labels differ from fp32 (%.2f%%), largest probability change %.4f",
            name,
            result["texts_per_second"],
            result["label_flips"],
            result["texts"],
            100 * result["flip_rate"],
            result["max_probability_change"],
        )
    return results


def chunks(texts: list[str], labels: list[int], size: int = BATCH_ROWS) -> list[tuple[list[str], list[int]]]:
    return [(texts[start : start + size], labels[start : start + size]) for start in range(0, len(texts), size)]


def screen_then_confirm(engines: dict, texts: list[str], labels: list[int], max_flip_rate: float) -> dict[str, dict]:
    """The choice :func:`textclf.inference.choose` makes, at a fraction of measuring every backend on
    every text: all backends score the first ``SCREEN_TEXTS`` texts (their speed and a first
    agreement); then, fastest first, each backend that may win against fp32 PyTorch (faster, or a
    torch-free one tied with it: :func:`textclf.inference.choice.may_win`) scores the rest beside the
    reference until one stays within ``max_flip_rate`` over all texts (and, when that one needs torch,
    the torch-free ones tied with it on the screen, which the rule prefers). A backend whose flips exceed
    the bound stops at once; the slower ones are left at the screen (``complete``: false, with the
    reason). The reference always scores every text. ``engines``: name -> ``Engine``, the reference among them."""
    names = list(engines)
    measurer = Measurer(engines)
    screen, rest = (
        chunks(texts[:SCREEN_TEXTS], labels[:SCREEN_TEXTS]),
        chunks(texts[SCREEN_TEXTS:], labels[SCREEN_TEXTS:]),
    )
    for batch in screen:
        measurer.add(*batch)
    speeds = {name: result["texts_per_second"] for name, result in measurer.results().items()}
    contenders = sorted(
        (name for name in names if name != REFERENCE and may_win(name, speeds[name], speeds[REFERENCE])),
        key=lambda name: speeds[name],
        reverse=True,
    )
    allowed_flips = max_flip_rate * len(texts)
    references = [measurer.confirm(REFERENCE, batch) for batch in rest]  # fp32 on the rest, once
    chosen = None
    for name in contenders:
        if chosen and not (needs_torch(chosen) and may_win(name, speeds[name], speeds[chosen])):
            continue  # slower than the one that passed, and no torch-free tie with it
        for batch, reference in zip(rest, references):
            if measurer.agreement[name].label_flips > allowed_flips:
                break  # over the bound (on the screen already, or since): it cannot be chosen
            measurer.confirm(name, batch, reference)
        if measurer.agreement[name].texts == len(texts) and measurer.agreement[name].label_flips <= allowed_flips:
            chosen = chosen or name
    return log_results(
        {
            name: note(measurer.result(name), len(texts), chosen if name in contenders else None, allowed_flips)
            for name in names
        }
    )


def note(result: dict, total: int, chosen: str | None, allowed_flips: float) -> dict:
    """One backend's measurement, and why it stopped short of all ``total`` texts (``complete``);
    ``chosen``: the backend that passed before this (faster-than-fp32) one was taken further."""
    result["complete"] = result["texts"] == total
    if result["complete"]:
        return result
    if result["label_flips"] > allowed_flips:
        result["stopped"] = f"{result['label_flips']} flips after {result['texts']} texts: over the bound already"
    elif chosen is not None:
        result["stopped"] = f"slower than {chosen}, which stayed within the bound: measured on the first texts only"
    else:
        result["stopped"] = "slower than fp32 PyTorch on the first texts"
    return result


def optimize(
    model_dir: str, tokenized_dir: str | None, output_dir: str, settings: OptimizeSettings | None = None
) -> dict:
    """Build, measure and choose; writes the new Model directory with ``serving.json``.

    Args:
        model_dir: the train step's Model directory.
        tokenized_dir: the tokenize step's output (its validation split is scored); None: the
            model's own ``probe_texts.jsonl`` (256 validation texts) instead.
        output_dir: the new Model directory (the trained model's files, the artifacts, ``serving.json``).
        settings: candidates, the bound on label flips and the sample cap.

    Returns:
        ``serving.json``'s content.
    """
    from textclf.inference import InferenceSettings, load_engine
    from textclf.inference.choice import RULE, choose, write_serving_file
    from textclf.inference.hardware import cpu_summary

    settings = settings or OptimizeSettings()
    started = time.perf_counter()
    out = copy_model(model_dir, output_dir)
    backends = build_artifacts(out, settings.candidates())
    runnable = [name for name in settings.candidates() if not {"skipped", "error"} & backends[name].keys()]
    batches = (
        validation_batches(tokenized_dir, settings.max_agreement_texts, settings.seed)
        if tokenized_dir
        else probe_batches(model_dir)
    )
    pairs = [pair for texts, labels in batches for pair in zip(texts, labels)]  # at most max_agreement_texts
    if not pairs:
        raise ValueError(f"no validation texts to measure the backends on (model {model_dir})")
    texts, labels = (list(column) for column in zip(*pairs))
    engines = {name: load_engine(out, InferenceSettings(backend=name)) for name in runnable}
    measured = screen_then_confirm(engines, texts, labels, settings.max_backend_flip_rate)
    for name, result in measured.items():
        backends[name].update(result)
    chosen, reason = choose(backends, settings.max_backend_flip_rate)
    log.info("serving backend: %s", reason)
    content = {
        "backend": chosen,
        "reason": reason,
        "rule": RULE,
        "reference": runnable[0],
        "max_flip_rate": settings.max_backend_flip_rate,
        "split": "validation" if tokenized_dir else "probe",
        "measured_on": cpu_summary(),
        "seconds": round(time.perf_counter() - started, 1),
        "backends": backends,
    }
    write_serving_file(out, content)
    return content


def main(argv: list[str] | None = None) -> None:
    """``python -m textclf.optimize --model_dir DIR --output_dir NEW [--tokenized_dir TOK]``: the step on
    a model outside the pipeline (without ``--tokenized_dir``, measured on its probe texts)."""
    import argparse

    @dataclasses.dataclass
    class Paths:
        model_dir: str = setting("", "The trained Model directory.")
        output_dir: str = setting("", "Where the optimized Model directory is written.")
        tokenized_dir: str = setting(
            "", "The tokenize step's folder (validation split); empty: the model's probe texts."
        )

    parser = SettingsParser(
        [Paths, OptimizeSettings], description=main.__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    paths, settings = parser.parse_args_into_dataclasses(argv)
    if not paths.model_dir or not paths.output_dir:
        parser.error("--model_dir and --output_dir are required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    result = optimize(paths.model_dir, paths.tokenized_dir or None, paths.output_dir, settings)
    print(json.dumps({"backend": result["backend"], "reason": result["reason"]}, indent=2))


if __name__ == "__main__":
    main()
