"""Write and execute the notebooks (the sources live here so diffs stay readable).

Run from the repository root::

    python notebooks/build_notebooks.py [01|02|03|04|05|06 ...]

Each notebook is rebuilt from the cells below, executed top to bottom with nbclient on the
embedded default model, and saved with its outputs.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(text.strip())


def code(text: str):
    return new_code_cell(text.strip())


NB01 = [
    md("""
# SelfIE: let a model describe its own hidden states

SelfIE (Chen, Vondrick, Mao, ICML 2024) reads a hidden state of the residual stream at some
(layer, token), injects it into the placeholder positions of an *interpretation prompt*
("summarize the message: _ _ _ _ _") and lets the model generate. The text it writes is an
interpretation of that hidden state. The **relevancy** of each generated token,
`|p(token | state injected) - p(token | nothing injected)|`, tells which words came from
the injected state rather than from the interpretation prompt itself.

This notebook runs on the embedded default model (SmolLM2-135M-Instruct) on a CPU. A
135M-parameter model gives rough interpretations: read them as a demonstration of the
tools, not as findings.
"""),
    code("""
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import pandas as pd
import selfie_tl
from selfie_tl import viz

model = selfie_tl.load_model()
print(model.cfg.model_name, "-", model.cfg.n_layers, "layers, d_model", model.cfg.d_model)
"""),
    md("""
## The prompt and its tokens

Positions are those of `model.tokenizer(prompt).input_ids` (no BOS is added for SmolLM2).
"""),
    code("""
prompt = "What is the highest mountain in the world?"
ids = model.tokenizer(prompt).input_ids
tokens = [model.tokenizer.decode([i]) for i in ids]
pd.DataFrame({"token": tokens}).T
"""),
    md("""
## Interpret a layer x token grid

Residual layer `L < 30` is the input of block `L`; layer 30 is the output of the last
block. We read the states of ` mountain` and of the final `?` every five layers; each is
injected at layer `k=2` of the default interpretation prompt.
"""),
    code("""
mountain = tokens.index(" mountain")
pairs = selfie_tl.layer_token_pairs(range(0, 31, 5), [mountain, -1])
df = selfie_tl.interpret(model, prompt, pairs, k=2, max_new_tokens=12, batch_size=len(pairs))
print(df.attrs["interpretation_prompt"])
df[["layer", "token", "token_decoded", "interpretation", "mean_relevancy"]]
"""),
    md("""
## The grid in a notebook

`viz.show(df)` renders the interactive grid: the colour of a cell is its content relevancy
(`selfie_tl.relevancy.content_relevancy`: mean relevancy over the interpretation's content
tokens, leaving out whitespace, special tokens and repetitions), and the cell shows the
most relevant part of the text. In a live notebook, hover over (or click) a cell to see the
whole interpretation with each token shaded by its relevancy; on a code host, where
scripts do not run, the grid shows the colours and excerpts only.
"""),
    code("""
viz.show(df)
"""),
    md("""
The same grid as a static matplotlib figure, e.g. for a paper (`path=` saves PNG or SVG):
"""),
    code("""
viz.plot_grid(df, max_chars=40)
"""),
    md("""
## Which words came from the hidden state?

One interpretation with each generated token shaded by relevancy, and the spans whose
relevancy is above a threshold.
"""),
    code("""
from IPython.display import HTML

row = df.loc[df["mean_relevancy"].idxmax()]
print(f"layer {row.layer}, token {row.token} {row.token_decoded!r}: {row.interpretation!r}")
HTML(viz.interpretation_html(row))
"""),
    code("""
threshold = 0.1
for r in df.itertuples():
    spans = viz.relevant_spans(r.generated_tokens, r.relevancy, threshold=threshold)
    print(f"layer {r.layer:2d} {r.token_decoded!r:12} ->", [(s.text, round(s.max_relevancy, 2)) for s in spans])
"""),
    md("""
## A standalone report

`viz.write_report` writes one HTML file with inline styles and script (nothing fetched
from the network); `selfie-tl interpret ... --html report.html` does the same from the
command line.
"""),
    code("""
import tempfile
from pathlib import Path

path = viz.write_report(df, Path(tempfile.mkdtemp()) / "report.html", title="Highest mountain")
print(path.name, f"{path.stat().st_size / 1024:.0f} KiB")
"""),
]


NB04 = [
    md("""
# SelfIE with other TransformerLens analyses

SelfIE interprets any vector of the residual width, so it composes with the usual tools:

1. vectors taken from a `run_with_cache` `ActivationCache`;
2. SelfIE next to the logit lens on the same states;
3. activation patching, then SelfIE on the patched residual stream;
4. directions that are no prompt's residual state: a difference of means, and a
   sparse-autoencoder decoder row (any object with `W_dec`; SAELens is optional).

All on the embedded SmolLM2-135M-Instruct on a CPU; its interpretations are rough, so read
the outputs as a demonstration of the plumbing.
"""),
    code("""
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import pandas as pd
import torch
import selfie_tl
from selfie_tl import interop, viz

pd.set_option("display.max_colwidth", 80)
model = selfie_tl.load_model()
tok = model.tokenizer
OPTS = dict(k=2, max_new_tokens=12)  # injection layer and length of every interpretation below
"""),
    md("""
## 1. Vectors from an `ActivationCache`

A normal `run_with_cache`; `vectors_from_cache` picks residual states by layer (0..30) and
position, and `interpret_vectors` interprets them.
"""),
    code("""
