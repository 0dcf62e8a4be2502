"""The ``datasets`` features of the rows every task family writes (``bench.data.schema`` describes the rows)."""

from __future__ import annotations

from datasets import Features, Sequence, Value

FEATURES = Features({
    "id": Value("string"), "person": Value("string"), "attribute": Value("string"), "question": Value("string"),
    "answer": Value("string"), "paraphrased_question": Value("string"), "paraphrased_answer": Value("string"),
    "perturbed_answers": Sequence(Value("string")), "idk_answer": Value("string"),
})
BIO_FEATURES = Features({
    "id": Value("string"), "person": Value("string"), "question": Value("string"), "text": Value("string"),
    "prefix": Value("string"), "continuation": Value("string"), "idk_answer": Value("string"),
})
