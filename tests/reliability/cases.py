"""The fuzz cases: bad (and borderline) inputs to every public engine function.

Each :class:`Case` calls one function with one unusual input and says what must happen:
a specific exception (``raises``, optionally ``match``ing its message), or a correct result
(``check``). :func:`run_case` classifies what actually happened:

* ``"clear"``: the expected exception, or any of the package's own :class:`SelfieError`;
* ``"correct"``: no exception where none was expected, and ``check`` passed;
* ``"opaque"``: some other exception (from deep inside Python, torch or TransformerLens);
* ``"silent"``: no exception where one was expected, or a wrong result.

The same list drives the test suite (``test_fuzz.py``, which also requires the exact
expected exception and a clean model afterwards) and the census (``python -m
tests.reliability.census``), which counts the four kinds for the report.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfie_tl import errors
from selfie_tl.adapter import SelfInterpretationAdapter, load_adapter, train_adapter
from selfie_tl.control import (
    MLPEdit,
    load_edit,
    read_edit_metadata,
    reinforcement_control,
    supervised_control,
)
from selfie_tl.control.rewards import KeywordReward
from selfie_tl.generation import complete, generate
from selfie_tl.hooks import capture, hook_name, injection_hook, injection_hooks, vectors_from_cache
from selfie_tl.interop import (
    mean_difference,
    patched_capture,
    rescale,
    sae_directions,
    typical_norm,
    with_logit_lens,
)
from selfie_tl.interpret import (
    InterpretationConfig,
    generate_interpretations,
    interpret,
    interpret_vectors,
    layer_token_pairs,
)
from selfie_tl.lens import logit_lens, logit_lens_topk
from selfie_tl.prompts import InterpretationPrompt, default_interpretation_prompt
from selfie_tl.relevancy import baseline_probs, relevancy_scores
from selfie_tl.testing import tiny_model


class _Absent(Exception):
    """Stands in for an error class that the code under test does not define (yet)."""


def _error(name: str) -> type[BaseException]:
    return getattr(errors, name, _Absent)


SelfieError = errors.SelfieError
Invalid = errors.InvalidArgumentError
LayerErr = errors.LayerOutOfRangeError
PosErr = errors.PositionOutOfRangeError
PromptErr = errors.PromptError
VecErr = errors.VectorError
EditErr = errors.EditMismatchError
ContextErr = _error("ContextLengthError")
HookErr = _error("HookError")
NumErr = _error("NumericalError")


@dataclass
class Env:
    """What the cases run against: tiny models (n_ctx 512) and a folder of files."""

    llama: Any
    gpt2: Any
    tmp: Path

    @property
    def d(self) -> int:
        return self.llama.cfg.d_model

    def file(self, name: str) -> Path:
        return self.tmp / name


def make_env(llama=None, gpt2=None, tmp: Path | None = None) -> Env:
    llama = llama if llama is not None else tiny_model("llama", n_layers=3, d_model=64, seed=0)
    gpt2 = gpt2 if gpt2 is not None else tiny_model("gpt2", n_layers=3, d_model=64, seed=0)
    tmp = Path(tmp if tmp is not None else tempfile.mkdtemp(prefix="selfie_fuzz_"))
    env = Env(llama, gpt2, tmp)
    _write_files(env)
    return env


def _write_files(env: Env) -> None:
    """Good and damaged edit/adapter files in ``env.tmp``."""
    edit = MLPEdit.for_model(env.llama, layer=2, rank=2, bias=True)
    with torch.no_grad():
        edit.B.normal_(0, 0.5)
        edit.b.normal_(0, 0.5)
    good = edit.save(env.file("edit.safetensors"), env.llama)
    raw = good.read_bytes()
    env.file("edit_truncated.safetensors").write_bytes(raw[: len(raw) // 2])
    env.file("edit_empty.safetensors").write_bytes(b"")
    env.file("edit_garbage.safetensors").write_bytes(bytes(range(256)) * 8)
    flipped = bytearray(raw)
    flipped[-3] ^= 0xFF  # inside the last tensor's data
    env.file("edit_bitflip.safetensors").write_bytes(bytes(flipped))
    env.file("edit_meta.safetensors").write_bytes(raw.replace(b'\\"layer\\": 2', b'\\"layer\\": 1'))
    other = tiny_model("llama", n_layers=3, d_model=64, seed=1)
    MLPEdit.for_model(other, layer=2).save(env.file("edit_other_model.safetensors"), other)
    MLPEdit.for_model(env.gpt2, layer=2).save(env.file("edit_gpt2.safetensors"), env.gpt2)
    (env.tmp / "a_directory.safetensors").mkdir(exist_ok=True)
    adapter = SelfInterpretationAdapter(env.d)
    araw = adapter.save(env.file("adapter.safetensors"), env.llama).read_bytes()
    env.file("adapter_truncated.safetensors").write_bytes(araw[: len(araw) // 2])
    aflip = bytearray(araw)
    aflip[-3] ^= 0xFF
    env.file("adapter_bitflip.safetensors").write_bytes(bytes(aflip))
    SelfInterpretationAdapter(32).save(env.file("adapter_d32.safetensors"))


@dataclass(frozen=True)
class Case:
    id: str
    call: Callable[[Env], Any]
    raises: type[BaseException] | tuple[type[BaseException], ...] | None = None
    match: str | None = None
    check: Callable[[Any, Env], bool] | None = None
    group: str = "misc"


@dataclass(frozen=True)
class Outcome:
    kind: str  # "clear", "correct", "opaque" or "silent"
    expected: bool  # exactly what the case asks for
    detail: str


def run_case(case: Case, env: Env) -> Outcome:
    """Run one case and classify what happened (never raises, except SystemExit)."""
    try:
        result = case.call(env)
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - classifying every outcome is the point
        detail = f"{type(exc).__name__}: {exc}"[:300]
        if case.raises is not None and isinstance(exc, case.raises):
            ok = case.match is None or re.search(case.match, str(exc)) is not None
            return Outcome("clear", ok, detail + ("" if ok else f"  [message does not match {case.match!r}]"))
        if isinstance(exc, SelfieError):
            return Outcome("clear", False, detail + f"  [expected {case.raises}]")
        return Outcome("opaque", False, detail)
    if case.raises is not None:
        return Outcome("silent", False, f"returned {result!r}"[:300])
    try:
        ok = case.check is None or bool(case.check(result, env))
    except Exception as exc:  # noqa: BLE001
        return Outcome("silent", False, f"result check failed: {type(exc).__name__}: {exc}"[:300])
    return Outcome("correct" if ok else "silent", ok, "" if ok else f"wrong result {result!r}"[:300])


# --------------------------------------------------------------------------- helpers

QUICK = {"k": 1, "max_new_tokens": 3}
NOREL = dict(QUICK, relevancy=False)


def _vec(env: Env, n: int = 1, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(n, env.d, generator=torch.Generator().manual_seed(seed))


def _interp(env: Env, **kw: Any):
    args = dict(original_prompt="The cat", tokens_to_interpret=[(1, -1)], **NOREL)
    args.update(kw)
    return interpret(env.llama, **args)


def _iv(env: Env, vectors: Any = None, **kw: Any):
    args = dict(NOREL)
    args.update(kw)
    return interpret_vectors(env.llama, _vec(env) if vectors is None else vectors, **args)


def _gen(env: Env, ids: Any = None, max_new_tokens: Any = 3, **kw: Any):
    ids = torch.tensor([[104, 105, 106]]) if ids is None else ids
    return generate(env.llama, ids, max_new_tokens, **kw)


def _same_interp(**reference: Any) -> Callable[[Any, Env], bool]:
    """Check: the result's interpretations equal those of a call with plain arguments."""

    def check(result: Any, env: Env) -> bool:
        return list(result.interpretation) == list(_interp(env, **reference).interpretation)

    return check