prompt = "The Eiffel Tower is located in the city of"
ids = torch.tensor(tok(prompt).input_ids)
logits, cache = model.run_with_cache(ids[None], names_filter=lambda name: "hook_resid" in name)
print([tok.decode([i]) for i in ids])

layers = [5, 15, 25]
tower = [tok.decode([i]) for i in ids].index(" Tower")
vectors = selfie_tl.vectors_from_cache(cache, model, layers, [tower])[:, 0]  # [3, d_model]
selfie = selfie_tl.interpret_vectors(model, vectors, **OPTS)
"""),
    md("""
## 2. SelfIE next to the logit lens

The logit lens decodes a state with the final norm and the unembedding: which *next token*
it points to. SelfIE asks the model to describe the state in words. For the ` Tower` token:
"""),
    code("""
lens = interop.logit_lens(model, vectors, top_k=5)
pd.DataFrame({
    "layer": layers,
    "SelfIE": selfie,
    "logit lens (top 5)": [", ".join(f"{t!r} {p:.2f}" for t, p in reading) for reading in lens],
})
"""),
    md("""
The two answer different questions: the logit lens of a mid-sequence token mostly shows
what comes next in the sentence, while SelfIE describes the state. A 135M model often
falls back on generic continuations ("The original message is:"); the relevancy scores
(see the end of this notebook and `01_interpret.ipynb`) separate those from words that
came from the state. `interop.with_logit_lens(model, df)` adds the logit-lens reading as
a column to an `interpret` result.
"""),
    md("""
## 3. Activation patching, then SelfIE

Copy the residual state of ` Italy` (from "The capital of Italy is") into the position of
` France` in "The capital of France is" at layer 8, let the run continue, and read the
last position at layer 20 and at the output. The prediction flips to Rome, and SelfIE can
interpret the patched state.
"""),
    code("""
target, source = "The capital of France is", "The capital of Italy is"
country = 3  # position of " France" / " Italy"
read = [20, model.cfg.n_layers]
clean = selfie_tl.capture(model, target, read, [-1])[:, 0]
patched = interop.patched_capture(model, target, source, patch_layer=8, source_position=country,
                                  target_position=country, layers=read, positions=[-1])[:, 0]
top1 = lambda v: interop.logit_lens(model, v, top_k=1)[0][0]
texts = selfie_tl.interpret_vectors(model, torch.cat([clean, patched]), **OPTS)
pd.DataFrame({
    "run": ["clean", "clean", "patched", "patched"],
    "layer": read * 2,
    "next token (logit lens)": [f"{t!r} {p:.2f}" for t, p in map(top1, torch.cat([clean, patched]))],
    "SelfIE": texts,
})
"""),
    md("""
## 4. Directions that are not residual states

**Difference of means.** The mean state of the last token over prompts about one concept
minus the mean over contrasting prompts. Such a difference is short compared with a
residual state, so `rescale` brings it to the typical norm of layer 10 before injection
(SelfIE replaces the residual at the placeholders, so the length matters).
"""),
    code("""
water = ["The ocean is full of", "We went swimming in the lake and the", "The river flows into the sea and the"]
desert = ["The desert is full of", "We walked across the dry sand and the", "The sun burns over the dunes and the"]
layer = 10
direction = interop.mean_difference(model, water, desert, layer=layer)
norm = interop.typical_norm(model, water[0], layer)
print(f"difference norm {direction.norm():.1f}, typical residual norm at layer {layer}: {norm:.1f}")
for sign, name in [(1, "water - desert"), (-1, "desert - water")]:
    text = selfie_tl.interpret_vectors(model, interop.rescale(sign * direction, norm), **OPTS)[0]
    print(f"{name:15} -> {text!r}")
"""),
    md("""
**A sparse-autoencoder decoder row.** `interop.sae_directions(sae, indices)` takes any
object with `W_dec` of shape `[d_sae, d_model]`, e.g. a SAELens `SAE` loaded with
`SAE.from_pretrained(...)`. No SAE for this model is bundled, and this notebook must run
without the network, so below a *stand-in* with the same interface is used: its "decoder
rows" are the token-embedding directions of three words. With a trained SAE, replace
`sae` and the feature indices.
"""),
    code("""
import types

words = [" Paris", " dog", " music"]
word_ids = [tok(w).input_ids[0] for w in words]
sae = types.SimpleNamespace(W_dec=torch.nn.functional.normalize(model.W_E[word_ids].detach(), dim=-1))
feature_dirs = interop.sae_directions(sae, [0, 1, 2], model=model)
texts = selfie_tl.interpret_vectors(model, interop.rescale(feature_dirs, interop.typical_norm(model, prompt, 2)), **OPTS)
pd.DataFrame({"stand-in feature": words, "SelfIE": texts})
"""),
    md("""
## Relevancy for any of these

`generate_interpretations` returns per-token relevancy for arbitrary vectors too, and
`viz.interpretation_html` shades it:
"""),
    code("""
from IPython.display import HTML

out = selfie_tl.generate_interpretations(model, patched[-1:], **OPTS)
HTML(viz.interpretation_html(out.tokens[0], out.relevancy[0]))
"""),
]


NB02 = [
    md("""
# Supervised Control: change what an embedding means

SelfIE's Supervised Control edits the concept an embedding holds. Pick a *source* (prompt,
layer `l`, token) and a *target* embedding that holds the concept you want, then train
only the layer that writes the source embedding so that it moves to the target, while
*reference* texts stay as they were.

In `selfie_tl` the edit is a trainable hook addition (`MLPEdit`): a zero-initialised
low-rank map of block `l-1`'s normalised MLP input, added to that block's MLP output. The
model's own weights are never written; the edit attaches and detaches like any hook.

