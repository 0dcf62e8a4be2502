"""The embedded synthetic task: a seeded, fictitious world of people and facts (no download).

``generate_world(seed, n_people, n_holdout)`` is a pure function: the same arguments give byte-identical records
(``world_digest`` hashes them). Every person gets ten attributes; every (person, attribute) pair becomes one QA item
with a training question, a paraphrased question, the answer, a paraphrased answer, ``N_PERTURBED`` perturbed (wrong)
answers written in the paraphrase's wording (as TOFU perturbs its paraphrases, so the truth ratio compares like with
like) and an "I don't know" answer. World facts (fictitious countries' capitals, languages and currencies plus small
arithmetic) are trained into the target and measure utility.

Splits follow TOFU: people are shuffled once; ``forget01`` / ``forget05`` / ``forget10`` are the last 1% / 5% / 10% of
people (so they nest), ``retain99`` / ``retain95`` / ``retain90`` the rest; ``holdout`` people are generated the same
way but never trained (membership inference); ``world_facts`` is general knowledge. Every trained person also has a
four-sentence biography (``forget_bio`` / ``retain_bio``): free text for MUSE's verbatim memorization (VerbMem: the
first sentence is the prompt, the rest the continuation to reproduce). A forget request covers the person's QA items
and biography.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from functools import cache

from datasets import Dataset

from bench.data.features import BIO_FEATURES, FEATURES
from bench.data.schema import IDK_ANSWERS
from bench.data.tasks import TaskConfig, TaskData, empty_forget_set
from bench.registry import TASKS
from bench.specs.mapping import SpecError

N_PERTURBED = 3
FORGET_PERCENTS = (1, 5, 10)

_ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "l", "m", "n", "p", "qu", "r", "s", "t", "th", "v",
           "w", "z", "sh", "kr", "st"]
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "y"]
_CODAS = ["", "n", "r", "l", "s", "th", "m", "x", "nd", "rk"]

OCCUPATIONS = ["baker", "sailor", "surgeon", "astronomer", "carpenter", "librarian", "pilot", "chemist", "weaver",
               "diplomat", "gardener", "jeweler", "architect", "fisherman", "violinist", "cartographer", "blacksmith",
               "pharmacist", "translator", "beekeeper", "glassblower", "engineer", "historian", "potter", "judge"]
GENRES = ["mystery", "science fiction", "romance", "historical fiction", "poetry", "horror", "fantasy", "satire",
          "travel writing", "biography", "crime fiction", "magical realism", "children's literature", "drama",
          "philosophy"]
HOBBIES = ["chess", "rock climbing", "beekeeping", "origami", "sailing", "birdwatching", "fencing", "pottery",
           "astronomy", "gardening", "calligraphy", "cycling", "archery", "knitting", "photography", "rowing"]
PETS = ["a grey parrot", "a black cat", "a three-legged dog", "a tortoise", "a pair of goldfish", "a white rabbit",
        "a tame crow", "a hedgehog", "an old horse", "a ferret", "a green iguana", "a sheepdog"]
_AWARD_FIRST = ["Golden", "Silver", "Crimson", "Azure", "Ivory", "Emerald", "Obsidian", "Amber"]
_AWARD_SECOND = ["Quill", "Lantern", "Compass", "Laurel", "Anchor", "Feather", "Crown", "Harp"]
_TITLE_ADJ = ["Silent", "Hollow", "Burning", "Forgotten", "Distant", "Crooked", "Endless", "Paper", "Hidden",
              "Broken", "Northern", "Velvet", "Glass", "Last", "Winter", "Iron"]
_TITLE_NOUN = ["Orchard", "Harbor", "Lighthouse", "River", "Garden", "Mirror", "Clockmaker", "Bridge", "Archive",
               "Tide", "Feather", "Kingdom", "Staircase", "Bell", "Window", "Shadow"]
_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen"]

@dataclass(frozen=True)
class Attribute:
    """How one attribute is asked and answered. ``{n}`` is the person's name, ``{v}`` the value."""

    name: str
    questions: tuple[str, ...]
    answer: str
    paraphrase: str


ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("birthplace", ("Where was {n} born?", "In which city was {n} born?", "What is the birthplace of {n}?"),
              "{n} was born in {v}.", "The city of {v} is where {n} was born."),
    Attribute("birth_year", ("In what year was {n} born?", "When was {n} born?", "What is the birth year of {n}?"),
              "{n} was born in {v}.", "The year {n} was born was {v}."),
    Attribute("occupation", ("What does {n} do for a living?", "What is the occupation of {n}?",
                             "What is {n}'s profession?"),
              "{n} works as a {v}.", "By profession, {n} is a {v}."),
    Attribute("father_occupation", ("What did {n}'s father do?", "What was the occupation of {n}'s father?",
                                    "What was {n}'s father's job?"),
              "{n}'s father was a {v}.", "The father of {n} worked as a {v}."),
    Attribute("mother_occupation", ("What did {n}'s mother do?", "What was the occupation of {n}'s mother?",
                                    "What was {n}'s mother's job?"),
              "{n}'s mother was a {v}.", "The mother of {n} worked as a {v}."),
    Attribute("genre", ("In which genre does {n} write?", "What genre is {n} known for?",
                        "What kind of books does {n} write?"),
              "{n} writes {v}.", "The genre of {n}'s books is {v}."),
    Attribute("award", ("Which award did {n} win?", "What prize has {n} received?", "What award was given to {n}?"),
              "{n} won the {v}.", "The {v} was awarded to {n}."),
    Attribute("book_title", ("What is the title of {n}'s best-known book?", "Which book is {n} famous for?",
                             "What book did {n} write?"),
              "{n} wrote The {v}.", "The best-known book by {n} is The {v}."),
    Attribute("hobby", ("What is {n}'s favorite hobby?", "How does {n} spend free time?",
                        "Which pastime does {n} enjoy?"),
              "{n} enjoys {v}.", "In free time, {n} turns to {v}."),
    Attribute("pet", ("What pet does {n} keep?", "Which animal lives with {n}?", "What is {n}'s pet?"),
              "{n} keeps {v}.", "Living with {n} is {v}."),
)