def _same_iv(**reference: Any) -> Callable[[Any, Env], bool]:
    def check(result: Any, env: Env) -> bool:
        return result == _iv(env, **reference)

    return check


def _interrupt(when: Callable[[torch.Tensor, dict], bool]) -> Callable:
    """A hook that raises KeyboardInterrupt on the first call for which ``when`` is true."""
    state: dict[str, Any] = {"calls": 0, "saw_decode": False}

    def hook(t: torch.Tensor, hook: Any) -> None:
        state["calls"] += 1
        if when(t, state):
            raise KeyboardInterrupt
        if t.shape[1] == 1:
            state["saw_decode"] = True

    return hook


def _threads(env: Env, work: list[Callable[[], Any]]) -> list[Any]:
    """Run callables in threads started together; return their results in order."""
    barrier = threading.Barrier(len(work))
    out: list[Any] = [None] * len(work)
    errs: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work[i]()
        except BaseException as exc:  # noqa: BLE001
            errs.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errs:
        raise errs[0]
    return out


def _nap(t: torch.Tensor, hook: Any) -> None:
    """A hook that sleeps, releasing the GIL mid-forward so that unlocked threads would interleave."""
    time.sleep(0.002)


def _concurrent_vectors(env: Env, n_threads: int = 4, **kw: Any) -> tuple[list, list]:
    vecs = [_vec(env, 1, seed=10 + i, scale=20.0) for i in range(n_threads)]
    args = {"k": 1, "max_new_tokens": 12, "relevancy": False, "fwd_hooks": [("blocks.0.hook_resid_pre", _nap)]}
    args.update(kw)
    sequential = [interpret_vectors(env.llama, v, **args) for v in vecs]
    parallel = _threads(env, [lambda v=v: interpret_vectors(env.llama, v, **args) for v in vecs])
    return parallel, sequential


def _concurrent_mixed(env: Env) -> tuple[list, list]:
    vec = _vec(env, 2, seed=3, scale=20.0)
    ids = torch.tensor([[104, 105, 106, 107]])
    work = [
        lambda: interpret_vectors(env.llama, vec, k=1, max_new_tokens=10),
        lambda: complete(env.llama, ["hello", "abc"], max_new_tokens=10),
        lambda: generate(env.llama, ids, 10).tokens.tolist(),
        lambda: capture(env.llama, "The cat sat", [0, 2, 3], [-1]).tolist(),
    ]
    sequential = [w() for w in work]
    return _threads(env, work), sequential


def _concurrent_relevancy(env: Env) -> tuple[list, list]:
    vecs = [_vec(env, 2, seed=20 + i, scale=20.0) for i in range(3)]

    def one(v):
        out = generate_interpretations(env.llama, v, k=1, max_new_tokens=8, fwd_hooks=[("blocks.0.hook_mlp_out", _nap)])
        return out.texts, [[round(x, 5) for x in r] for r in out.relevancy]

    sequential = [one(v) for v in vecs]
    return _threads(env, [lambda v=v: one(v) for v in vecs]), sequential


def _concurrent_with_user_hooks(env: Env) -> tuple[list, list]:
    """Each thread ablates a different layer through fwd_hooks; results must not mix."""
    vec = _vec(env, 1, seed=5, scale=20.0)

    def zero(t, hook):
        return torch.zeros_like(t)

    names = ["blocks.0.hook_mlp_out", "blocks.1.hook_mlp_out", "blocks.2.hook_mlp_out", "blocks.1.hook_attn_out"]
    work = [lambda n=n: interpret_vectors(env.llama, vec, k=0, max_new_tokens=12, fwd_hooks=[(n, zero)]) for n in names]
    sequential = [w() for w in work]
    return _threads(env, work), sequential


def _equal_pair(result: tuple[list, list], env: Env) -> bool:
    parallel, sequential = result
    return parallel == sequential


def _attach_twice_from_file(env: Env):
    first = load_edit(env.file("edit.safetensors"), env.llama)
    second = load_edit(env.file("edit.safetensors"), env.llama)
    first.attach(env.llama)
    try:
        second.attach(env.llama)
    finally:
        first.detach()
        second.detach()


def _attach_copy(env: Env):
    first = load_edit(env.file("edit.safetensors"), env.llama)
    copy = MLPEdit(first.d_model, first.layer, rank=first.rank, bias=first.use_bias)
    copy.load_state_dict(first.state_dict())
    with first.attached(env.llama), copy.attached(env.llama):
        pass


def _attach_two_different(env: Env):
    """Two different edits at once is allowed: both apply."""
    a = load_edit(env.file("edit.safetensors"), env.llama)
    b = MLPEdit.for_model(env.llama, layer=3, rank=1, bias=True)
    with torch.no_grad():
        b.b.fill_(0.1)
    with a.attached(env.llama), b.attached(env.llama):
        return env.llama(torch.tensor([[104, 105]]))


def _two_edits_check(result: Any, env: Env) -> bool:
    a = load_edit(env.file("edit.safetensors"), env.llama)
    b = MLPEdit.for_model(env.llama, layer=3, rank=1, bias=True)
    with torch.no_grad():
        b.b.fill_(0.1)
    ref = env.llama.run_with_hooks(torch.tensor([[104, 105]]), fwd_hooks=[*a.fwd_hooks(), *b.fwd_hooks()])
    return torch.allclose(result, ref)


def _reattach_after_detach(env: Env):
    edit = load_edit(env.file("edit.safetensors"), env.llama)
    with edit.attached(env.llama):
        first = env.llama(torch.tensor([[104, 105]]))
    again = load_edit(env.file("edit.safetensors"), env.llama)
    with again.attached(env.llama):
        second = env.llama(torch.tensor([[104, 105]]))
    return torch.equal(first, second)


def _nan_hook(t, hook):
    return t * float("nan")


def _nan_on_decode(t, hook):
    return t * float("nan") if t.shape[1] == 1 else t


def _wrong_shape_hook(t, hook):
    return t[:, :1]


def _list_hook(t, hook):
    return [1, 2]


def _raising_hook(t, hook):
    raise ValueError("user hook says no")


LONG = "a" * 600  # 600 tokens with the byte tokenizer; the tiny models' n_ctx is 512
_ID_OK = torch.tensor([104, 105, 106])


# --------------------------------------------------------------------------- the cases

CASES: list[Case] = []


def add(group: str, id: str, call: Callable[[Env], Any], raises=None, match=None, check=None) -> None:
    CASES.append(Case(f"{group}:{id}", call, raises, match, check, group))