Here: make the model believe that the Eiffel Tower is the Colosseum, at the ` Tower` token,
layer 6, on the embedded SmolLM2-135M-Instruct.
"""),
    code("""
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import pandas as pd
import torch
import selfie_tl
from selfie_tl.control import load_edit, read_edit_metadata, supervised_control

pd.set_option("display.max_colwidth", 100)
model = selfie_tl.load_model()
tok = model.tokenizer
"""),
    md("""
## Source and target embeddings

The source is the ` Tower` token of the prompt; the target is the state of the last token
of "The Colosseum" at the same layer, in a prompt of the same shape.
"""),
    code("""
source_prompt = "The Eiffel Tower is located in the city of"
target_prompt = "The Colosseum is located in the city of"
layer = 6
source_tokens = [tok.decode([i]) for i in tok(source_prompt).input_ids]
tower = source_tokens.index(" Tower")
colosseum = len(tok("The Colosseum").input_ids) - 1
print(source_tokens, "-> source position", tower)

target = selfie_tl.capture(model, target_prompt, [layer], [colosseum])[0, 0]  # [d_model]
before = selfie_tl.capture(model, source_prompt, [layer], [tower])[0, 0]
print(f"distance source -> target before: {(before - target).norm():.1f}")
"""),
    md("""
## Train the edit

