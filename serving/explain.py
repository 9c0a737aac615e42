"""V1 ``:explain``: word attributions (``textclf.explain``) served off the event loop, within limits.

``POST /v1/models/NAME:explain`` takes what ``:predict`` takes, plus optional ``"parameters":
{"steps": N, "label": "name"}`` (integration steps, and the label whose log-odds are explained;
default: the predicted one), and answers ``{"explanations": [...]}`` in request order.

Cost is bounded per request: at most ``explain_max_steps`` steps and ``explain_max_tokens``
tokens over all its texts (counted after the served truncation); above either, 400 naming the
limit. The work is integration steps x tokens, each step a forward and a backward pass. At most
``explain_max_pending`` requests run or wait at once; more get 429, so that a burst of
explanations cannot queue up hours of work.

The work runs on one dedicated thread, not on the batcher's: one explanation costs as much as
hundreds of predictions, and in the predict queue it would hold up every prediction behind it.
Explanations are not merged across requests either: the integration steps already fill a batch.

Gradients need the fp32 PyTorch model (``Engine.torch_model``): the engine's own when it serves
PyTorch, else loaded from the Model directory on the first ``:explain`` request, so that a server
serving ONNX starts (and serves predictions) without importing torch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import HTTPException
from kserve.errors import InvalidInput

from serving.batching import BatcherClosed
from textclf.encoding import TextEncoder
from textclf.explain import Explainer, Explanation
from textclf.settings import setting

METHOD = "integrated_gradients"


@dataclasses.dataclass
class ExplainSettings:
    """``:explain``; every field is a ``python -m serving`` flag of the same name."""

    explain: bool = setting(
        True,
        "Answer :explain (integrated gradients in PyTorch fp32: an ONNX backend loads "
        "the PyTorch model at the first :explain request; false: 501).",
    )
    explain_steps: int = setting(
        64, "Integration steps when a request names none (convergence_delta in the answer says whether they sufficed)."
    )
    explain_max_steps: int = setting(128, "Most integration steps a request may ask for (400 above).")
    explain_max_tokens: int = setting(
        512, "Most tokens in one :explain request, summed over its texts after truncation (400 above)."
    )
    explain_max_pending: int = setting(
        4, "Most :explain requests running or waiting at once (429 above): they run one at a time."
    )

    def __post_init__(self):
        if not 1 <= self.explain_steps <= self.explain_max_steps:
            raise ValueError(
                f"explain_steps {self.explain_steps} must be in 1..explain_max_steps ({self.explain_max_steps})"
            )
        if self.explain_max_tokens < 1 or self.explain_max_pending < 1:
            raise ValueError(
                f"explain_max_tokens and explain_max_pending must be at least 1, got "
                f"{self.explain_max_tokens}, {self.explain_max_pending}"
            )


@dataclasses.dataclass(frozen=True)
class ExplainOptions:
    steps: int
    label: str | None


@dataclasses.dataclass(frozen=True)
class Explained:
    """What ``explain`` hands to ``postprocess``."""

    explanations: list[Explanation]
    steps: int


def parse_options(parameters: dict[str, Any], settings: ExplainSettings, labels: Sequence[str]) -> ExplainOptions:
    """The request's ``parameters``, or InvalidInput naming the problem."""
    unknown = sorted(set(parameters) - {"steps", "label"})
    if unknown:
        raise InvalidInput(f'unknown :explain parameters {unknown}: expected "steps" and/or "label"')
    steps = parameters.get("steps", settings.explain_steps)
    # JSON has one number type: 16.0 is the integer 16 (as JSON Schema's "integer" says).
    if isinstance(steps, float) and steps.is_integer():
        steps = int(steps)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise InvalidInput(f"parameters.steps must be a positive integer, got {steps!r}")
    if steps > settings.explain_max_steps:
        raise InvalidInput(
            f"parameters.steps {steps} is above the limit of {settings.explain_max_steps} (explain_max_steps)"
        )
    label = parameters.get("label")
    if label is not None and label not in labels:
        raise InvalidInput(f"parameters.label {label!r} is not one of the model's labels {list(labels)}")
    return ExplainOptions(steps, label)


class ExplainWorker:
    """Runs explanations one at a time on a thread of its own, with the request limits.

    Args:
        encoder: the served encoding (the token limit is checked on it before any model work).
        make_explainer: builds the :class:`Explainer`; called once, on the explain thread, at the
            first request that passes the limits.
        settings: the limits.
    """

    def __init__(self, encoder: TextEncoder, make_explainer: Callable[[], Explainer], settings: ExplainSettings):
        self.encoder = encoder
        self._make_explainer = make_explainer
        self._explainer: Explainer | None = None
        self.settings = settings
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="explain")
        self._lock = threading.Lock()
        self._closed = False
        self._pending = 0  # explanations running or waiting; changed on the event loop only

    async def explain(self, texts: Sequence[str], options: ExplainOptions) -> Explained:
        if self._pending >= self.settings.explain_max_pending:
            # HTTPException: the server's guards answer it as JSON {"error": ...} with this status.
            raise HTTPException(
                429,
                f"{self._pending} :explain requests are already running or waiting, the "
                f"limit (explain_max_pending); try again later",
            )
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._closed:
                raise BatcherClosed("the model is shutting down")
            job = self._pool.submit(self._explain, list(texts), options)
        self._pending += 1
        # The slot is given back when the work ends, not when the client goes away: a running
        # explanation cannot be stopped, and it still holds the thread.
        job.add_done_callback(lambda _: self._release_from_thread(loop))
        return Explained(await asyncio.wrap_future(job), options.steps)

    def _release_from_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server has stopped, nobody counts any more
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self._pending -= 1

    def _explain(self, texts: list[str], options: ExplainOptions) -> list[Explanation]:
        encoded = self.encoder.encode_spans(texts)
        tokens = sum(len(text.ids) for text in encoded)
        if tokens > self.settings.explain_max_tokens:
            raise InvalidInput(
                f"the texts have {tokens} tokens after truncation, above the :explain limit of "
                f"{self.settings.explain_max_tokens} (explain_max_tokens): send fewer or shorter texts"
            )
        if self._explainer is None:  # the explain thread only: no race
            self._explainer = self._make_explainer()
        return self._explainer.explain_encoded(encoded, options.steps, options.label)

    def close(self) -> None:
        """Stop taking work; explanations already queued still finish."""
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=True)


def explain_response(explained: Explained, labels: Sequence[str]) -> dict:
    return {
        "method": METHOD,
        "attributes": "log_odds",
        "steps": explained.steps,
        "explanations": [
            {
                "label": each.label,
                "score": max(each.probabilities),
                "probabilities": dict(zip(labels, each.probabilities)),
                "explained_label": each.explained_label,
                "words": [dataclasses.asdict(word) for word in each.words],
                "truncated": each.truncated,
                "log_odds": each.log_odds,
                "baseline_log_odds": each.baseline_log_odds,
                "convergence_delta": each.convergence_delta,
            }
            for each in explained.explanations
        ],
    }