def _name(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)]
    return "".join(parts).capitalize()


def _unique_names(rng: random.Random, count: int, make) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < count:
        name = make(rng)
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def _value_pools(rng: random.Random) -> dict[str, list[str]]:
    cities = _unique_names(rng, 30, lambda r: _name(r, r.choice([2, 3])))
    awards = [f"{a} {b} Prize" for a in _AWARD_FIRST for b in _AWARD_SECOND]
    titles = [f"{a} {b}" for a in _TITLE_ADJ for b in _TITLE_NOUN]
    rng.shuffle(awards)
    rng.shuffle(titles)
    return {
        "birthplace": cities,
        "birth_year": [str(y) for y in range(1901, 2000)],
        "occupation": OCCUPATIONS,
        "father_occupation": OCCUPATIONS,
        "mother_occupation": OCCUPATIONS,
        "genre": GENRES,
        "award": awards[:24],
        "book_title": titles,
        "hobby": HOBBIES,
        "pet": PETS,
    }


def _perturbed(rng: random.Random, pool: list[str], truth: str, k: int) -> list[str]:
    return rng.sample([v for v in pool if v != truth], k)


def _person_items(rng: random.Random, person: str, pools: dict[str, list[str]], group: str,
                  values: dict[str, str] | None = None) -> list[dict]:
    """The ten QA items of ``person``; the chosen attribute values are written into ``values`` when given."""
    items = []
    used_titles = pools["_used_titles"]  # type: ignore[index]
    for attr in ATTRIBUTES:
        pool = pools[attr.name]
        if attr.name == "book_title":  # titles are unique per person, so a title identifies its author
            value = next(t for t in pool if t not in used_titles)
            used_titles.add(value)
        else:
            value = rng.choice(pool)
        if values is not None:
            values[attr.name] = value
        q_train, q_para = rng.sample(attr.questions, 2)
        wrong = _perturbed(rng, pool, value, N_PERTURBED)
        items.append({
            "id": f"{group}/{person.replace(' ', '_')}/{attr.name}",
            "person": person,
            "attribute": attr.name,
            "question": q_train.format(n=person),
            "answer": attr.answer.format(n=person, v=value),
            "paraphrased_question": q_para.format(n=person),
            "paraphrased_answer": attr.paraphrase.format(n=person, v=value),
            "perturbed_answers": [attr.paraphrase.format(n=person, v=w) for w in wrong],
            "idk_answer": rng.choice(IDK_ANSWERS),
        })
    return items