# interpret: the (layer, token) pairs
G = "interpret-pairs"
add(G, "layer-float", lambda e: _interp(e, tokens_to_interpret=[(1.0, 0)]), LayerErr, "1.0")
add(G, "layer-bool", lambda e: _interp(e, tokens_to_interpret=[(True, 0)]), LayerErr, "True")
add(G, "layer-str", lambda e: _interp(e, tokens_to_interpret=[("1", 0)]), LayerErr, "'1'")
add(G, "layer-none", lambda e: _interp(e, tokens_to_interpret=[(None, 0)]), LayerErr, "None")
add(G, "layer-too-high", lambda e: _interp(e, tokens_to_interpret=[(4, 0)]), LayerErr, r"\[0, 3\]")
add(G, "layer-negative", lambda e: _interp(e, tokens_to_interpret=[(-1, 0)]), LayerErr, "-1")
add(G, "layer-numpy-int", lambda e: _interp(e, tokens_to_interpret=[(np.int64(1), -1)]),
    check=_same_interp(tokens_to_interpret=[(1, -1)]))
add(G, "token-numpy-int", lambda e: _interp(e, tokens_to_interpret=[(1, np.int32(2))]),
    check=_same_interp(tokens_to_interpret=[(1, 2)]))
add(G, "layer-tensor-int", lambda e: _interp(e, tokens_to_interpret=[(torch.tensor(2), 0)]),
    check=_same_interp(tokens_to_interpret=[(2, 0)]))
add(G, "pairs-numpy-array", lambda e: _interp(e, tokens_to_interpret=np.array([[1, -1], [2, 0]])),
    check=_same_interp(tokens_to_interpret=[(1, -1), (2, 0)]))
add(G, "pairs-lists", lambda e: _interp(e, tokens_to_interpret=[[1, -1]]), check=_same_interp())
add(G, "token-bool", lambda e: _interp(e, tokens_to_interpret=[(1, False)]), PosErr, "False")
add(G, "token-float", lambda e: _interp(e, tokens_to_interpret=[(1, 0.0)]), PosErr, "0.0")
add(G, "token-out-of-range", lambda e: _interp(e, tokens_to_interpret=[(1, 99)]), PosErr, "99")
add(G, "token-too-negative", lambda e: _interp(e, tokens_to_interpret=[(1, -8)]), PosErr, "-8")
add(G, "pairs-none", lambda e: _interp(e, tokens_to_interpret=None), Invalid, "None")
add(G, "pairs-empty", lambda e: _interp(e, tokens_to_interpret=[]), Invalid, "empty")
add(G, "pairs-bare-pair", lambda e: _interp(e, tokens_to_interpret=(1, 0)), Invalid, r"\(layer, token\)")
add(G, "pairs-string", lambda e: _interp(e, tokens_to_interpret="10"), Invalid, r"pairs|\(layer, token\)")
add(G, "pairs-triple", lambda e: _interp(e, tokens_to_interpret=[(1, 0, 2)]), Invalid, r"\(layer, token\)")
add(G, "pairs-dict", lambda e: _interp(e, tokens_to_interpret={1: 0}), Invalid, "pairs")

# interpret: the original prompt
G = "interpret-prompt"
add(G, "empty", lambda e: _interp(e, original_prompt=""), PromptErr, "non-empty")
add(G, "blank", lambda e: _interp(e, original_prompt="  \n"), Invalid, "blank")
add(G, "none", lambda e: _interp(e, original_prompt=None), PromptErr, "None")
add(G, "int", lambda e: _interp(e, original_prompt=123), PromptErr, "123")
add(G, "list-of-str", lambda e: _interp(e, original_prompt=["a", "b"]), PromptErr)
add(G, "bytes", lambda e: _interp(e, original_prompt=b"The cat"), PromptErr)
add(G, "ids-float", lambda e: _interp(e, original_prompt=torch.tensor([104.7, 105.2])), PromptErr, "float")
add(G, "ids-out-of-vocab", lambda e: _interp(e, original_prompt=torch.tensor([104, 300])), PromptErr, "300")
add(G, "ids-negative", lambda e: _interp(e, original_prompt=torch.tensor([-1, 104])), PromptErr, "-1")
add(G, "ids-bool", lambda e: _interp(e, original_prompt=torch.tensor([True, False])), PromptErr, "bool")
add(G, "ids-2d-batch", lambda e: _interp(e, original_prompt=torch.tensor([[104, 105], [104, 105]])), Invalid)
add(G, "ids-empty", lambda e: _interp(e, original_prompt=torch.tensor([], dtype=torch.long)), Invalid)
add(G, "ids-list", lambda e: _interp(e, original_prompt=[84, 104, 101], tokens_to_interpret=[(1, -1)]),
    check=_same_interp(original_prompt=torch.tensor([84, 104, 101])))
add(G, "ids-numpy", lambda e: _interp(e, original_prompt=np.array([84, 104, 101])),
    check=_same_interp(original_prompt=torch.tensor([84, 104, 101])))
add(G, "ids-int32-tensor", lambda e: _interp(e, original_prompt=torch.tensor([84, 104], dtype=torch.int32)),
    check=_same_interp(original_prompt=torch.tensor([84, 104])))
add(G, "too-long", lambda e: _interp(e, original_prompt=LONG), ContextErr, "600.*512")
add(G, "too-long-gpt2", lambda e: interpret(e.gpt2, LONG, [(1, -1)], **NOREL), ContextErr, "512")
add(G, "ids-too-long", lambda e: _interp(e, original_prompt=torch.full((513,), 97)), ContextErr, "513")
add(G, "exactly-context", lambda e: _interp(e, original_prompt="a" * 512),
    check=lambda r, e: len(r) == 1)

# interpret / interpret_vectors: the interpretation prompt
G = "interp-prompt"
add(G, "int", lambda e: _iv(e, interpretation_prompt=5), PromptErr)
add(G, "no-placeholder-str", lambda e: _iv(e, interpretation_prompt="no slots here"), PromptErr, "placeholder")
add(G, "no-placeholder-parts", lambda e: _iv(e, interpretation_prompt=("only text",)), PromptErr, "placeholder")
add(G, "bad-part", lambda e: _iv(e, interpretation_prompt=("a", 1, "b")), PromptErr, "1")
add(G, "bool-part", lambda e: _iv(e, interpretation_prompt=("a", True, "b")), PromptErr, "True")
add(G, "empty-parts", lambda e: _iv(e, interpretation_prompt=()), PromptErr)
add(G, "dict", lambda e: _iv(e, interpretation_prompt={"a": 0}), PromptErr)
add(G, "too-long-with-generation", lambda e: _iv(e, interpretation_prompt=("x" * 500, 0, ":"), max_new_tokens=20),
    ContextErr, "max_new_tokens")
add(G, "too-long-alone", lambda e: _iv(e, interpretation_prompt=("x" * 520, 0)), ContextErr, "512")
add(G, "format-string", lambda e: _iv(e, interpretation_prompt="Say {}!"),
    check=lambda r, e: r == _iv(e, interpretation_prompt=("Say ", 0, "!")))
add(G, "bad-position-rule", lambda e: InterpretationPrompt(e.llama.tokenizer, ("a", 0), "middle"), PromptErr)
add(G, "no-tokenizer", lambda e: InterpretationPrompt(None, ("a", 0)), PromptErr, "tokenizer")
add(G, "default-no-tokenizer", lambda e: default_interpretation_prompt(None), PromptErr, "tokenizer")