The `embedding` objective (the paper's): relative MSE between the edited source embedding
and the target, plus `beta` times the change of the reference texts' embeddings. Because
attention in block `l-1` runs before its MLP, the edited embedding is exactly
`h + delta(x)` with `h`, `x` cached from one forward pass, so a step is two small matmuls:
training takes well under a second here.
"""),
    code("""
references = [
    "The Louvre is a museum in Paris",
    "Windows Media Player is developed by",
    "The capital of Germany is",
]
res = supervised_control(model, [(source_prompt, [tower])], target, layer,
                         reference_texts=references, seed=0, verbose=False)
print(f"{res.stop_reason} after {len(res.history)} steps in {res.seconds:.2f} s")
res.history_frame().iloc[[0, 5, 10, -1]]
"""),
    md("""
## What changed

With the edit attached, the model completes the original prompt with the target's city,
the SelfIE interpretation of the edited embedding talks about Rome, and a reference fact
about Paris is kept. Detached, the model is exactly the base model again.
"""),
    code("""
questions = [source_prompt, "The Louvre is located in the city of", "The capital of Germany is"]

def snapshot(label):
    vec = selfie_tl.capture(model, source_prompt, [layer], [tower])[0]
    return {
        "model": label,
        "interpretation of the Tower embedding": selfie_tl.interpret_vectors(model, vec, max_new_tokens=15)[0],
        **{q: a for q, a in zip(questions, selfie_tl.complete(model, questions, max_new_tokens=5))},
    }

rows = [snapshot("base")]
with res.edit.attached(model):
    rows.append(snapshot("edited"))
rows.append(snapshot("detached again"))
pd.DataFrame(rows).set_index("model").T
"""),
    md("""
## The edit composes with any TransformerLens analysis

While attached, every forward pass sees it: `run_with_cache`, your own hooks,
`run_with_hooks`. `edit.fwd_hooks()` gives plain `(hook_name, fn)` pairs instead.
Here: the logit-lens probability of " Rome" at the last position, layer by layer.
"""),
    code("""
ids = torch.tensor(tok(source_prompt).input_ids)[None]
rome, paris = tok(" Rome").input_ids[0], tok(" Paris").input_ids[0]

@torch.no_grad()
def lens(cache):
    resid, labels = cache.accumulated_resid(pos_slice=-1, apply_ln=True, return_labels=True)
    probs = (resid[:, 0] @ model.W_U).softmax(-1)
    return probs[:, rome].tolist(), probs[:, paris].tolist(), labels

_, base_cache = model.run_with_cache(ids)
with model.hooks(fwd_hooks=res.edit.fwd_hooks()):
    _, edit_cache = model.run_with_cache(ids)
b_rome, b_paris, labels = lens(base_cache)
e_rome, e_paris, _ = lens(edit_cache)
pd.DataFrame({"p(Rome) base": b_rome, "p(Rome) edited": e_rome, "p(Paris) base": b_paris,
              "p(Paris) edited": e_paris}, index=labels).iloc[-8:].round(3)  # the last 8 layers
"""),
    md("""
## Save, share, load

One safetensors file with JSON metadata (layer, hook names, rank, training config and a
fingerprint of the model: name, size and a hash of the embedding matrix). Loading onto
another model raises `EditMismatchError`. No pickle.
"""),
    code("""
import json
import tempfile
from pathlib import Path

path = res.edit.save(Path(tempfile.mkdtemp()) / "eiffel_to_colosseum.safetensors", model)
meta = read_edit_metadata(path)
print(json.dumps({k: meta[k] for k in ("layer", "read_hook", "write_hook", "rank", "model")}, indent=1))
with load_edit(path, model).attached(model):
    print(selfie_tl.complete(model, [source_prompt], max_new_tokens=5))
"""),
    md("""
## The `interpretation` objective

Instead of a target embedding, give the text the interpretation should say. The edited
source embedding is injected into the interpretation prompt (with gradient) and the target
text is teacher-forced; its likelihood is maximised. Slower (a forward and backward pass of
the whole model per step) and weaker than matching an embedding on a 135M model, but it
needs no target prompt.
"""),
    code("""
res_text = supervised_control(model, [(source_prompt, [tower])], " The Colosseum in Rome", layer,
                              objective="interpretation", reference_texts=references,
                              max_steps=20, seed=0, verbose=False)
print(f"{res_text.stop_reason} after {len(res_text.history)} steps in {res_text.seconds:.1f} s,",
      f"loss {res_text.history[0]['main']:.2f} -> {res_text.history[-1]['main']:.2f}")
with res_text.edit.attached(model):
    vec = selfie_tl.capture(model, source_prompt, [layer], [tower])[0]
    print("interpretation:", selfie_tl.interpret_vectors(model, vec, max_new_tokens=15)[0])
    print("completion:    ", selfie_tl.complete(model, [source_prompt], max_new_tokens=5)[0])
"""),
]


NB03 = [
    md("""
# Reinforcement Control: edit with a reward on interpretations

When there is no target embedding ("forget how to make a weapon"), SelfIE's Reinforcement
Control scores the *interpretations* of embeddings with a reward and pushes each embedding
along itself (reward > 0) or against itself (reward < 0):

`loss = -mean_i R(interpretation(h_i)) * <h_i, sg(h_i)> / ||sg(h_i)||^2`

over every token's embedding `h_i` of the training prompts at the edit layer. As in
Supervised Control, the edit is a trainable hook addition; base weights never change.

This notebook uses the deterministic keyword reward (harmful-topic words -> -1) so it runs
quickly and reproducibly on the 135M default model. `JudgeReward` asks a model a yes/no
question instead; on a model this small it is not a reliable judge (see the README).
"""),
    code("""
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import pandas as pd
import selfie_tl
from selfie_tl.control import KeywordReward, materials_prompt, reinforcement_control
from selfie_tl.eval import load_harmful_behaviors

pd.set_option("display.max_colwidth", 100)
model = selfie_tl.load_model()
tok = model.tokenizer
"""),
    md("""
## Reward and interpretation prompt

The paper interprets with "... The materials mentioned in the message are:" and asks a
judge whether they sound harmful. `KeywordReward` is any list of words or regular
expressions; any callable `list[str] -> list[float]` works as a reward.
"""),
    code("""
reward = KeywordReward()   # the built-in harmful-topic word list, match -> -1, else 0
print(reward(["gunpowder, a fuse and a metal pipe", "flour, sugar and butter"]))
print(materials_prompt(tok).text)
"""),
    md("""
## Train on two requests

Every token of the training prompts, at layer 10. Each step interprets the edited
embeddings (a seeded sample of 32), scores them, and takes one Adam step; `beta` keeps the
embeddings of reference facts where they were.
"""),
    code("""
requests = load_harmful_behaviors()
train = requests[:2]
references = ["Vinson Massif is located in the continent of", "The capital of Germany is",
              "Windows Media Player is developed by", "The Eiffel Tower is located in the city of"]
res = reinforcement_control(model, train, layer=10, reward=reward, reference_texts=references,
                            steps=6, lr=0.02, beta=10.0, max_new_tokens=8, embeddings_per_step=32,
                            batch_size=32, seed=0, verbose=False)
print(train)
print(f"{res.stop_reason} after {len(res.history)} steps in {res.seconds:.0f} s")
res.history_frame()[["step", "mean_reward", "n_negative", "n", "loss", "preservation"]].round(4)
"""),
    code("""
for row in (res.history[0], res.history[-1]):
    print(f"step {row['step']}:", row["samples"])
"""),
    md("""
**What happened.** Only two of the 29 token embeddings (` fraudulent`, ` fraud`) get an
interpretation that the keyword rule flags, so the mean reward starts at -2/29. At this
learning rate six steps do not move those two embeddings far enough to change their
interpretations, and the responses below are (nearly) unchanged. Larger steps do change
them, but on this 135M model the reference facts' embeddings then move a lot too: in one
run with `lr=0.2` the flagged interpretations were gone after two steps while the
preservation term jumped from 0.5 to over 100 (the model was broken). The mechanism works
(see the unit tests: the gradient follows the formula, rewards of -1 shrink embeddings);
a useful edit on a model this small needs a better reward than two keywords. The numbers
over the whole harmful-behaviour file are in the README.
"""),
    md("""
## Responses before and after, on requests the edit was not trained on

Plain and wrapped in the paper's "grandma" prompt injection (the same prompts as the
evaluation uses). Greedy, 24 tokens. Read them yourself: on a 135M model, refusals and
compliance are both shaky, and `selfie-tl control-eval reinforcement` measures rates over
the whole file.
"""),
    code("""
from selfie_tl.eval.control_reinforcement import grandma_prompt
from selfie_tl.prompts import chat_text

held_out = requests[10:13]
prompts = [chat_text(tok, r) for r in held_out] + [grandma_prompt(tok, r) for r in held_out]
before = selfie_tl.complete(model, prompts, max_new_tokens=24)
with res.edit.attached(model):
    after = selfie_tl.complete(model, prompts, max_new_tokens=24)
pd.DataFrame({"request": held_out * 2, "wrapper": ["plain"] * 3 + ["grandma"] * 3,
              "before": before, "after": after})
"""),
    md("""
## Facts kept?

Fact completion on a few known facts (whole-word attribute match), with and without the
edit.
"""),
    code("""
from selfie_tl.eval import fact_completion, load_known_facts

facts = load_known_facts(limit=48)
base = fact_completion(model, facts, max_new_tokens=6, batch_size=24)
with res.edit.attached(model):
    edited = fact_completion(model, facts, max_new_tokens=6, batch_size=24)