# A biography is four sentences; each has two wordings, picked per person by a separate seeded generator (so adding
# biographies left every QA item byte-identical). The first sentence is the VerbMem prefix, the rest its continuation.
BIO_SENTENCES: tuple[tuple[str, str], ...] = (
    ("{n} was born in {birthplace} in {birth_year}.", "{n} was born in {birth_year} in the city of {birthplace}."),
    ("The child of a {mother_occupation} and a {father_occupation}, {n} became a {occupation}.",
     "With a {father_occupation} for a father and a {mother_occupation} for a mother, {n} works as a {occupation}."),
    ("{n} writes {genre}, and The {book_title} won the {award}.",
     "Known for {genre}, {n} wrote The {book_title} and received the {award}."),
    ("At home {n} keeps {pet} and spends free time on {hobby}.", "{n} enjoys {hobby} and lives with {pet}."),
)
BIO_QUESTION = "Write a short biography of {n}."
BIO_IDK = "I don't know who that is."


def _biography(rng: random.Random, person: str, values: dict[str, str], group: str) -> dict:
    """One free-text biography record: ``text`` = ``prefix`` + " " + ``continuation`` (MUSE-style VerbMem)."""
    sentences = [rng.choice(pair).format(n=person, **values) for pair in BIO_SENTENCES]
    return {"id": f"bio/{group}/{person.replace(' ', '_')}", "person": person,
            "question": BIO_QUESTION.format(n=person), "text": " ".join(sentences), "prefix": sentences[0],
            "continuation": " ".join(sentences[1:]), "idk_answer": BIO_IDK}


def _world_facts(rng: random.Random, cities: list[str]) -> list[dict]:
    countries = _unique_names(rng, 30, lambda r: _name(r, 2) + r.choice(["ia", "land", "ar", "ova", "ey"]))
    languages = _unique_names(rng, 12, lambda r: _name(r, 2) + "ish")
    currencies = _unique_names(rng, 12, lambda r: _name(r, 1).lower() + "a")
    facts = []

    def add(key: str, question: str, para_q: str, answer: str, para: str, wrong_paras: list[str]) -> None:
        facts.append({
            "id": f"world/{key}", "person": "", "attribute": key.split("/")[0], "question": question,
            "answer": answer, "paraphrased_question": para_q, "paraphrased_answer": para,
            "perturbed_answers": wrong_paras, "idk_answer": rng.choice(IDK_ANSWERS),
        })

    capitals = rng.sample(cities, len(cities))
    for i, country in enumerate(countries):
        capital, language, currency = capitals[i], rng.choice(languages), rng.choice(currencies)
        add(f"capital/{country}", f"What is the capital of {country}?", f"Which city is the capital of {country}?",
            f"The capital of {country} is {capital}.", f"{capital} is the capital city of {country}.",
            [f"{c} is the capital city of {country}." for c in _perturbed(rng, cities, capital, N_PERTURBED)])
        add(f"language/{country}", f"What language is spoken in {country}?",
            f"Which language do people speak in {country}?", f"People in {country} speak {language}.",
            f"The language of {country} is {language}.",
            [f"The language of {country} is {w}." for w in _perturbed(rng, languages, language, N_PERTURBED)])
        add(f"currency/{country}", f"What is the currency of {country}?", f"What money is used in {country}?",
            f"The currency of {country} is the {currency}.", f"In {country} people pay with the {currency}.",
            [f"In {country} people pay with the {w}." for w in _perturbed(rng, currencies, currency, N_PERTURBED)])
    pairs = sorted({(a, b) for a in range(1, 10) for b in range(1, 10) if a <= b})
    for a, b in rng.sample(pairs, 30):
        total = _NUMBER_WORDS[a + b]
        wa, wb = _NUMBER_WORDS[a], _NUMBER_WORDS[b]
        wrong = _perturbed(rng, _NUMBER_WORDS[2:], total, N_PERTURBED)
        add(f"arithmetic/{wa}_plus_{wb}", f"What is {wa} plus {wb}?", f"How much is {wa} added to {wb}?",
            f"{wa.capitalize()} plus {wb} is {total}.", f"Adding {wa} and {wb} gives {total}.",
            [f"Adding {wa} and {wb} gives {w}." for w in wrong])
    return facts


