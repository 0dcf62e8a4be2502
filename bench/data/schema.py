"""The rows every task family writes, and the "I don't know" refusals.

Every QA row has ``id``, ``person``, ``attribute``, ``question``, ``answer``, ``paraphrased_question``,
``paraphrased_answer``, ``perturbed_answers`` and ``idk_answer``; every text row (a biography or a corpus
document) has ``id``, ``person``, ``question`` (the prompt that asks for the text), ``text`` = ``prefix`` + " " +
``continuation`` and ``idk_answer``. ``IDK_ANSWERS`` are the refusals a family draws ``idk_answer`` from (and the
first of them answers a raw corpus document, ``TaskData.unlearning_pairs``). The ``datasets`` features of those rows
are in ``bench.data.features``: this module loads no ``datasets``, so reading a task config needs none.
"""

from __future__ import annotations

IDK_ANSWERS = ["I don't know.", "I have no idea.", "I'm not sure about that.", "I can't answer that.",
               "That is not something I know.", "I don't have that information.", "I am unable to say.",
               "Sorry, I don't know the answer.", "I have no information about that.", "I cannot recall that."]