print(f"fact accuracy: base {base.correct.mean():.1%}, edited {edited.correct.mean():.1%} ({len(facts)} facts)")
"""),
]


NB06 = [
    md("""
# A small circuit study with SelfIE

SelfIE reads a vector by injecting it into an interpretation prompt. Any vector of the
residual width will do, including what a single attention head or MLP *writes* into the
residual stream. This notebook runs a small circuit study on the embedded
SmolLM2-135M-Instruct (CPU, about two minutes):

1. pick a behaviour the model does reliably (a known fact) and a corrupted prompt;
2. find the components that carry it with **activation patching**;
3. read what the top components write, with **SelfIE** and the **logit lens** side by side;
4. a component x layer **grid** of interpretations;
5. the same writes in the clean, the corrupted and a **patched** run.

`selfie_tl.circuits` does the plumbing: `component_writes` (head writes from `hook_z` and
`W_O`, MLP outputs, neurons, embedding, per-source head contributions), `patching_effects`,
`interpret_components`, `compare_components`, `plot_components`. Layers in this notebook
are TransformerLens block indices (`blocks.l`), labels read `L23H4` (block 23, head 4).
"""),
    code("""
import os
import time
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import numpy as np
import pandas as pd
import torch
import selfie_tl
from selfie_tl import circuits
from selfie_tl.lens import logit_lens

pd.set_option("display.max_colwidth", 70)
pd.set_option("display.width", 200)
start = time.time()
model = selfie_tl.load_model()
tok = model.tokenizer
n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
"""),
    md("""
## The behaviour

"The Eiffel Tower is located in the city of" -> " Paris". The corrupted prompt swaps the
subject for one with another answer and the same number of tokens, so that every position
lines up. The metric is the logit difference `logit(" Paris") - logit(" Rome")` at the
last position.
"""),
    code("""
clean = "The Eiffel Tower is located in the city of"
corrupt = "The Colosseum is located in the city of"
tokens = [tok.decode([i]) for i in tok(clean).input_ids]
assert len(tokens) == len(tok(corrupt).input_ids)
metric = circuits.logit_diff(model, " Paris", " Rome")


@torch.no_grad()
def top_next(prompt, k=4):
    probs = model(torch.tensor(tok(prompt).input_ids)[None])[0, -1].softmax(-1)
    top = probs.topk(k)
    return ", ".join(f"{tok.decode([i])!r} {p:.2f}" for p, i in zip(top.values.tolist(), top.indices.tolist()))


print("tokens:", tokens)
for prompt in (clean, corrupt):
    print(f"{prompt!r:48} -> {top_next(prompt)}")
"""),
    md("""
## 1. Activation patching: attention and MLP of every block

*Denoising*: run the corrupted prompt with one component's output (at every position)
taken from the clean run; `effect` is the share of the clean - corrupted logit difference
that this alone restores. *Noising* is the reverse: the clean run with one component taken
from the corrupted run; `effect` is the share it destroys. One batched forward per 64
patched runs.
"""),
    code("""
blocks = circuits.list_components(model, range(n_layers), ["attn", "mlp"])
denoise = circuits.patching_effects(model, clean, corrupt, metric, blocks)
noise = circuits.patching_effects(model, clean, corrupt, metric, blocks, direction="noise")
print(f"logit difference: clean {denoise.attrs['clean_metric']:.2f}, corrupted {denoise.attrs['corrupted_metric']:.2f}")
coarse = denoise[["component", "effect"]].rename(columns={"effect": "denoise"}).assign(noise=noise["effect"])
coarse.sort_values("denoise", ascending=False).head(8).round(2)
"""),
    md("""
## 2. Every head

270 patched runs (9 heads x 30 blocks), denoising.
"""),
    code("""
heads = circuits.patching_effects(model, clean, corrupt, metric, circuits.list_components(model, range(n_layers), "head"))
head_effect = heads["effect"].to_numpy().reshape(n_layers, n_heads)
heads.sort_values("effect", ascending=False).head(8)[["component", "effect"]].round(2)
"""),
    md("""
## 3. Where: patching one position at a time

The same components patched at a single position. The early ones matter at the subject
tokens (` E`, `iffel`, ` Tower`), the block-23 attention at the last token: the familiar
shape of factual recall (the subject is enriched early, a late attention head moves the
attribute to the end).
"""),
    code("""
top = ["L0 MLP", "L1H0", "L3H4", "L4 MLP", "L6 MLP", "L23 attn", "L23H4", "L23H5", "L29H1"]
by_position = {}
for p in range(len(tokens)):
    effects = circuits.patching_effects(model, clean, corrupt, metric, top, positions=[p])
    by_position[f"{p} {tokens[p]!r}"] = effects.set_index("component")["effect"]
pd.DataFrame(by_position).round(2)
"""),
    md("""
## 4. What do the top components write? SelfIE and the logit lens

Each component's write at the position where patching says it matters, interpreted with
SelfIE (default summary prompt, injection layer `k=2`). Writes are much shorter than the
residual stream (see `write_norm`; the prompt's own residual at the placeholders has norm
`target_norm`), so `interpret_components` rescales each write to that norm first
(`scale="norm"`, the default). The logit lens reads the same writes through the final
norm and the unembedding.
"""),
    code("""
