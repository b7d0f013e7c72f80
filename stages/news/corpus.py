"""A synthetic news-topic corpus for the sample scale, written in the course's JSON format.

Built so that counting words is not enough:
- every class shares a large vocabulary (reporting verbs, places, days, numbers,
  and ambiguous words such as "record", "deal", "launch", "talks", "network");
- more than half the texts mention two topics, and only the connective and the
  word order tell which one the text is about: "A, even as B" is about the first
  clause, "after B, A" and "not B but A" about the second (see CONNECTIVES); a bag
  of words sees both topics equally;
- a share of labels (`label_noise`) is replaced by a random other class.
So a bag-of-words model tops out well below 100%, and so must any model (label noise).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ("world", "sports", "business", "tech")

SUBJECTS = {
    "world": ["the prime minister", "un envoys", "rebel leaders", "the foreign ministry", "border guards",
              "the president", "opposition parties", "the embassy", "peace negotiators", "the parliament"],
    "sports": ["the striker", "the home side", "the head coach", "the defending champions", "the goalkeeper",
               "the olympic team", "the captain", "the visiting club", "the sprinter", "the league"],
    "business": ["the central bank", "shareholders", "the retailer", "investors", "the airline",
                 "the oil producer", "the insurer", "the automaker", "the regulator", "the bank"],
    "tech": ["the chipmaker", "software engineers", "the startup", "researchers", "the search giant",
             "the phone maker", "hackers", "the browser team", "the cloud provider", "the robotics lab"],
}  # fmt: skip
EVENTS = {
    "world": ["signed a ceasefire", "held talks on the border dispute", "imposed sanctions", "called for elections",
              "sent troops to the region", "recalled its ambassador", "approved a peace deal", "declared an emergency",
              "won the vote in parliament", "released the hostages"],
    "sports": ["won the final", "scored twice in the second half", "signed a new contract", "broke the world record",
               "lost the derby", "reached the semifinal", "sacked the manager", "clinched the title",
               "won the season opener", "launched a comeback"],
    "business": ["cut interest rates", "reported record profits", "announced a merger deal", "raised prices",
                 "cut jobs", "beat market forecasts", "filed for bankruptcy", "launched a takeover bid",
                 "won the contract", "signed a supply deal"],
    "tech": ["released a faster chip", "patched a security flaw", "launched a new service", "unveiled a phone",
             "opened the source code", "set a speed record", "upgraded the network", "shipped a software update",
             "won a patent case", "signed a licensing deal"],
}  # fmt: skip
OPENERS = ["", "", "on monday", "on tuesday", "late on friday", "this week", "in a surprise move", "as expected"]
REPORTERS = ["officials said", "sources said", "reports said", "according to a statement", "analysts said",
             "the agency reported", "a spokesman said", "witnesses said"]  # fmt: skip
PLACES = ["in london", "in new york", "in tokyo", "in berlin", "in sydney", "in paris", "in cairo", "in toronto"]
NUMBERS = ["by 3 percent", "for 2 years", "after 14 days", "with 250 staff", "in 2004", "for the 5th time", ""]

# (template, which fragment the text is about): {a}/{b} are two fragments of different classes.
CONNECTIVES = [
    ("{a} , even as {b}", "a"),
    ("{a} , while elsewhere {b}", "a"),
    ("{a} ; the news that {b} was only a side note", "a"),
    ("after {b} , {a}", "a"),
    ("days after {b} , {a}", "a"),
    ("not {b} but {a} made the headlines", "a"),
    ("{b} , but the real story is that {a}", "a"),
    ("{b} ; yet {a} dominated the day", "a"),
    ("{a} , not because {b}", "a"),
]


def fragment(rng: np.random.Generator, topic: str) -> str:
    subject = rng.choice(SUBJECTS[topic])
    event = rng.choice(EVENTS[topic])
    place = rng.choice(PLACES) if rng.random() < 0.5 else ""
    return " ".join(w for w in (subject, event, place) if w)


def text_of(rng: np.random.Generator, topic: str, mixed: bool) -> str:
    if mixed:
        other = rng.choice([c for c in CLASSES if c != topic])
        template, _ = CONNECTIVES[rng.integers(len(CONNECTIVES))]
        body = template.format(a=fragment(rng, topic), b=fragment(rng, other))
    else:
        body = fragment(rng, topic)
        if rng.random() < 0.4:
            body += " and " + rng.choice(EVENTS[topic])
    words = [rng.choice(OPENERS), body, rng.choice(NUMBERS), ",", rng.choice(REPORTERS)]
    text = " ".join(w for w in words if w).replace(" ,", ",").strip(" ,")
    return text[0].upper() + text[1:] + "."


def generate(n: int, seed: int, label_noise: float = 0.05, mixed_share: float = 0.55) -> list[dict]:
    """`n` records {"id", "text", "label"}, classes balanced, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        topic = CLASSES[i % len(CLASSES)]
        text = text_of(rng, topic, mixed=rng.random() < mixed_share)
        label = topic
        if rng.random() < label_noise:
            label = rng.choice([c for c in CLASSES if c != topic])
        records.append({"text": text, "label": str(label)})
    order = rng.permutation(n)
    return [{"id": int(k), **records[j]} for k, j in enumerate(order)]


def write_course_files(folder: Path, n_train: int, n_test: int, seed: int, label_noise: float) -> None:
    """News_train.json (id, text, label), News_test.json (id, text) and submission.csv, as the course ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    train = generate(n_train, seed, label_noise)
    test = generate(n_test, seed + 10_000, label_noise=0.0)
    for k, r in enumerate(test):
        r["id"] = n_train + k
    (folder / "News_train.json").write_text(json.dumps(train, indent=0), encoding="utf-8")
    (folder / "News_test.json").write_text(json.dumps([{"id": r["id"], "text": r["text"]} for r in test]), "utf-8")
    (folder / "submission.csv").write_text("id,label\n" + "".join(f"{r['id']},{CLASSES[0]}\n" for r in test), "utf-8")
