"""The kserve Model: a Model artifact directory served over V1 and V2 with dynamic batching.

Classification is the core's inference engine (``textclf.inference``): the backend named by
``--backend`` (``auto``: the optimize step's choice in ``serving.json``) from its prebuilt artifact,
the encoding as trained and the length-grouped batching. This module only connects it to kserve.
"""

from __future__ import annotations

import logging
from pathlib import Path

import kserve
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferRequest
from prometheus_client import Counter

from serving.batching import BatcherClosed, DynamicBatcher
from serving.explain import Explained, ExplainSettings, ExplainWorker, explain_response, parse_options
from serving.protocol import (
    V2_INPUTS,
    ParsedRequest,
    TextRules,
    parse_v1,
    parse_v2,
    v1_response,
    v2_outputs,
    v2_response,
)
from textclf.inference import Engine, InferenceSettings, Prediction, load_engine, read_serving_file
from textclf.inference.hardware import speed_features

logger = logging.getLogger(__name__)

TOKENS = Counter("textclf_tokens", "Tokens of the texts classified (after truncation)")
PADDED_TOKENS = Counter("textclf_padded_tokens", "Tokens run through the model, padding included")


def count_tokens(tokens: int, padded: int) -> None:
    TOKENS.inc(tokens)
    PADDED_TOKENS.inc(padded)


def check_measured_cpu(model_dir: Path, backend: str) -> None:
    """Warn when the optimize step measured this model's backends on a CPU with other speed features
    (bf16, int8 dot products, vector width): the backend it chose may not be the fastest here."""
    measured = (read_serving_file(model_dir) or {}).get("measured_on") or {}
    theirs, ours = set(measured.get("features", [])), set(speed_features())
    if measured and theirs != ours:
        logger.warning(
            "backend %s was chosen on a CPU with %s; this one has %s: name another backend with --backend "
            "if it is faster here",
            backend,
            sorted(theirs) or "none of the speed features",
            sorted(ours) or "none of them",
        )


class TextClassifierModel(kserve.Model):
    """Serves one Model artifact directory under ``name``.

    ``preprocess`` parses and validates (400 with a named problem; the texts are judged by the part
    the encoder will read), ``predict`` waits for the batcher's worker thread, where texts are
    tokenized and classified (never on the event loop), ``postprocess`` writes V1 or V2.
    ``explain`` (V1 ``:explain``, see :mod:`serving.explain`) waits for the explain thread.

    Args:
        name: the model name in the URL (``/v1/models/NAME:predict``).
        model_dir: the Model artifact directory (KServe mounts ``storageUri`` at /mnt/models).
        settings: backend, truncation and thread settings.
        max_batch_size: most texts merged into one batch.
        max_batch_delay_ms: how long a request waits for others to batch with.
        max_instances: most texts accepted in one request.
        inference_workers: batches run at the same time, each with ``settings.threads`` threads.
        explain_settings: ``:explain`` limits (default: :class:`ExplainSettings`'s defaults).
    """

    def __init__(
        self,
        name: str,
        model_dir: str | Path,
        settings: InferenceSettings,
        max_batch_size: int = 32,
        max_batch_delay_ms: float = 2.0,
        max_instances: int = 128,
        inference_workers: int = 1,
        explain_settings: ExplainSettings | None = None,
    ):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.settings = settings
        self.max_batch_size = max_batch_size
        self.max_batch_delay_ms = max_batch_delay_ms
        self.max_instances = max_instances
        self.inference_workers = inference_workers
        self.engine: Engine | None = None
        self.batcher: DynamicBatcher[str, Prediction] | None = None
        self.rules = TextRules(max_instances)
        self.explain_settings = explain_settings or ExplainSettings()
        self.explainer: ExplainWorker | None = None

    def load(self) -> bool:
        self.engine = load_engine(self.model_dir, self.settings)
        self.engine.observe = count_tokens
        self.batcher = DynamicBatcher(
            self._classify, self.max_batch_size, self.max_batch_delay_ms / 1000, workers=self.inference_workers
        )
        self.rules = TextRules(self.max_instances, self.engine.encoder.cut)
        parse_v1({"instances": ["warm-up"]}, self.rules)  # builds the character table now, not in a request
        if self.explain_settings.explain:
            self.explainer = ExplainWorker(self.engine.encoder, self._make_explainer, self.explain_settings)
        check_measured_cpu(self.model_dir, self.engine.name)
        logger.info(
            "Loaded %s from %s: backend %s, labels %s, max_length %d",
            self.name,
            self.model_dir,
            self.engine.name,
            self.engine.labels,
            self.engine.encoder.max_length,
        )
        self.ready = True
        return self.ready

    def _make_explainer(self):
        from textclf.explain import Explainer

        return Explainer(
            self.engine.torch_model(), self.engine.encoder, self.engine.labels, self.settings.max_batch_tokens
        )

    def stop(self) -> None:
        """Graceful: requests already queued still get their answers before the thread ends."""
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()
        if self.explainer is not None:
            self.explainer.close()

    def _classify(self, texts: list[str]) -> list[Prediction]:
        """The batch function (worker thread). A failure caused by a text the tokenizer refuses
        becomes that request's 400; the batcher re-runs a failed merged batch request by request,
        so only the request holding the text fails."""
        try:
            return self.engine.classify(texts)
        except Exception as error:
            try:
                self.engine.encoder.encode(texts)
            except Exception as refused:  # noqa: BLE001 - whatever the tokenizer raises, the text is what it refused
                raise InvalidInput(f"a text of this request cannot be tokenized: {refused}") from error
            raise

    async def healthy(self) -> bool:
        """Ready, and the batcher's workers are alive (requests would wait forever otherwise)."""
        return self.ready and self.batcher is not None and self.batcher.alive()

    def get_input_types(self) -> list[dict]:
        return V2_INPUTS

    def get_output_types(self) -> list[dict]:
        return v2_outputs(len(self.engine.labels))

    async def preprocess(self, payload, headers=None) -> ParsedRequest:
        if isinstance(payload, InferRequest):
            return parse_v2(payload, self.rules)
        return parse_v1(payload, self.rules)

    async def predict(self, payload: ParsedRequest, headers=None, response_headers=None):
        try:
            return payload, await self.batcher.submit(payload.texts)
        except BatcherClosed as closed:
            raise ModelNotReady(self.name, str(closed)) from None

    async def explain(self, payload: ParsedRequest, headers=None):
        if self.explainer is None:
            raise NotImplementedError("explanations are off on this server (--explain false)")
        if payload.v2 is not None:
            raise InvalidInput(":explain takes V1 requests only")
        options = parse_options(payload.parameters, self.explain_settings, self.engine.labels)
        try:
            return await self.explainer.explain(payload.texts, options)
        except BatcherClosed as closed:
            raise ModelNotReady(self.name, str(closed)) from None

    async def postprocess(self, result, headers=None, response_headers=None):
        if isinstance(result, Explained):
            return explain_response(result, self.engine.labels)
        request, predictions = result
        if request.v2 is not None:
            return v2_response(request.v2, self.name, predictions)
        return v1_response(predictions, self.engine.labels)
