#!/usr/bin/env python3
"""Builds tests/data/tokenizer_corpus.jsonl: one JSON string per line, the texts the
tokenizer tests encode with crescent and with the reference implementation.

Material comes from this machine (license texts, translated messages in .mo files,
Python and C++ sources) plus generated cases (emoji and ZWJ sequences, whitespace
runs, digits, control characters, special-token look-alikes). Deterministic: the
same machine gives the same file. Run: /usr/bin/python3 tests/data/make_tokenizer_corpus.py
"""
import gettext
import glob
import json
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer_corpus.jsonl")
rng = random.Random(20261129)
lines = []


def add(s):
    if s and s not in seen and len(s) < 4000:
        seen.add(s)
        lines.append(s)


seen = set()


def text_lines(path, limit):
    try:
        with open(path, encoding="utf-8", errors="strict") as f:
            got = [l.rstrip("\n") for l in f if l.strip()]
    except (UnicodeDecodeError, OSError):
        return []
    return got[:limit]


# English prose.
for p in ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0",
          "/usr/share/common-licenses/Artistic", "/usr/share/common-licenses/BSD"]:
    for l in text_lines(p, 150):
        add(l)
docs = sorted(glob.glob("/usr/share/doc/*/README*")) + sorted(glob.glob("/usr/share/doc/*/copyright"))
for p in docs[:80]:
    if p.endswith(".gz"):
        continue
    for l in text_lines(p, 6):
        add(l)

# Translated messages: Chinese, Japanese, Korean, Arabic and more.
langs = {"zh_CN": 160, "zh_TW": 80, "ja": 160, "ko": 140, "ar": 140, "ru": 60, "he": 40, "hi": 40,
         "th": 40, "el": 30, "vi": 30, "de": 30, "fr": 30, "es": 30, "tr": 20, "uk": 20, "fa": 20}
for lang, want in langs.items():
    got = 0
    for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        for k in sorted(cat, key=lambda x: str(x)):
            v = cat[k]
            if not isinstance(v, str) or not k or len(v) < 4:
                continue
            add(v)
            got += 1
            if got >= want:
                break
        if got >= want:
            break

# Code.
code_files = sorted(glob.glob(os.path.join(ROOT, "src", "base", "*.cc")))[:6] + \
    sorted(glob.glob("/usr/lib/python3.11/json/*.py"))[:4] + ["/usr/lib/python3.11/textwrap.py"]
for p in code_files:
    ls = text_lines(p, 400)
    for l in ls[:60]:
        add(l)
    for i in range(0, min(len(ls), 120), 12):
        add("\n".join(ls[i:i + 12]))

# Emoji, ZWJ sequences, flags, skin tones, combining marks.
emoji = ["😀", "👍", "👍🏽", "❤️", "🔥", "👨‍👩‍👧‍👦", "👩🏿‍🚀", "🏳️‍🌈", "🇯🇵", "🇺🇸🇨🇳", "🧑‍💻", "😶‍🌫️",
         "🫠", "🥲", "👁️‍🗨️", "#️⃣", "1️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "e\u0301", "n\u0303", "\u0915\u094d\u0937", "Å", "Å"]
for i in range(120):
    k = rng.randint(1, 6)
    parts = [rng.choice(emoji) for _ in range(k)]
    sep = rng.choice(["", " ", "  ", "\n", "a", "中"])
    add(sep.join(parts) + rng.choice(["", " ok", "!", "。"]))

# Whitespace runs.
ws = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\n\n\n", " \n ", "\u3000", "\u00a0", "\u2009"]
for i in range(160):
    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append(rng.choice(ws) * rng.randint(1, 4))
        parts.append(rng.choice(["word", "Hello", "x", "中文", "123", ".", "def f():", ""]))
    add("".join(parts))

# Digits.
for i in range(120):
    n = rng.randint(0, 10 ** rng.randint(1, 20))
    add(rng.choice(["", "Total: ", "v", "$", "№"]) + f"{n:,}" if i % 3 == 0 else str(n) +
        rng.choice(["", ".5", "e10", " km", "%", "٣٤٥", "１２３"]))

# Control characters.
for i in range(80):
    cs = "".join(chr(rng.choice(list(range(1, 32)) + [127, 0x85, 0x200B, 0x200D, 0xFEFF, 0x2028]))
                 for _ in range(rng.randint(1, 4)))
    add(rng.choice(["abc", "中", " ", ""]) + cs + rng.choice(["def", "文", " x", ""]))

# Special-token look-alikes (and the real ones, from every tokenizer under test).
specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<tool_call>", "<s>", "</s>",
            "<unk>", "<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>", "<pad>", "<mask>",
            "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
            "<0x0A>", "<0xE4>", "▁", "▁▁", "Ġ", "Ċ"]
broken = ["<|im_start", "im_start|>", "<|im_start |>", "< s>", "<s >", "<|begin_of_text>", "<||>", "<|", "|>",
          "<start_of_turn", "<｜User", "<|eot_id|", "<</s>>", "<s><s>", "<<s>>"]
for i in range(200):
    parts = []
    for _ in range(rng.randint(1, 5)):
        parts.append(rng.choice(specials + broken))
        parts.append(rng.choice(["", " ", "\n", "hello", " world", "你好", "  x ", "\n\n"]))
    add("".join(parts))

# Mixed paragraphs.
pool = list(lines)
for i in range(200):
    k = rng.randint(2, 5)
    add(rng.choice(["\n", "\n\n", " ", "\r\n", "\t"]).join(rng.choice(pool) for _ in range(k)))

# Random mixes of scripts, marks, whitespace, digits and punctuation. Only code points
# assigned by Unicode 14 (this Python's unicodedata, and PCRE2 10.42's tables): the
# reference's node ships newer Unicode data, and a character assigned later has
# different \p{..} classes in the two (a known, documented version skew).
import unicodedata
ranges = [(0x20, 0x7E), (0xA0, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x6FF),
          (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x2000, 0x206F), (0x2190, 0x23FF), (0x3000, 0x30FF),
          (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x10000, 0x1007F)]
for i in range(400):
    parts = []
    for _ in range(rng.randint(1, 30)):
        lo, hi = rng.choice(ranges)
        c = chr(rng.randint(lo, hi))
        if unicodedata.category(c) != "Cn":
            parts.append(c)
        if rng.random() < 0.2:
            parts.append(rng.choice([" ", "  ", "\n", "\t", "'s", "'LL", "123", "4567", ".", "..."]))
    add("".join(parts))

# Edge cases.
for s in ["a", " ", "  ", "\n", "'s", "I'm", "don't", "DON'T", "you'LL", "ſ", "K", "ǅ", "ℌ", "ﬁ", "Ⅻ",
          "\uFFFD", "\U0010FFFF", "\u0000", "a\u0000b", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ﾊﾝｶｸ", "ｆｕｌｌｗｉｄｔｈ", "x" * 300,
          "中" * 200, "😀" * 50, " " * 100, "\n" * 40, "\t" * 30, "1" * 50, "a b c d e f g", "Hello, world!",
          "hello . world , how ' s it ? yes ! I ' m sure n't", "mailto:a@b.c https://example.com/a?b=c&d=e#f",
          "ДОБРЫЙ день", "İstanbul ıi", "straße STRASSE", "ﷺ", "لا إله", "مرحبا بالعالم", "שלום"]:
    add(s)

with open(OUT, "w", encoding="utf-8") as f:
    for l in lines:
        f.write(json.dumps(l, ensure_ascii=False) + "\n")
print(f"{len(lines)} lines -> {OUT}")