# settings (InterpretationConfig fields given as keywords)
G = "settings"
add(G, "k-float", lambda e: _iv(e, k=1.0), LayerErr, "1.0")
add(G, "k-bool", lambda e: _iv(e, k=True), LayerErr, "True")
add(G, "k-str", lambda e: _iv(e, k="1"), LayerErr, "'1'")
add(G, "k-too-high", lambda e: _iv(e, k=3), LayerErr, r"\[0, 2\]")
add(G, "k-numpy", lambda e: _iv(e, k=np.int64(1)), check=_same_iv(k=1))
add(G, "max-new-negative", lambda e: _iv(e, max_new_tokens=-1), Invalid, "max_new_tokens.*-1")
add(G, "max-new-zero", lambda e: _iv(e, max_new_tokens=0), Invalid, "max_new_tokens")
add(G, "max-new-float", lambda e: _iv(e, max_new_tokens=2.5), Invalid, "2.5")
add(G, "max-new-bool", lambda e: _iv(e, max_new_tokens=True), Invalid, "True")
add(G, "max-new-str", lambda e: _iv(e, max_new_tokens="3"), Invalid, "'3'")
add(G, "max-new-numpy", lambda e: _iv(e, max_new_tokens=np.int64(3)), check=_same_iv(max_new_tokens=3))
add(G, "max-new-past-context", lambda e: _iv(e, max_new_tokens=600), ContextErr, "600")
add(G, "max-new-absurd", lambda e: _iv(e, max_new_tokens=10**12), ContextErr, "1000000000000")
add(G, "batch-zero", lambda e: _iv(e, batch_size=0), Invalid, "batch_size")
add(G, "batch-float", lambda e: _iv(e, batch_size=1.5), Invalid, "1.5")
add(G, "batch-bool", lambda e: _iv(e, batch_size=True), Invalid, "True")
add(G, "batch-numpy", lambda e: _iv(e, _vec(e, 3), batch_size=np.int64(2)),
    check=lambda r, e: r == _iv(e, _vec(e, 3), batch_size=2))
add(G, "relevancy-str", lambda e: _interp(e, relevancy="no"), Invalid, "relevancy.*'no'")
add(G, "relevancy-int", lambda e: _interp(e, relevancy=1), Invalid, "relevancy")
add(G, "relevancy-numpy-bool", lambda e: _interp(e, relevancy=np.bool_(False)),
    check=lambda r, e: r.relevancy.isna().all())
add(G, "norm-match-str", lambda e: _iv(e, norm_match="yes"), Invalid, "norm_match")
add(G, "do-sample-str", lambda e: _iv(e, do_sample="no"), Invalid, "do_sample")
add(G, "verbose-str", lambda e: _iv(e, verbose="no"), Invalid, "verbose")
add(G, "mode-upper", lambda e: _iv(e, mode="ADD"), Invalid, "mode")
add(G, "mode-int", lambda e: _iv(e, mode=1), Invalid, "mode")
add(G, "overlay-str", lambda e: _iv(e, overlay_strength="abc"), Invalid, "overlay_strength.*'abc'")
add(G, "overlay-nan", lambda e: _iv(e, overlay_strength=float("nan")), Invalid, "overlay_strength")
add(G, "overlay-bool", lambda e: _iv(e, overlay_strength=True), Invalid, "overlay_strength")
add(G, "overlay-high", lambda e: _iv(e, overlay_strength=1.5), Invalid, "overlay_strength")
add(G, "overlay-numpy", lambda e: _iv(e, overlay_strength=np.float32(0.5)), check=_same_iv(overlay_strength=0.5))
add(G, "scale-str", lambda e: _iv(e, scale="abc"), Invalid, "scale.*'abc'")
add(G, "scale-list", lambda e: _iv(e, scale=[1, 2]), Invalid, "scale")
add(G, "scale-inf", lambda e: _iv(e, scale=float("inf")), Invalid, "scale")
add(G, "scale-zero", lambda e: _iv(e, scale=0), Invalid, "scale")
add(G, "scale-bool", lambda e: _iv(e, scale=True), Invalid, "scale")
add(G, "scale-numpy", lambda e: _iv(e, scale=np.float64(2.0)), check=_same_iv(scale=2.0))
add(G, "auto-scales-empty", lambda e: _iv(e, scale="auto", auto_scales=[]), Invalid, "auto_scales")
add(G, "auto-scales-str", lambda e: _iv(e, scale="auto", auto_scales=["a"]), Invalid, "auto_scales")
add(G, "auto-scales-int", lambda e: _iv(e, scale="auto", auto_scales=5), Invalid, "auto_scales")
add(G, "auto-scales-negative", lambda e: _iv(e, scale="auto", auto_scales=[1, -2]), Invalid, "auto_scales")
add(G, "threshold-str", lambda e: _iv(e, scale="auto", self_similarity_threshold="x"), Invalid,
    "self_similarity_threshold")
add(G, "threshold-nan", lambda e: _iv(e, scale="auto", self_similarity_threshold=float("nan")), Invalid,
    "self_similarity_threshold")
add(G, "inject-layers-zero", lambda e: _iv(e, inject_layers=0), Invalid, "inject_layers")
add(G, "inject-layers-too-many", lambda e: _iv(e, inject_layers=5), Invalid, "inject_layers")
add(G, "inject-layers-bool", lambda e: _iv(e, inject_layers=True), Invalid, "inject_layers")
add(G, "rep-penalty-str", lambda e: _iv(e, repetition_penalty="x"), Invalid, "repetition_penalty")
add(G, "rep-penalty-zero", lambda e: _iv(e, repetition_penalty=0), Invalid, "repetition_penalty")
add(G, "rep-penalty-inf", lambda e: _iv(e, repetition_penalty=float("inf")), Invalid, "repetition_penalty")
add(G, "ngram-negative", lambda e: _iv(e, no_repeat_ngram_size=-1), Invalid, "no_repeat_ngram_size")
add(G, "ngram-float", lambda e: _iv(e, no_repeat_ngram_size=2.0), Invalid, "no_repeat_ngram_size")
add(G, "temperature-inf", lambda e: _iv(e, do_sample=True, temperature=float("inf")), Invalid, "temperature")
add(G, "temperature-nan", lambda e: _iv(e, do_sample=True, temperature=float("nan")), Invalid, "temperature")
add(G, "temperature-str", lambda e: _iv(e, do_sample=True, temperature="hot"), Invalid, "temperature")
add(G, "temperature-zero", lambda e: _iv(e, do_sample=True, temperature=0), Invalid, "temperature")
add(G, "top-k-zero", lambda e: _iv(e, do_sample=True, top_k=0), Invalid, "top_k")
add(G, "top-k-bool", lambda e: _iv(e, do_sample=True, top_k=True), Invalid, "top_k")
add(G, "top-k-float", lambda e: _iv(e, do_sample=True, top_k=2.5), Invalid, "top_k")
add(G, "top-k-numpy", lambda e: _iv(e, do_sample=True, seed=1, top_k=np.int64(5)),
    check=_same_iv(do_sample=True, seed=1, top_k=5))
