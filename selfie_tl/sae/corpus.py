"""Text for training SAEs and finding what activates their features, all available offline.

Three sources, chosen by name in :func:`load_corpus`:

* ``"wordnet"``: the glosses and usage examples of Princeton WordNet 3.0 (about 117,000
  senses of English nouns, verbs, adjectives and adverbs, e.g. ``"river: a large natural
  stream of water (larger than a creek); "the river was navigable for 50 miles""``). Read
  from the WordNet database files that Debian/Ubuntu's ``wordnet-base`` package installs in
  ``/usr/share/wordnet`` (or from ``$SELFIE_TL_WORDNET`` / ``$WNHOME/dict``). Licence: the
  WordNet 3.0 licence (permissive, BSD-like; copyright notice kept), see
  ``/usr/share/doc/wordnet-base/copyright``. Dictionary style: short definitional
  sentences over every domain, little narrative, dialogue or code.
* ``"pydoc"``: the documentation topics that ship with every CPython (``pydoc_data``,
  about 465,000 characters, PSF licence). Technical English about Python only.
* ``"generated"``: text the model itself writes about varied topics (sampled, see
  :func:`generated_texts`). Needs nothing but the model, but costs a decode step per
  token (about 40-60 tokens/s for SmolLM2-135M on one CPU core), so it suits small runs.

``"auto"`` is ``"wordnet"`` when its files are found, else ``"pydoc"``. Texts are split
reproducibly into a training part and a held-out part (:func:`split_texts`).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from selfie_tl.errors import InvalidArgumentError

CORPORA = ("auto", "wordnet", "pydoc", "generated")
WORDNET_DIRS = ("/usr/share/wordnet", "/usr/local/WordNet-3.0/dict", "/usr/share/wordnet/dict")
_POS_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")

TOPICS = (
    "volcanoes", "the French Revolution", "baking bread", "quantum computers", "jazz", "the stock market",
    "honeybees", "chess", "the human heart", "Tokyo", "photosynthesis", "football", "the Moon landing",
    "coffee", "the Roman Empire", "electric cars", "whales", "vaccines", "the Internet", "mountains",
    "poetry", "gardening", "earthquakes", "ancient Egypt", "the ocean", "democracy", "dinosaurs",
    "music theory", "black holes", "cooking pasta", "the piano", "rain forests", "banks", "cats",
    "dogs", "friendship", "climate change", "the Olympic Games", "medicine", "trains", "painting",
    "mathematics", "birds", "the weather", "space travel", "a birthday party", "winter", "a city at night",
)  # fmt: skip
PROMPT_STYLES = (
    "Write a short paragraph about {}.", "Explain {} to a child.", "Tell a short story about {}.",
    "List three facts about {}.", "What is the history of {}?", "Describe {} in detail.",
)  # fmt: skip


def wordnet_dir() -> Path | None:
    """Folder holding WordNet's ``data.noun`` etc., or ``None`` when none is installed.

    Looks at ``$SELFIE_TL_WORDNET``, ``$WNHOME/dict``, then the usual system folders.
    """
    candidates = []
    if os.environ.get("SELFIE_TL_WORDNET"):
        candidates.append(os.environ["SELFIE_TL_WORDNET"])
    if os.environ.get("WNHOME"):
        candidates.append(os.path.join(os.environ["WNHOME"], "dict"))
    candidates += list(WORDNET_DIRS)
    for folder in candidates:
        path = Path(folder).expanduser()
        if (path / "data.noun").is_file():
            return path
    return None


def _wordnet_line(line: str) -> str | None:
    # "<offset> <lex_filenum> <ss_type> <w_cnt hex> <word> <lex_id> ... | <gloss>"
    if line.startswith("  ") or "|" not in line:
        return None
    head, gloss = line.split("|", 1)
    fields = head.split()
    try:
        n_words = int(fields[3], 16)
    except (IndexError, ValueError):
        return None
    words = [re.sub(r"\(.*\)$", "", w).replace("_", " ") for w in fields[4 : 4 + 2 * n_words : 2]]
    gloss = gloss.strip()
    if not words or not gloss:
        return None
    return f"{words[0]}: {gloss}"


def wordnet_texts(folder: str | os.PathLike | None = None) -> list[str]:
    """Every WordNet sense as ``"lemma: gloss; "example""`` (about 117,000 strings).

    Raises:
        InvalidArgumentError: no WordNet files found (install Debian's ``wordnet-base``).
    """
    path = Path(folder) if folder is not None else wordnet_dir()
    if path is None or not (path / "data.noun").is_file():
        raise InvalidArgumentError(
            "WordNet's database files were not found (looked in $SELFIE_TL_WORDNET, $WNHOME/dict, "
            f"{', '.join(WORDNET_DIRS)}); install them with 'apt-get install wordnet-base' or use corpus='pydoc'"
        )
    texts = []
    for name in _POS_FILES:
        file = path / name
        if not file.is_file():
            continue
        with open(file, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                text = _wordnet_line(line)
                if text is not None:
                    texts.append(text)
    return texts


def pydoc_texts() -> list[str]:
    """Paragraphs of CPython's documentation topics (``pydoc_data.topics``, PSF licence).

    Example:
        >>> len(pydoc_texts()) > 1000
        True
    """
    from pydoc_data.topics import topics

    out = []
    for body in topics.values():
        for para in re.split(r"\n\s*\n", body):
            para = " ".join(para.split())
            if len(para) >= 40:
                out.append(para)
    return out


def generated_texts(
    model,
    n_texts: int = 64,
    max_new_tokens: int = 64,
    *,
    batch_size: int = 32,
    seed: int = 0,
    temperature: float = 0.9,
    verbose: bool = False,
) -> list[str]:
    """Texts the model writes itself: sampled replies to ``PROMPT_STYLES`` x ``TOPICS``.

    Slow on a CPU (one decode step per token); meant for small corpora or a GPU.
    """
    from tqdm.auto import tqdm

    from selfie_tl.generation import generate, left_pad, pad_id
    from selfie_tl.prompts import chat_text, tokenize

    rng = random.Random(seed)
    requests = [style.format(topic) for style in PROMPT_STYLES for topic in TOPICS]
    rng.shuffle(requests)
    requests = (requests * (n_texts // len(requests) + 1))[:n_texts]
    generator = torch.Generator(device=model.cfg.device).manual_seed(seed)
    texts: list[str] = []
    for start in tqdm(range(0, len(requests), batch_size), desc="generating corpus", disable=not verbose, leave=False):
        chunk = requests[start : start + batch_size]
        ids, mask = left_pad([tokenize(model.tokenizer, chat_text(model.tokenizer, r)) for r in chunk], pad_id(model.tokenizer))
        out = generate(
            model, ids, max_new_tokens, attention_mask=mask, do_sample=True, temperature=temperature,
            top_p=0.95, generator=generator,
        )  # fmt: skip
        for row, length in enumerate(out.lengths):
            text = model.tokenizer.decode(out.tokens[row, :length].tolist(), skip_special_tokens=True).strip()
            if text:
                texts.append(text)
    return texts


def resolve_corpus(name: str) -> str:
    """The concrete source ``name`` stands for (``"auto"``: wordnet if installed, else pydoc)."""
    if name not in CORPORA:
        raise InvalidArgumentError(f"corpus must be one of {list(CORPORA)}, got {name!r}")
    if name == "auto":
        return "wordnet" if wordnet_dir() is not None else "pydoc"
    return name


def load_corpus(name: str = "auto", *, model=None, n_generated: int = 64, seed: int = 0) -> list[str]:
    """All texts of a source, shuffled reproducibly with ``seed``.

    Args:
        name: ``"auto"``, ``"wordnet"``, ``"pydoc"`` or ``"generated"`` (needs ``model``).
        model: the model, for ``"generated"``.
        n_generated: texts to generate for ``"generated"``.
        seed: shuffling (and sampling) seed.

    Example:
        >>> texts = load_corpus("pydoc")
        >>> texts[:1] == load_corpus("pydoc")[:1]
        True
    """
    name = resolve_corpus(name)
    if name == "wordnet":
        texts = wordnet_texts()
    elif name == "pydoc":
        texts = pydoc_texts()
    else:
        if model is None:
            raise InvalidArgumentError("corpus='generated' needs the model (pass model=...)")
        texts = generated_texts(model, n_generated, seed=seed)
    random.Random(seed).shuffle(texts)
    return texts


def split_texts(texts: Sequence[str], heldout_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """``(train, heldout)``: the last ``heldout_fraction`` of ``texts`` is held out.

    Example:
        >>> split_texts([str(i) for i in range(10)], 0.2)
        (['0', '1', '2', '3', '4', '5', '6', '7'], ['8', '9'])
    """
    if not 0.0 <= heldout_fraction < 1.0:
        raise InvalidArgumentError(f"heldout_fraction must be in [0, 1), got {heldout_fraction!r}")
    cut = len(texts) - round(len(texts) * heldout_fraction)
    return list(texts[:cut]), list(texts[cut:])


def token_contexts(
    tokenizer, texts: Sequence[str], context_size: int = 64, max_tokens: int | None = None, separator: str = "\n"
) -> Tensor:
    """Texts tokenized, joined by ``separator`` and cut into ``[n, context_size]`` rows.

    The stream is concatenated as SAELens' activation store does; a final partial row is
    dropped. ``max_tokens`` bounds the total (rows x ``context_size``).

    Example:
        >>> from selfie_tl.testing import tiny_tokenizer
        >>> token_contexts(tiny_tokenizer(), ["abcd", "efgh"], context_size=3).shape
        torch.Size([3, 3])
    """
    if not isinstance(context_size, int) or context_size < 2:
        raise InvalidArgumentError(f"context_size must be an int >= 2, got {context_size!r}")
    if not texts:
        raise InvalidArgumentError("no texts given")
    sep = tokenizer(separator).input_ids if separator else []
    stream: list[int] = []
    limit = None if max_tokens is None else int(max_tokens)
    for text in texts:
        stream += tokenizer(text).input_ids + sep
        if limit is not None and len(stream) >= limit + context_size:
            break
    if limit is not None:
        stream = stream[: max(limit, context_size)]
    n = len(stream) // context_size
    if n == 0:
        raise InvalidArgumentError(f"the texts hold {len(stream)} tokens, fewer than one context of {context_size}")
    return torch.tensor(stream[: n * context_size], dtype=torch.long).view(n, context_size)


__all__ = [
    "CORPORA",
    "generated_texts",
    "load_corpus",
    "pydoc_texts",
    "resolve_corpus",
    "split_texts",
    "token_contexts",
    "wordnet_dir",
    "wordnet_texts",
]
