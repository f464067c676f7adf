"""Generates random JSON documents and their encodings by the Python implementations.

Usage: canonical_oracle.py SEED COUNT
Prints one JSON line per document:
  {"doc": <json.dumps(doc, ensure_ascii=True)>,
   "canonical": <hex of securesystemslib.formats.encode_canonical(doc).encode("utf-8")>,
   "storage": <hex of json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True).encode()>,
   "compact": <hex of json.dumps(doc, sort_keys=True).encode()>}
The compact form sorts keys because the Rust side parses into a sorted map; Python's default
json.dumps keeps insertion order.
"""
import json
import random
import sys
import unicodedata

from securesystemslib.formats import encode_canonical

rng = random.Random(int(sys.argv[1]))
count = int(sys.argv[2])

# Path-like names, including prefixes of each other followed by characters below (" ", "!")
# and above ("#", "-", "~") the quote, and the quote and backslash themselves.
PATHY = ["file", "file (1).txt", "file!", "file-1", "file#", "file\"q", "file\\b", "a/b c/d.tar.gz",
         "a", "a b", "a!", "a\"", "a#", "a\\", "a~", "b", "", " ", "~", "\x7f", "dir/", "/abs",
         "x.y.z", "pkg/v1.0/pkg-1.0-py3-none-any.whl", "with space/and\ttab", "semi;colon,comma"]
PREFIX_SUFFIXES = ["", " ", "!", "\"", "#", "\x1f", "\x00", "-", "/", ".", "\\", "~", "\x7f", "é",
                   "\uffff", "\U00010000"]
NON_ASCII = ["é", "e\u0301", "\u00e9", "Å", "A\u030a", "\u212b", "ß", "ﬁ", "日本", "😀",
             "\U0001F1FA\U0001F1F8", "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u200b",
             "\ufeff", "ǅ", "Ω", "\u2126", "\u2028", "\u2029", "\ue000", "\uffff", "\U00010000",
             "\U0010ffff", "\u0080", "\u00ff", "\u07ff", "\u0800", "\u0000", "\u001f", "\t", "\n",
             "\r", "\b", "\f", "\x0b", "\x7f"]
EDGE_INTS = [0, 1, -1, 2**31, -(2**31), 2**32, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, 2**63,
             2**63 + 1, -(2**63), -(2**63) + 1, 2**64 - 1, 2**64 - 2, 10**18, 10**19, -(10**18)]


def rand_str():
    kind = rng.random()
    if kind < 0.3:
        return rng.choice(PATHY)
    if kind < 0.5:
        return rng.choice(NON_ASCII) + rng.choice(PATHY)
    if kind < 0.6:
        # A random non-NFC string: decomposed form of a composed one.
        return unicodedata.normalize("NFD", rng.choice(["é", "ñ", "Å", "ṩ", "ệ"]) * rng.randint(1, 3))
    if kind < 0.65:
        # Long enough to cross several 8-byte words, with an escape somewhere inside.
        body = "".join(rng.choice("0123456789abcdef") for _ in range(rng.randint(8, 70)))
        at = rng.randint(0, len(body))
        return body[:at] + rng.choice(NON_ASCII + ["\"", "\\"]) + body[at:]
    alphabet = "abcXYZ019 ./-_!\"#\\\t\n\x01\x1f\x7f\x80é€😀\uffff"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def rand_int():
    if rng.random() < 0.6:
        return rng.choice(EDGE_INTS)
    return rng.choice([rng.randint(-(2**63), 2**64 - 1), rng.randint(-1000, 1000)])


def rand_value(depth):
    r = rng.random()
    if depth >= 5 or r < 0.45:
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
    if rng.random() < 0.15:
        # A family of keys that are prefixes of each other, in random insertion order.
        stem = rng.choice(["file", "a", "dir/file.txt", ""])
        for suffix in rng.sample(PREFIX_SUFFIXES, rng.randint(2, len(PREFIX_SUFFIXES))):
            obj[stem + suffix] = rand_value(depth + 2)
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
