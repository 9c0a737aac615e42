"""The kserve Model: a Model artifact directory served over V1 and V2 with dynamic batching."""

from __future__ import annotations

import logging
from pathlib import Path

import kserve
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferRequest

from serving.batching import BatcherClosed, DynamicBatcher
from serving.classifier import InferenceSettings, Prediction, TextClassifier
from serving.protocol import (V2_INPUTS, ParsedRequest, TextRules, parse_v1, parse_v2, v1_response, v2_outputs,
                              v2_response)

logger = logging.getLogger(__name__)


class TextClassifierModel(kserve.Model):
    """Serves one Model artifact directory under ``name``.

    ``preprocess`` parses and validates (400 with a named problem; the texts are judged by the part
    the encoder will read), ``predict`` waits for the batcher's worker thread, where texts are
    tokenized and classified (never on the event loop), ``postprocess`` writes V1 or V2.

    Args:
        name: the model name in the URL (``/v1/models/NAME:predict``).
        model_dir: the Model artifact directory (KServe mounts ``storageUri`` at /mnt/models).
        settings: backend, truncation and thread settings.
        max_batch_size: most texts merged into one batch.
        max_batch_delay_ms: how long a request waits for others to batch with.
        max_instances: most texts accepted in one request.
        inference_workers: batches run at the same time, each with ``settings.threads`` threads.
    """

    def __init__(self, name: str, model_dir: str | Path, settings: InferenceSettings, max_batch_size: int = 32,
                 max_batch_delay_ms: float = 2.0, max_instances: int = 128, inference_workers: int = 1):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self.settings = settings
        self.max_batch_size = max_batch_size
        self.max_batch_delay_ms = max_batch_delay_ms
        self.max_instances = max_instances
        self.inference_workers = inference_workers
        self.classifier: TextClassifier | None = None
        self.batcher: DynamicBatcher[str, Prediction] | None = None
        self.rules = TextRules(max_instances)

    def load(self) -> bool:
        self.classifier = TextClassifier(self.model_dir, self.settings)
        self.batcher = DynamicBatcher(self._classify, self.max_batch_size, self.max_batch_delay_ms / 1000,
                                      workers=self.inference_workers)
        self.rules = TextRules(self.max_instances, self.classifier.encoder.cut)
        parse_v1({"instances": ["warm-up"]}, self.rules)  # builds the character table now, not in a request
        logger.info("Loaded %s from %s: backend %s, labels %s, max_length %d", self.name, self.model_dir,
                    self.settings.backend, self.classifier.labels, self.classifier.max_length)
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """Graceful: requests already queued still get their answers before the thread ends."""
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()

    def _classify(self, texts: list[str]) -> list[Prediction]:
        """The batch function (worker thread). A failure caused by a text the tokenizer refuses
        becomes that request's 400; the batcher re-runs a failed merged batch request by request,
        so only the request holding the text fails."""
        try:
            return self.classifier.classify(texts)
        except Exception as error:
            try:
                self.classifier.encoder.encode(texts)
            except Exception as refused:
                raise InvalidInput(f"a text of this request cannot be tokenized: {refused}") from error
            raise

    async def healthy(self) -> bool:
        """Ready, and the batcher's workers are alive (requests would wait forever otherwise)."""
        return self.ready and self.batcher is not None and self.batcher.alive()

    def get_input_types(self) -> list[dict]:
        return V2_INPUTS

    def get_output_types(self) -> list[dict]:
        return v2_outputs(len(self.classifier.labels))

    async def preprocess(self, payload, headers=None) -> ParsedRequest:
        if isinstance(payload, InferRequest):
            return parse_v2(payload, self.rules)
        return parse_v1(payload, self.rules)

    async def predict(self, payload: ParsedRequest, headers=None, response_headers=None):
        try:
            return payload, await self.batcher.submit(payload.texts)
        except BatcherClosed as closed:
            raise ModelNotReady(self.name, str(closed)) from None

    async def postprocess(self, result, headers=None, response_headers=None):
        request, predictions = result
        if request.v2 is not None:
            return v2_response(request.v2, self.name, predictions)
        return v1_response(predictions, self.classifier.labels)