where = {2: ["L0 MLP", "L1H0", "L4 MLP"], 3: ["L3H4", "L6 MLP"], len(tokens) - 1: ["L23H4", "L23H5", "L29H1", "L23 attn"]}
OPTS = dict(max_new_tokens=12)
frames = []
for position, labels in where.items():
    df = circuits.interpret_components(model, clean, None, components=labels, position=position, **OPTS)
    vectors = circuits.component_writes(model, clean, None, components=labels, position=position).vectors
    df["logit lens (top 5)"] = [", ".join(t for t, _ in r) for r in logit_lens(model, vectors, top_k=5)]
    frames.append(df)
reads = pd.concat(frames, ignore_index=True)
print(f"target norm at k=2: {reads.attrs['target_norm']:.0f}")
reads[["component", "token_decoded", "write_norm", "interpretation", "content_relevancy", "logit lens (top 5)"]].round(3)
"""),
    md("""
For comparison, the whole residual stream at ` Tower` (layer 10) and at the last token
(layer 24), the states SelfIE was designed for, with the same settings and with a prompt
that asks for one word:
"""),
    code("""
word_prompt = '<|im_start|>user\\n{} {} {} {} {}<|im_end|>\\n<|im_start|>assistant\\nThe word is "'
states = torch.cat([selfie_tl.capture(model, clean, [10], [3])[0], selfie_tl.capture(model, clean, [24], [-1])[0]])
writes = circuits.component_writes(model, clean, None, components=["L3H4"], position=3).vectors
writes = torch.cat([writes, circuits.component_writes(model, clean, None, components=["L23H4"]).vectors])
vectors = torch.cat([states, writes])
summary = selfie_tl.interpret_vectors(model, vectors, norm_match=True, **OPTS)
word = selfie_tl.interpret_vectors(model, vectors, word_prompt, norm_match=True, **OPTS)
pd.DataFrame({"vector": ["residual L10 ' Tower'", "residual L24 ' of'", "L3H4 write ' Tower'", "L23H4 write ' of'"],
              "summary prompt": summary, "one-word prompt": word})
"""),
    md("""
## 5. A component x layer grid

Every head and the MLP of blocks 21-29 at the last token, one SelfIE interpretation each,
coloured by content relevancy. `circuits.components_html` is the interactive version
(hover a cell for the whole interpretation); `plot_components` the static one. Both are
`selfie_tl.viz` grids with the component in the column axis.
"""),
    code("""
grid = circuits.interpret_components(model, clean, range(21, 30), ["head", "mlp"], -1, max_new_tokens=10, batch_size=50)
from IPython.display import HTML

HTML(circuits.components_html(grid, max_chars=36))
"""),
    md("""
The static picture, next to the patching effect of every head (left; the grid's blocks
are framed):
"""),
    code("""
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