add(G, "top-p-zero", lambda e: _iv(e, do_sample=True, top_p=0), Invalid, "top_p")
add(G, "top-p-high", lambda e: _iv(e, do_sample=True, top_p=1.5), Invalid, "top_p")
add(G, "top-p-str", lambda e: _iv(e, do_sample=True, top_p="x"), Invalid, "top_p")
add(G, "seed-str", lambda e: _iv(e, do_sample=True, seed="abc"), Invalid, "seed.*'abc'")
add(G, "seed-float", lambda e: _iv(e, do_sample=True, seed=1.5), Invalid, "seed")
add(G, "seed-bool", lambda e: _iv(e, do_sample=True, seed=True), Invalid, "seed")
add(G, "seed-negative", lambda e: _iv(e, do_sample=True, seed=-1), Invalid, "seed")
add(G, "seed-numpy", lambda e: _iv(e, do_sample=True, seed=np.int64(3)), check=_same_iv(do_sample=True, seed=3))
add(G, "unknown-option", lambda e: _iv(e, temprature=1.0), TypeError, "temprature")
add(G, "config-dict", lambda e: generate_interpretations(e.llama, _vec(e), config={"k": 1, "max_new_tokens": 3}).texts,
    check=lambda r, e: r == _iv(e, k=1, max_new_tokens=3))
add(G, "config-dict-unknown-key", lambda e: generate_interpretations(e.llama, _vec(e), config={"kk": 1}),
    Invalid, "kk")
add(G, "config-str", lambda e: generate_interpretations(e.llama, _vec(e), config="fast"), Invalid, "config")
add(G, "config-bad-field", lambda e: generate_interpretations(e.llama, _vec(e), config=InterpretationConfig(k=99)),
    LayerErr, "99")
add(G, "preset-unknown", lambda e: _iv(e, preset="fastest"), Invalid, "fastest")
add(G, "preset-int", lambda e: _iv(e, preset=3), Invalid, "preset")
add(G, "adapter-int", lambda e: _iv(e, adapter=5), Invalid, "adapter")
add(G, "adapter-missing-file", lambda e: _iv(e, adapter=str(e.file("nope.safetensors"))), FileNotFoundError)
add(G, "model-none", lambda e: interpret_vectors(None, _vec(e), **NOREL), Invalid, "model")
add(G, "model-str", lambda e: interpret(e.llama.cfg.model_name, "The cat", [(1, 0)]), Invalid, "model")

# vectors to interpret
G = "vectors"
add(G, "width", lambda e: _iv(e, torch.zeros(2, 32)), VecErr, r"\[n, 64\]")
add(G, "nan", lambda e: _iv(e, torch.full((1, 64), float("nan"))), VecErr, "NaN")
add(G, "inf", lambda e: _iv(e, torch.full((1, 64), float("inf"))), VecErr, "inf")
add(G, "empty", lambda e: _iv(e, torch.zeros(0, 64)), VecErr)
add(G, "3d", lambda e: _iv(e, torch.zeros(1, 2, 64)), VecErr)
add(G, "int-dtype", lambda e: _iv(e, torch.zeros(1, 64, dtype=torch.long)), VecErr, "floating")
add(G, "str", lambda e: _iv(e, "vector"), VecErr)
add(G, "none", lambda e: interpret_vectors(e.llama, None, **NOREL), VecErr)
add(G, "complex", lambda e: _iv(e, torch.zeros(1, 64, dtype=torch.complex64)), VecErr)
add(G, "list", lambda e: _iv(e, _vec(e).tolist()), check=lambda r, e: r == _iv(e, _vec(e)))
add(G, "numpy-f64", lambda e: _iv(e, _vec(e).numpy().astype("float64")), check=lambda r, e: r == _iv(e, _vec(e)))
add(G, "1d", lambda e: _iv(e, _vec(e)[0]), check=lambda r, e: r == _iv(e, _vec(e)))
add(G, "requires-grad", lambda e: _iv(e, _vec(e).requires_grad_()), check=lambda r, e: r == _iv(e, _vec(e)))
add(G, "add-huge-scale", lambda e: _iv(e, mode="add", scale=1e38), NumErr, "scale")
add(G, "replace-huge-vector", lambda e: _iv(e, _vec(e, scale=1e30)), NumErr, "NaN|inf")
add(G, "relevancy-huge-scale", lambda e: _interp(e, mode="add", scale=1e38, relevancy=True), NumErr)
add(G, "auto-huge-vector", lambda e: _iv(e, _vec(e, scale=1e30), scale="auto"), NumErr)
add(G, "nan-from-hook", lambda e: _iv(e, fwd_hooks=[("blocks.2.hook_resid_post", _nan_hook)]), NumErr, "NaN")
add(G, "nan-from-hook-decode", lambda e: _iv(e, fwd_hooks=[("blocks.2.hook_resid_post", _nan_on_decode)]), NumErr,
    "NaN")
add(G, "nan-from-hook-generate", lambda e: _gen(e, prefill_hooks=[("blocks.0.hook_resid_post", _nan_hook)]), NumErr,
    "prefill")

# user hooks
G = "hooks"
add(G, "unknown-name", lambda e: _iv(e, fwd_hooks=[("blocks.99.nope", lambda t, hook: None)]), HookErr,
    "blocks.99.nope")
add(G, "unknown-name-interpret", lambda e: _interp(e, fwd_hooks=[("blocks.0.hook_resid_prex", lambda t, hook: None)]),
    HookErr, "hook_resid_prex")
add(G, "not-a-pair", lambda e: _iv(e, fwd_hooks=[("blocks.0.hook_resid_pre",)]), HookErr, "pair")
add(G, "string", lambda e: _iv(e, fwd_hooks="blocks.0.hook_resid_pre"), HookErr)
add(G, "fn-not-callable", lambda e: _iv(e, fwd_hooks=[("blocks.0.hook_resid_pre", "zero")]), HookErr, "callable")
add(G, "name-int", lambda e: _iv(e, fwd_hooks=[(3, lambda t, hook: None)]), HookErr)
add(G, "wrong-shape", lambda e: _iv(e, fwd_hooks=[("blocks.1.hook_resid_pre", _wrong_shape_hook)]), HookErr,
    "blocks.1.hook_resid_pre.*_wrong_shape_hook|_wrong_shape_hook.*blocks.1.hook_resid_pre")
add(G, "wrong-type", lambda e: _iv(e, fwd_hooks=[("blocks.1.hook_mlp_out", _list_hook)]), HookErr, "list")
add(G, "wrong-shape-generate", lambda e: _gen(e, prefill_hooks=[("blocks.0.hook_mlp_out", _wrong_shape_hook)]),
    HookErr, "blocks.0.hook_mlp_out")
add(G, "wrong-shape-capture-in-interpret",
    lambda e: _interp(e, fwd_hooks=[("blocks.0.hook_resid_post", _wrong_shape_hook)]), HookErr)
add(G, "user-error-propagates", lambda e: _iv(e, fwd_hooks=[("blocks.1.hook_resid_pre", _raising_hook)]),
    ValueError, "user hook says no")
add(G, "filter-function-name", lambda e: _iv(e, fwd_hooks=[(lambda n: n.endswith("mlp_out"), lambda t, hook: None)]),
    check=lambda r, e: r == _iv(e))
add(G, "tuple-of-hooks", lambda e: _iv(e, fwd_hooks=(("blocks.1.hook_mlp_out", lambda t, hook: None),)),
    check=lambda r, e: r == _iv(e))