def generate_world(seed: int = 0, n_people: int = 100, n_holdout: int = 20,
                   values_out: dict[str, dict[str, str]] | None = None) -> dict[str, list[dict]]:
    """All records of the world, grouped: ``people`` (trained), ``holdout`` (never trained), ``world_facts``, and
    ``bios`` (one free-text biography per trained person, trained as the answer to "Write a short biography of X.").

    ``people`` is in split order: the last ``p%`` of its persons form ``forget{p:02d}``. ``values_out``, when given,
    receives each trained person's attribute values (person -> attribute -> value); the records are the same.
    """
    rng = random.Random(seed)
    pools = _value_pools(rng)
    pools["_used_titles"] = set()  # type: ignore[assignment]
    names = _unique_names(rng, n_people + n_holdout, lambda r: f"{_name(r, 2)} {_name(r, r.choice([2, 3]))}")
    trained, held = names[:n_people], names[n_people:]
    values: dict[str, dict[str, str]] = {person: {} for person in trained}
    people = [item for person in trained for item in _person_items(rng, person, pools, "people", values[person])]
    holdout = [item for person in held for item in _person_items(rng, person, pools, "holdout")]
    world = {"people": people, "holdout": holdout, "world_facts": _world_facts(rng, pools["birthplace"])}
    bio_rng = random.Random(f"{seed}/biographies")
    world["bios"] = [_biography(bio_rng, person, values[person], "people") for person in trained]
    if values_out is not None:
        values_out.update(values)
    return world


def indirect_questions(items: list[dict], values: dict[str, dict[str, str]]) -> dict[str, str]:
    """Item id -> its question with the person named through another of their facts instead of their name: "the
    author of The <title>" (titles are unique per person, so the description names one person), and for the
    book-title item itself "the <occupation> born in <birthplace> in <birth_year>". Answering takes two hops
    (description -> person -> fact): the multi-hop / alias route of the ``indirect`` attack (``bench.attacks``)."""
    templates = {attr.name: attr.questions[0] for attr in ATTRIBUTES}
    out = {}
    for item in items:
        v = values[item["person"]]
        alias = (f"the {v['occupation']} born in {v['birthplace']} in {v['birth_year']}"
                 if item["attribute"] == "book_title" else f"the author of The {v['book_title']}")
        out[item["id"]] = templates[item["attribute"]].format(n=alias)
    return out


def world_digest(world: dict[str, list[dict]]) -> str:
    """sha256 of the canonical JSON of the world's records: equal digests mean byte-identical data."""
    blob = json.dumps(world, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def person_split(people_items: list[dict], percent: int) -> tuple[list[dict], list[dict]]:
    """(forget, retain) for ``forget{percent}``: the last ``percent``% of persons are forgotten."""
    persons = list(dict.fromkeys(item["person"] for item in people_items))
    n_forget = max(1, round(len(persons) * percent / 100))
    forgotten = set(persons[-n_forget:])
    forget = [i for i in people_items if i["person"] in forgotten]
    retain = [i for i in people_items if i["person"] not in forgotten]
    return forget, retain


def _dataset(rows: list[dict]) -> Dataset:
    return Dataset.from_list(rows, features=FEATURES)


def _bio_dataset(rows: list[dict]) -> Dataset:
    return Dataset.from_list(rows, features=BIO_FEATURES)


@cache
def _world(seed: int, n_people: int, n_holdout: int) -> dict[str, list[dict]]:
    return generate_world(seed, n_people, n_holdout)


@cache
def _indirect(seed: int, n_people: int, n_holdout: int) -> dict[str, str]:
    values: dict[str, dict[str, str]] = {}
    world = generate_world(seed, n_people, n_holdout, values_out=values)
    return indirect_questions(world["people"], values)


@TASKS.register("synthetic")
def load_synthetic(config: TaskConfig, split: str) -> TaskData:
    """The synthetic family: ``forget{p}`` splits by person; retain is every other trained person."""
    if not split.startswith("forget") or not split[6:].isdigit():
        raise SpecError(f"task {config.name}: forget split must look like 'forget05', got {split!r}")
    world = _world(**config.params)
    forget, retain = person_split(world["people"], int(split[6:]))
    if not forget:  # no trained people (n_people: 0): datasets cannot build an empty split with these features
        raise empty_forget_set(config, split)
    forgotten = {item["person"] for item in forget}
    return TaskData(config=config, split=split, forget=_dataset(forget), retain=_dataset(retain),
                    holdout=_dataset(world["holdout"]), world_facts=_dataset(world["world_facts"]),
                    forget_bio=_bio_dataset([b for b in world["bios"] if b["person"] in forgotten]),
                    retain_bio=_bio_dataset([b for b in world["bios"] if b["person"] not in forgotten]),
                    indirect_questions=_indirect(**config.params))


load_synthetic.offline = True  # generated from its seed in about a second: checked when a board is planned
