"""Generates random JSON documents and their encodings by the Python implementations.

Usage: canonical_oracle.py SEED COUNT
Prints one JSON line per document:
  {"doc": <json text of the document>, "canonical": <hex of securesystemslib encode_canonical>,
   "storage": <hex of json.dumps(indent=1, sort_keys=True, ensure_ascii=True)>,
   "compact": <hex of json.dumps(sort_keys=True)>}
"""
import json
import random
import sys
import unicodedata

from securesystemslib.formats import encode_canonical

rng = random.Random(int(sys.argv[1]))
count = int(sys.argv[2])

PATHY = ["file", "file (1).txt", "file!", "file-1", "file#", "file\"q", "file\\b", "a/b c/d.tar.gz",
         "a", "a b", "a!", "a\"", "a#", "b", "", " ", "~", "\x7f", "dir/", "/abs", "x.y.z"]
NON_ASCII = ["é", "e\u0301", "\u00e9", "Å", "A\u030a", "\u212b", "ß", "ﬁ", "日本", "😀", "\U0001F1FA\U0001F1F8",
             "\u200b", "\ufeff", "ǅ", "Ω", "\u2126", "\u0000", "\u001f", "\t", "\n", "\r", "\b", "\f"]


def rand_str():
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(PATHY)
    if kind < 0.5:
        return rng.choice(NON_ASCII) + rng.choice(PATHY)
    if kind < 0.6:
        # A random non-NFC string: decomposed form of a composed one.
        return unicodedata.normalize("NFD", rng.choice(["é", "ñ", "Å", "ṩ", "ệ"]) * rng.randint(1, 3))
    alphabet = "abcXYZ019 ./-_!\"#\\\t\n\x01\x7fé😀"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def rand_int():
    return rng.choice([0, 1, -1, 2**31, -(2**31), 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1,
                       rng.randint(-(2**63), 2**64 - 1), rng.randint(-1000, 1000)])


def rand_value(depth):
    r = rng.random()
    if depth > 4 or r < 0.45:
        return rng.choice([rand_str, rand_int, lambda: True, lambda: False, lambda: None])()
    if r < 0.7:
        return [rand_value(depth + 1) for _ in range(rng.randint(0, 5))]
    obj = {}
    for _ in range(rng.randint(0, 6)):
        obj[rand_str()] = rand_value(depth + 1)
    if rng.random() < 0.2:
        # Keys equal up to normalisation must stay distinct.
        obj["e\u0301"] = 1
        obj["\u00e9"] = 2
    return obj


out = sys.stdout
for _ in range(count):
    doc = {} if rng.random() < 0.02 else rand_value(0)
    if not isinstance(doc, (dict, list)):
        doc = {"k": doc}
    line = {
        "doc": json.dumps(doc, ensure_ascii=True),
        "canonical": encode_canonical(doc).encode("utf-8").hex(),
        "storage": json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True).encode().hex(),
        "compact": json.dumps(doc, sort_keys=True).encode().hex(),
    }
    out.write(json.dumps(line) + "\n")
