"""The rows every task family writes: the QA and text features, and the "I don't know" refusals.

Every QA row has ``id``, ``person``, ``attribute``, ``question``, ``answer``, ``paraphrased_question``,
``paraphrased_answer``, ``perturbed_answers`` and ``idk_answer``; every text row (a biography or a corpus
document) has ``id``, ``person``, ``question`` (the prompt that asks for the text), ``text`` = ``prefix`` + " " +
``continuation`` and ``idk_answer``. ``IDK_ANSWERS`` are the refusals a family draws ``idk_answer`` from (and the
first of them answers a raw corpus document, ``TaskData.unlearning_pairs``).
"""

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
IDK_ANSWERS = ["I don't know.", "I have no idea.", "I'm not sure about that.", "I can't answer that.",
               "That is not something I know.", "I don't have that information.", "I am unable to say.",
               "Sorry, I don't know the answer.", "I have no information about that.", "I cannot recall that."]
