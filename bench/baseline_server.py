"""The baseline from the tutorials: ``transformers.pipeline`` behind a minimal FastAPI endpoint,
one text per call. Only for bench/serve.py: ``python bench/baseline_server.py --model_dir D --port P``."""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline


class Review(BaseModel):
    text: str


def build_app(model_dir: str, max_length: int) -> FastAPI:
    classifier = pipeline("text-classification", model=model_dir, truncation=True, max_length=max_length)
    app = FastAPI()

    @app.post("/predict")
    def predict(review: Review) -> dict:
        return classifier(review.text)[0]

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max_length", type=int, default=256)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    uvicorn.run(build_app(args.model_dir, args.max_length), host="127.0.0.1", port=args.port, log_level="warning")