add(G, "generate-unknown-name", lambda e: _gen(e, prefill_hooks=[("blocks.7.hook_resid_pre", lambda t, hook: t)]),
    HookErr, "blocks.7")

# KeyboardInterrupt from inside the run: must propagate and leave nothing behind
G = "interrupt"
add(G, "prefill", lambda e: _iv(e, fwd_hooks=[("blocks.2.hook_resid_pre", _interrupt(lambda t, s: t.shape[1] > 1))]),
    KeyboardInterrupt)
add(G, "decode", lambda e: _iv(e, fwd_hooks=[("blocks.2.hook_resid_pre", _interrupt(lambda t, s: t.shape[1] == 1))]),
    KeyboardInterrupt)
add(G, "relevancy-pass", lambda e: generate_interpretations(
        e.llama, _vec(e, 2, scale=20.0), k=1, max_new_tokens=6,
        fwd_hooks=[("blocks.2.hook_resid_pre", _interrupt(lambda t, s: s["saw_decode"] and t.shape[1] > 1))]),
    KeyboardInterrupt)
add(G, "capture", lambda e: _interp(e, fwd_hooks=[("blocks.0.hook_resid_pre", _interrupt(lambda t, s: True))]),
    KeyboardInterrupt)
add(G, "auto-scale-pass", lambda e: _iv(e, scale="auto",
        fwd_hooks=[("blocks.2.hook_resid_pre", _interrupt(lambda t, s: True))]), KeyboardInterrupt)
add(G, "complete-decode", lambda e: _complete_with_hook(e, _interrupt(lambda t, s: t.shape[1] == 1)),
    KeyboardInterrupt)
add(G, "then-works", lambda e: (_safe_interrupt(e), _iv(e))[1], check=lambda r, e: r == _iv(e))


def _complete_with_hook(env: Env, hook: Callable) -> list[str]:
    with env.llama.hooks(fwd_hooks=[("blocks.1.hook_mlp_out", hook)]):
        return complete(env.llama, ["abc"], max_new_tokens=4)


def _safe_interrupt(env: Env) -> None:
    try:
        _iv(env, fwd_hooks=[("blocks.2.hook_resid_pre", _interrupt(lambda t, s: t.shape[1] == 1))])
    except KeyboardInterrupt:
        pass


# generate
G = "generate"
add(G, "max-new-negative", lambda e: _gen(e, max_new_tokens=-1), Invalid, "max_new_tokens.*-1")
add(G, "max-new-zero", lambda e: _gen(e, max_new_tokens=0), Invalid, "max_new_tokens")
add(G, "max-new-float", lambda e: _gen(e, max_new_tokens=2.5), Invalid, "2.5")
add(G, "max-new-bool", lambda e: _gen(e, max_new_tokens=True), Invalid, "True")
add(G, "max-new-past-context", lambda e: _gen(e, max_new_tokens=510), ContextErr, "510")
add(G, "max-new-numpy", lambda e: _gen(e, max_new_tokens=np.int64(3)).tokens.tolist(),
    check=lambda r, e: r == _gen(e).tokens.tolist())
add(G, "ids-1d", lambda e: _gen(e, torch.tensor([104, 105, 106])).tokens.tolist(),
    check=lambda r, e: r == _gen(e).tokens.tolist())
add(G, "ids-list", lambda e: _gen(e, [[104, 105, 106]]).tokens.tolist(),
    check=lambda r, e: r == _gen(e).tokens.tolist())
add(G, "ids-float", lambda e: _gen(e, torch.tensor([[1.7, 2.2]])), PromptErr, "float")
add(G, "ids-out-of-vocab", lambda e: _gen(e, torch.tensor([[104, 259]])), PromptErr, "259")
add(G, "ids-negative", lambda e: _gen(e, torch.tensor([[104, -5]])), PromptErr, "-5")
add(G, "ids-3d", lambda e: _gen(e, torch.zeros(1, 1, 3, dtype=torch.long)), Invalid, "shape")
add(G, "ids-empty", lambda e: _gen(e, torch.zeros(1, 0, dtype=torch.long)), Invalid)
add(G, "ids-str", lambda e: _gen(e, "abc"), Invalid)
add(G, "ids-too-long", lambda e: _gen(e, torch.full((1, 600), 97)), ContextErr, "600")
add(G, "mask-shape", lambda e: _gen(e, attention_mask=torch.ones(1, 5, dtype=torch.long)), Invalid, "attention_mask")
add(G, "mask-values", lambda e: _gen(e, attention_mask=torch.tensor([[1, 2, 1]])), Invalid, "attention_mask")
add(G, "temperature-inf", lambda e: _gen(e, do_sample=True, temperature=float("inf")), Invalid, "temperature")
add(G, "temperature-zero", lambda e: _gen(e, do_sample=True, temperature=0.0), Invalid, "temperature")
add(G, "top-k-zero", lambda e: _gen(e, do_sample=True, top_k=0), Invalid, "top_k")
add(G, "top-p-zero", lambda e: _gen(e, do_sample=True, top_p=0.0), Invalid, "top_p")
add(G, "rep-penalty-zero", lambda e: _gen(e, repetition_penalty=0.0), Invalid, "repetition_penalty")
add(G, "ngram-negative", lambda e: _gen(e, no_repeat_ngram_size=-2), Invalid, "no_repeat_ngram_size")
add(G, "do-sample-str", lambda e: _gen(e, do_sample="no"), Invalid, "do_sample")
add(G, "generator-str", lambda e: _gen(e, do_sample=True, generator="seed"), Invalid, "generator")
add(G, "eos-str", lambda e: _gen(e, eos_token_ids="x"), Invalid, "eos_token_ids")
add(G, "eos-int", lambda e: _gen(e, eos_token_ids=105).tokens.tolist(),
    check=lambda r, e: r == _gen(e, eos_token_ids=[105]).tokens.tolist())
add(G, "eos-out-of-vocab", lambda e: _gen(e, eos_token_ids=[9999]), Invalid, "9999")

# complete
G = "complete"
add(G, "single-string", lambda e: complete(e.llama, "a string", max_new_tokens=2), Invalid, "list")
add(G, "max-new-float", lambda e: complete(e.llama, ["ab"], max_new_tokens=1.5), Invalid, "1.5")
add(G, "max-new-negative", lambda e: complete(e.llama, ["ab"], max_new_tokens=-1), Invalid, "max_new_tokens")
add(G, "batch-bool", lambda e: complete(e.llama, ["ab"], batch_size=True), Invalid, "batch_size")
add(G, "batch-float", lambda e: complete(e.llama, ["ab"], batch_size=2.0), Invalid, "batch_size")
add(G, "item-int", lambda e: complete(e.llama, ["ab", 3]), PromptErr, "3")
add(G, "item-empty", lambda e: complete(e.llama, ["ab", ""]), PromptErr)
add(G, "none", lambda e: complete(e.llama, None), Invalid, "None")
add(G, "too-long", lambda e: complete(e.llama, ["ok", LONG], max_new_tokens=2), ContextErr, "600")
add(G, "max-new-past-context", lambda e: complete(e.llama, ["ab"], max_new_tokens=600), ContextErr, "600")
add(G, "empty-list", lambda e: complete(e.llama, []), check=lambda r, e: r == [])
add(G, "tuple", lambda e: complete(e.llama, ("ab",), max_new_tokens=3),
    check=lambda r, e: r == complete(e.llama, ["ab"], max_new_tokens=3))