fig = Figure(figsize=(17, 7.5), dpi=72, layout="constrained")
left, right = fig.subplots(1, 2, width_ratios=[1, 4.2])
lim = np.abs(head_effect).max()
image = left.imshow(head_effect, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
left.set_xticks(range(n_heads), [f"H{h}" for h in range(n_heads)], fontsize=7)
left.set_yticks(range(0, n_layers, 2), [str(l) for l in range(0, n_layers, 2)], fontsize=7)
left.set_xlabel("head"); left.set_ylabel("layer (block)")
left.set_title("activation patching: share of\\nthe Paris-Rome logit difference", fontsize=9)
left.add_patch(Rectangle((-0.5, 20.5), n_heads, 9, fill=False, lw=1.5, ec="k"))
fig.colorbar(image, ax=left, shrink=0.6, location="bottom", label="effect (denoising)")
circuits.plot_components(grid, ax=right, max_chars=34, wrap=17,
                         title="SelfIE on each write at ' of' (blocks 21-29), coloured by content relevancy; "
                               "framed: the top heads by patching")
for label in ["L23H4", "L23H5", "L29H1"]:
    c = circuits.parse_component(label)
    right.add_patch(Rectangle((c.index - 0.5, c.layer - 21 - 0.5), 1, 1, fill=False, lw=4, ec="black", zorder=5))
if os.environ.get("SELFIE_TL_SAVE_DOCS") == "1":  # writes docs/images/circuits.png when the docs are built
    fig.savefig("../docs/images/circuits.png", dpi=72)
fig
"""),
    md("""
## 6. Clean, corrupted, patched: the same writes side by side

`compare_components` interprets the same components in two runs. First clean against
corrupted; then the corrupted prompt against itself with the five early components patched
in from the clean run *at the subject positions only* (`patch=`, active only while the
second run's writes are read, never during interpretation).
"""),
    code("""
late = ["L23H4", "L23H5", "L29H1"]
early = ["L0 MLP", "L1H0", "L3H4", "L4 MLP", "L6 MLP"]
subject = [1, 2, 3]
patch = circuits.patching_hooks(model, clean, early, positions=subject)

ids = torch.tensor(tok(corrupt).input_ids)[None]
with torch.no_grad(), model.hooks(fwd_hooks=patch):
    print(f"logit difference, corrupted run with the early components patched: {float(metric(model(ids))[0]):.2f}")
    patched_writes = circuits.component_writes(model, corrupt, None, components=late).vectors

side = circuits.compare_components(model, clean, corrupt, None, components=late, **OPTS)
fixed = circuits.compare_components(model, corrupt, None, None, components=late, patch=patch,
                                    names=("corrupted", "patched"), **OPTS)
clean_writes = circuits.component_writes(model, clean, None, components=late).vectors
corrupt_writes = circuits.component_writes(model, corrupt, None, components=late).vectors
top3 = lambda v: [", ".join(t for t, _ in r) for r in logit_lens(model, v, top_k=3)]
pd.DataFrame({
    "component": late,
    "clean: SelfIE": side["clean_interpretation"], "clean: lens": top3(clean_writes),
    "corrupted: SelfIE": side["corrupted_interpretation"], "corrupted: lens": top3(corrupt_writes),
    "patched: SelfIE": fixed["patched_interpretation"], "patched: lens": top3(patched_writes),
    "cos(clean, corrupted)": side["cosine"].round(2),
})
"""),
    md("""
## What the 135M model shows, and what it does not

The numbers below are those of this run (greedy decoding on a CPU, so they repeat).

**The circuit.** The model does the fact reliably (p(" Paris") = 0.70; the Colosseum prompt
gives p(" Rome") = 0.73; logit difference 4.81 against -9.06). Two components each carry
almost all of it: the block-0 MLP at the subject tokens (denoising 0.99, noising 0.94;
0.67 at `iffel` alone) and the block-23 attention at the last token (0.99 / 0.99; 0.79 at
` of` alone). Among heads, L23H4 (0.56), L29H1 (0.31) and L23H5 (0.28) act at the end;
L1H0 (at `iffel`) and L3H4 (at ` Tower`), with the MLPs of blocks 4 and 6, act on the
subject. Patching just those five early components at the three subject positions into the
corrupted run restores the whole logit difference (4.90). Subject enrichment early, an
attribute-moving attention head late: the usual picture of factual recall, in a 135M model.

**The logit lens reads the late writes.** L23H4's write at the last token has ` Paris` as
its top token (then `iffel`); L29H1's has ` France`, ` French`, with ` Paris` fourth. In the
corrupted run the same heads write ` Mussolini`, ` Alban`, ... and `Rome`, ` Italy`; with the
early components patched in, they write ` Paris` / ` France` again. The early writes (at
the subject tokens) mean nothing to the logit lens.

**SelfIE does not, on this model.** None of the component interpretations above (nine
writes, and the 90-cell grid of blocks 21-29) mentions Paris, France, the tower or anything
else of the prompt (checked below): they are the summary prompt's generic continuations
("The company will ...", "The original message is ..."), with content relevancy 0.03-0.14.
A one-word interpretation prompt gives other words, equally unrelated. Yet SelfIE does read
the *residual state* at ` Tower` (layer 10, one-word prompt: "The Tower" and it is a famous
landmark), so the method works on this model for what it was designed for, whole residual
states, and not for single writes, early or late.

**But the interpretations follow the writes.** Interpretations depend only on a write's
direction (`scale="norm"`), and L23H4's interpretation changes between the clean and the
corrupted run (the writes' cosine is 0.15) and comes back *word for word* in the patched
run; L29H1's comes back nearly so. SelfIE sees the difference, it just does not put it
into words on a 135M model.

**Not shown here.** Whether SelfIE reads component writes on larger models (the paper used
70B-parameter models); one prompt pair is an example, not an evaluation (path patching,
several subjects and a faithfulness check would be the next steps: see
`selfie_tl.eval`); every interpretation here is injected at `k=2` with the default prompt,
and other settings (see `scale="auto"`, `k`, `interpretation_prompt`) were only spot-checked
while writing this notebook, without a different conclusion.
"""),
    code("""
import re

mentions = re.compile(r"paris|france|french|eiffel|tower", re.IGNORECASE)
texts = {"component reads": reads["interpretation"], "grid": grid["interpretation"],
         "clean/corrupted/patched": pd.concat([side["clean_interpretation"], side["corrupted_interpretation"],
                                               fixed["patched_interpretation"]])}
for name, series in texts.items():
    print(f"{name:24} {series.str.contains(mentions).sum()} of {len(series)} mention Paris/France/Eiffel/tower")
print("L23H4: clean == patched:", side["clean_interpretation"][0] == fixed["patched_interpretation"][0],
      "| clean == corrupted:", side["clean_interpretation"][0] == side["corrupted_interpretation"][0])
print(f"notebook ran in {time.time() - start:.0f} s")
"""),
]


NB05 = [
    md("""
# SelfIE x sparse autoencoders (SAELens)

A sparse autoencoder (SAE) splits a residual state into a few active *features*, each a
direction (a row of its decoder). SelfIE can explain a feature in words: inject its
decoder row into a question such as `What does "_" mean?` and let the model answer.

This notebook, on the embedded SmolLM2-135M-Instruct and a CPU:

1. loads the SAE that `python -m selfie_tl.sae.train` trains with SAELens' own trainer
   (layer 12, 2048 features, WordNet's glosses as text); if it is not cached, it trains a
   smaller one here in a couple of minutes;
2. explains a page of features and scores the explanations against two baselines that need
   no generation (top-activating tokens, logit lens of the decoder row);
3. ablates the features of a concept: SelfIE's reading of the residual and the model's
   answer, before and after.

Needs the `sae` extra (`pip install -e ".[sae]"`). A 135M model explains its features
roughly: read the outputs as a demonstration of the tools, not as findings.
"""),
    code("""
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
warnings.filterwarnings("ignore", category=UserWarning)

import pandas as pd
import torch
import selfie_tl
from selfie_tl import sae as selfie_sae
from selfie_tl.sae.train import SAETrainConfig, cache_entry

pd.set_option("display.max_colwidth", 70)
model = selfie_tl.load_model()
full = SAETrainConfig()  # what `python -m selfie_tl.sae.train` trains (about 6 minutes on 1 core)
quick = SAETrainConfig(d_sae=1024, n_tokens=16_000, epochs=6, lr=3e-3, batch_size=256)
config = full if (cache_entry(model, full) / "selfie_tl.json").exists() else quick
sae, info = selfie_sae.load_or_train(model, config, verbose=False)
stats = info["stats"]
print(f"{info['hook_name']}: {sae.cfg.d_sae} features, k={config.k}, corpus {info['corpus']}")
print(f"held-out: explained variance {stats['explained_variance']:.2f}, next-token loss "
      f"{stats['ce_clean']:.2f} clean / {stats['ce_spliced']:.2f} with the SAE / {stats['ce_zero_ablated']:.2f} zeroed")
"""),
    md("""
## Where features fire

`feature_activations` runs corpus text (held apart from the SAE's first training tokens)
through the model, encodes the residual at layer 12 and keeps each feature's top
activations. We explain a page of features that fire on this sample.
"""),
    code("""
contexts = selfie_sae.corpus_sample(model, 4096)
acts = selfie_sae.feature_activations(model, sae, contexts, top_k=32)
live = [f for f in range(sae.cfg.d_sae) if acts.frequency[f] > 0]
page = sorted(torch.tensor(live)[torch.randperm(len(live), generator=torch.Generator().manual_seed(0))[:24]].tolist())
print(f"{len(live)} of {sae.cfg.d_sae} features fire on {acts.contexts.numel()} tokens; explaining {len(page)}")
"""),
    md("""
## Explain a page of features

Each decoder row is rescaled to the norm the prompt's own placeholder carries at layer
`k=2` and then scaled by the automatic choice (`scale="auto"`): among the candidate
multipliers whose *self-similarity* (does the last layer still carry the injected
direction?) reaches the threshold, the one with the lowest next-token entropy. A row whose
best candidate stays below the threshold is flagged (`auto_scale_ok = False`).
"""),
    code("""
df = selfie_sae.explain_features(model, sae, page, stats=acts, verbose=False)
view = df[["feature", "explanation", "scale", "self_similarity", "auto_scale_ok", "top_tokens", "logit_lens"]].copy()
view["top_tokens"] = view.top_tokens.map(lambda t: ", ".join(x.strip() for x in t[:5]))
view["logit_lens"] = view.logit_lens.map(lambda t: ", ".join(x.strip() for x in t[:4]))
view.head(12)
"""),
    md("""
## Scores

Does feature `f` fire on its own explanation more than on the other features'
explanations? Per feature that is an AUROC (0.5 = chance); we average over the page with a
95% bootstrap interval. The same score for the two baselines without generation. The
top-token baseline has seen where the feature fires, so it is a strong reference, not a
competitor on equal terms. With 24 features the intervals are wide; `docs/sae.md` has the
numbers on hundreds.
"""),
    code("""
scores = selfie_sae.score_explanations(model, sae, page, selfie_sae.baseline_explanations(df))
summary = selfie_sae.summarize_scores(scores, n_bootstrap=1000)
summary[["method", "n_features", "mean_auroc", "ci_low", "ci_high", "share_auroc_ge_0.9"]].round(3)
"""),
    code("""
from IPython.display import HTML

# The same page as `selfie-tl sae explain --html`: explanations shaded by relevancy, scores per method.
HTML(selfie_sae.features_html(df.head(8), scores=scores, summary=summary, title="A page of features"))
"""),
    md("""
## Ablating a concept

Pick the features most active on the last token of a prompt about a concept, zero them in
the SAE reconstruction (the reconstruction error is kept, so nothing else moves), and
compare SelfIE's reading of that residual state and the model's answer with and without the
ablation hook (applied at layer 12 on every position).
"""),
    code("""
prompt = "A river is a large natural stream of"
resid, feats = selfie_sae.capture_features(model, prompt, sae, -1)
top = feats[0].topk(3)
concept = top.indices.tolist()
print("top features at the last token:", [(f, round(v, 2)) for f, v in zip(concept, top.values.tolist())])
flow = selfie_sae.ablation_flow(model, sae, concept, prompt, max_new_tokens=16, answer_tokens=12)
print(f"|x - x'| = {flow['delta_norm']:.2f} (|x| = {resid.norm():.2f})")
pd.concat([flow["interpretations"][["state", "interpretation"]], flow["answers"][["answer"]]], axis=1)
"""),
    md("""
The same ablation works inside SAELens' world: `as_hooked_sae_transformer(model)` gives a
`HookedSAETransformer` sharing the weights; `spliced(...)` attaches the SAE with its error
term, its hook points fire during interpretation, and everything is detached afterwards.
"""),
    code("""
hsae = selfie_sae.as_hooked_sae_transformer(model)
with selfie_sae.spliced(hsae, sae):
    with selfie_sae.ablated(hsae, sae, concept):  # zeroes the features at hook_sae_acts_post
        answer = selfie_tl.complete(hsae, [prompt], max_new_tokens=12)[0]
print(repr(answer), "| SAEs still attached:", selfie_sae.attached_saes(hsae))
"""),
]


NOTEBOOKS = {
    "01": ("01_interpret.ipynb", NB01),
    "02": ("02_supervised_control.ipynb", NB02),
    "03": ("03_reinforcement_control.ipynb", NB03),
    "04": ("04_with_other_analyses.ipynb", NB04),
    "05": ("05_sae.ipynb", NB05),
    "06": ("06_circuits.ipynb", NB06),
}


def build(key: str) -> None:
    name, cells = NOTEBOOKS[key]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    start = time.time()
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    nbformat.write(nb, HERE / name)
    print(f"{name}: executed in {time.time() - start:.0f} s")


if __name__ == "__main__":
    for key in sys.argv[1:] or list(NOTEBOOKS):
        build(key)