# capture and friends
G = "capture"
add(G, "layers-none", lambda e: capture(e.llama, "abc", None, -1), LayerErr, "None")
add(G, "layers-empty", lambda e: capture(e.llama, "abc", [], -1), LayerErr)
add(G, "layers-str", lambda e: capture(e.llama, "abc", "1", -1), LayerErr)
add(G, "layers-numpy-array", lambda e: capture(e.llama, "abc", np.array([0, 2]), -1).tolist(),
    check=lambda r, e: r == capture(e.llama, "abc", [0, 2], -1).tolist())
add(G, "positions-none", lambda e: capture(e.llama, "abc", 1, None), PosErr, "None")
add(G, "positions-empty", lambda e: capture(e.llama, "abc", 1, []), PosErr)
add(G, "positions-float", lambda e: capture(e.llama, "abc", 1, [0.5]), PosErr, "0.5")
add(G, "positions-range", lambda e: capture(e.llama, "abc", 1, range(3)).shape[1], check=lambda r, e: r == 3)
add(G, "too-long", lambda e: capture(e.llama, LONG, 1, -1), ContextErr, "600")
add(G, "ids-out-of-vocab", lambda e: capture(e.llama, torch.tensor([5, 700]), 1, -1), PromptErr, "700")
add(G, "hook-name-float", lambda e: hook_name(e.llama, 1.5), LayerErr, "1.5")
add(G, "hook-name-numpy", lambda e: hook_name(e.llama, np.int64(3)), check=lambda r, e: r == "blocks.2.hook_resid_post")
add(G, "cache-batch-index", lambda e: vectors_from_cache(e.llama.run_with_cache("ab")[1], e.llama, [1], [0], 5),
    Invalid, "batch_index")
add(G, "cache-not-a-cache", lambda e: vectors_from_cache({"x": 1}, e.llama, [1], [0]), Invalid)
add(G, "pairs-int", lambda e: layer_token_pairs(5, [1]), Invalid, "layers")
add(G, "pairs-str", lambda e: layer_token_pairs("0:3", [1]), Invalid, "layers")

# injection hooks built by hand
G = "injection"
add(G, "positions-empty", lambda e: injection_hook(torch.zeros(1, 64), []), Invalid, "positions")
add(G, "positions-negative", lambda e: injection_hook(torch.zeros(1, 64), [-1]), Invalid, "-1")
add(G, "positions-float", lambda e: injection_hook(torch.zeros(1, 64), [1.5]), Invalid, "1.5")
add(G, "mode-bad", lambda e: injection_hook(torch.zeros(1, 64), [1], mode="mix"), Invalid, "mode")
add(G, "strength-str", lambda e: injection_hook(torch.zeros(1, 64), [1], strength="x"), Invalid, "strength")
add(G, "vectors-list", lambda e: injection_hook([[0.0] * 64], [1]), Invalid, "vectors")
add(G, "hooks-wrong-width", lambda e: injection_hooks(e.llama, torch.zeros(1, 32), [1], k=1), VecErr, "64")
add(G, "hooks-n-layers-bool", lambda e: injection_hooks(e.llama, torch.zeros(1, 64), [1], k=1, n_layers=True),
    Invalid, "inject_layers")

# relevancy helpers
G = "relevancy"
add(G, "scores-shape", lambda e: relevancy_scores(torch.zeros(2, 3), torch.zeros(1, 3)), Invalid, "shape")
add(G, "scores-shape-2", lambda e: relevancy_scores(torch.zeros(1, 3), torch.zeros(1, 2)), Invalid, "shape")
add(G, "baseline-1d-generated", lambda e: baseline_probs(e.llama, _ID_OK, torch.tensor([104, 105])), Invalid,
    "generated")
add(G, "baseline-out-of-vocab", lambda e: baseline_probs(e.llama, _ID_OK, torch.tensor([[104, 999]])), PromptErr,
    "999")

# logit lens and interop
G = "lens-interop"
add(G, "lens-top-k-zero", lambda e: logit_lens(e.llama, _vec(e), top_k=0), Invalid, "top_k")
add(G, "lens-top-k-numpy", lambda e: logit_lens(e.llama, _vec(e), top_k=np.int64(2)),
    check=lambda r, e: r == logit_lens(e.llama, _vec(e), top_k=2))
add(G, "lens-apply-ln-str", lambda e: logit_lens_topk(e.llama, _vec(e), apply_ln="no"), Invalid, "apply_ln")
add(G, "lens-vectors-width", lambda e: logit_lens(e.llama, torch.zeros(1, 3)), VecErr)
add(G, "with-lens-not-df", lambda e: with_logit_lens(e.llama, [1, 2]), Invalid, "DataFrame")
add(G, "patched-position", lambda e: patched_capture(e.llama, "abc", "xyz", 1, -1, 5, [2], [-1]), PosErr, "5")
add(G, "patched-layer", lambda e: patched_capture(e.llama, "abc", "xyz", 3, -1, -1, [2], [-1]), LayerErr)
add(G, "patched-too-long", lambda e: patched_capture(e.llama, LONG, "xyz", 1, -1, -1, [2], [-1]), ContextErr)
add(G, "mean-diff-str", lambda e: mean_difference(e.llama, "good", ["bad"], 1), Invalid)
add(G, "mean-diff-layer", lambda e: mean_difference(e.llama, ["good"], ["bad"], 9), LayerErr)
add(G, "sae-index-numpy", lambda e: sae_directions(_Sae(), [np.int64(1)]).argmax(-1).tolist(),
    check=lambda r, e: r == [1])
add(G, "sae-index-bool", lambda e: sae_directions(_Sae(), [True]), Invalid)
add(G, "sae-no-wdec", lambda e: sae_directions(object(), [1]), Invalid, "W_dec")
add(G, "rescale-norm-str", lambda e: rescale(torch.ones(1, 4), "big"), Invalid, "norm")
add(G, "rescale-norm-negative", lambda e: rescale(torch.ones(1, 4), -2.0), Invalid, "norm")
add(G, "rescale-norm-inf", lambda e: rescale(torch.ones(1, 4), float("inf")), Invalid, "norm")
add(G, "rescale-nan-vector", lambda e: rescale(torch.tensor([[float("nan"), 1.0]]), 1.0), VecErr, "NaN")
add(G, "rescale-str-vector", lambda e: rescale("abc", 1.0), VecErr)
add(G, "typical-norm-layer", lambda e: typical_norm(e.llama, "abc", 99), LayerErr, "99")
add(G, "typical-norm-too-long", lambda e: typical_norm(e.llama, LONG, 1), ContextErr)


class _Sae:
    W_dec = torch.eye(4, 64)


# control edits
G = "edits"
add(G, "attach-same-file-twice", _attach_twice_from_file, Invalid, "already attached")
add(G, "attach-identical-copy", _attach_copy, Invalid, "already attached")
add(G, "attach-object-twice", lambda e: _attach_object_twice(e), Invalid, "already attached")
add(G, "two-different-edits", _attach_two_different, check=_two_edits_check)
add(G, "reattach-after-detach", _reattach_after_detach, check=lambda r, e: r is True)
add(G, "attach-to-none", lambda e: MLPEdit.for_model(e.llama, 1).attach(None), Invalid, "model")
add(G, "attach-other-width", lambda e: MLPEdit(32, 1).attach(e.llama), EditErr, "d_model")
add(G, "rank-bool", lambda e: MLPEdit(64, 1, rank=True), Invalid, "rank")
add(G, "rank-numpy", lambda e: MLPEdit(64, 1, rank=np.int64(2)).rank, check=lambda r, e: r == 2)
add(G, "seed-str", lambda e: MLPEdit(64, 1, seed="abc"), Invalid, "seed")
add(G, "layer-zero", lambda e: MLPEdit.for_model(e.llama, 0), LayerErr, r"\[1, 3\]")
add(G, "load-missing", lambda e: load_edit(e.file("missing.safetensors"), e.llama), FileNotFoundError)
add(G, "load-directory", lambda e: load_edit(e.file("a_directory.safetensors"), e.llama), (FileNotFoundError, EditErr))
add(G, "load-path-int", lambda e: load_edit(5, e.llama), Invalid, "path")
add(G, "load-truncated", lambda e: load_edit(e.file("edit_truncated.safetensors"), e.llama), EditErr)
add(G, "load-empty", lambda e: load_edit(e.file("edit_empty.safetensors"), e.llama), EditErr)
add(G, "load-garbage", lambda e: load_edit(e.file("edit_garbage.safetensors"), e.llama), EditErr)
add(G, "load-bitflip", lambda e: load_edit(e.file("edit_bitflip.safetensors"), e.llama), EditErr, "SHA-256")
add(G, "load-meta-edited", lambda e: load_edit(e.file("edit_meta.safetensors"), e.llama), EditErr, "SHA-256")
add(G, "load-other-model", lambda e: load_edit(e.file("edit_other_model.safetensors"), e.llama), EditErr,
    "different model")
add(G, "load-gpt2-edit-on-llama", lambda e: load_edit(e.file("edit_gpt2.safetensors"), e.llama), EditErr)
add(G, "load-adapter-as-edit", lambda e: load_edit(e.file("adapter.safetensors"), e.llama), EditErr)
add(G, "load-model-none", lambda e: load_edit(e.file("edit.safetensors"), None), Invalid, "model")
add(G, "supervised-layer-float", lambda e: supervised_control(e.llama, "cat", "dog", 1.0, max_steps=1, verbose=False),
    LayerErr)
add(G, "supervised-steps-bool", lambda e: supervised_control(e.llama, "cat", "dog", 1, max_steps=True, verbose=False),
    Invalid, "max_steps")
add(G, "supervised-target-nan", lambda e: supervised_control(e.llama, "cat", torch.full((64,), float("nan")), 1,
    max_steps=1, verbose=False), VecErr)
add(G, "supervised-target-too-long", lambda e: supervised_control(e.llama, "cat", "d" * 600, 1,
    objective="interpretation", max_steps=1, verbose=False), ContextErr)
add(G, "supervised-references-str", lambda e: supervised_control(e.llama, "cat", "dog", 1, reference_texts="abc",
    max_steps=1, verbose=False), PromptErr, "reference_texts")
add(G, "reinforcement-references-str", lambda e: reinforcement_control(e.llama, ["ab"], 2, KeywordReward(["a"]),
    reference_texts="abc", steps=1, verbose=False), PromptErr, "reference_texts")
add(G, "reinforcement-too-long", lambda e: reinforcement_control(e.llama, [LONG], 2, KeywordReward(["a"]), steps=1,
    verbose=False), ContextErr)
add(G, "reinforcement-max-new-past-context", lambda e: reinforcement_control(e.llama, ["ab"], 2,
    KeywordReward(["a"]), steps=1, max_new_tokens=600, verbose=False), ContextErr)
add(G, "reinforcement-reward-none", lambda e: reinforcement_control(e.llama, ["ab"], 2, None, steps=1,
    verbose=False), Invalid, "reward")
add(G, "read-metadata-path-int", lambda e: read_edit_metadata(5), Invalid, "path")
add(G, "save-path-int", lambda e: MLPEdit.for_model(e.llama, 1).save(5), Invalid, "path")
add(G, "supervised-too-long", lambda e: supervised_control(e.llama, LONG, "dog", 1, max_steps=1, verbose=False),
    ContextErr)


def _attach_object_twice(env: Env):
    edit = MLPEdit.for_model(env.llama, 1)
    with edit.attached(env.llama):
        edit.attach(env.llama)


# self-interpretation adapters
G = "adapters"
add(G, "load-truncated", lambda e: load_adapter(e.file("adapter_truncated.safetensors"), e.llama),
    _error("AdapterMismatchError") if hasattr(errors, "AdapterMismatchError") else SelfieError)
add(G, "load-bitflip", lambda e: _iv(e, adapter=str(e.file("adapter_bitflip.safetensors"))), SelfieError, "SHA-256")
add(G, "load-edit-as-adapter", lambda e: load_adapter(e.file("edit.safetensors"), e.llama), SelfieError)
add(G, "other-width", lambda e: _iv(e, adapter=str(e.file("adapter_d32.safetensors"))), SelfieError, "d_model|fingerprint")
add(G, "object-other-width", lambda e: _iv(e, adapter=SelfInterpretationAdapter(32)), SelfieError, "d_model")
add(G, "d-model-bool", lambda e: SelfInterpretationAdapter(True), Invalid, "d_model")
add(G, "save-path-int", lambda e: SelfInterpretationAdapter(64).save(5), Invalid, "path")
add(G, "load-path-none", lambda e: load_adapter(None, e.llama), Invalid, "path")
add(G, "rank-float", lambda e: SelfInterpretationAdapter(64, rank=1.5), Invalid, "rank")
add(G, "train-steps-negative", lambda e: train_adapter(e.llama, _vec(e, 2), [" a", " b"], k=1, steps=-1,
    verbose=False), Invalid, "steps")
add(G, "train-lr-str", lambda e: train_adapter(e.llama, _vec(e, 2), [" a", " b"], k=1, steps=1, lr="fast",
    verbose=False), Invalid, "lr")
add(G, "train-targets-mismatch", lambda e: train_adapter(e.llama, _vec(e, 2), [" a"], k=1, steps=1, verbose=False),
    Invalid)
add(G, "train-batch-zero", lambda e: train_adapter(e.llama, _vec(e, 2), [" a", " b"], k=1, steps=1, batch_size=0,
    verbose=False), Invalid, "batch_size")

# concurrency: several threads on one model get their own results
G = "concurrency"
add(G, "four-threads-interpret-vectors", _concurrent_vectors, check=_equal_pair)
add(G, "threads-with-relevancy", _concurrent_relevancy, check=_equal_pair)
add(G, "threads-mixed-functions", _concurrent_mixed, check=_equal_pair)
add(G, "threads-own-fwd-hooks", _concurrent_with_user_hooks, check=_equal_pair)
add(G, "threads-sampling-seeded", lambda e: _concurrent_vectors(e, do_sample=True, seed=4, temperature=1.5),
    check=_equal_pair)

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"
