"""The fast paths of generation, one module each, each switchable off.

Every path here computes what the stock TransformerLens path computes - tested equal to it
on tiny GPT-2-like, Llama-like (grouped-query) and Gemma-2-like models, and token-identical
to plain Hugging Face on the default model - and is used only where nothing could see the
difference (see :func:`~selfie_tl.fast.row_compaction.any_hook_attached`). One is equal to
float rounding instead of bit for bit: :mod:`.prefix_sharing` computes relevancy's baseline
in other batch shapes (probabilities within 1e-5). :mod:`.screened_argmax` computes no logit
for most tokens, so it is equal in what it returns, the chosen token (ties included).

=============================  ===================================  ==============================
module                         what it removes                      switch
=============================  ===================================  ==============================
:mod:`.attention`              re-rotating and re-concatenating     ``generate(fast_attention=)``
                               the KV cache on every decode step
:mod:`.block`                  ``ln1`` computed three times         ``generate(shared_ln1=)``
                               per block
:mod:`.lean_decode`            hook points and per-layer            ``generate(lean_decode=)``
                               bookkeeping on unhooked decode steps
:mod:`.shared_prefill`         the prefill part common to every     ``generate_interpretations(
                               row, recomputed per row              shared_prefill=)``
:mod:`.row_compaction`         finished rows kept in the decode     ``generate(drop_finished=)``
                               batch
:mod:`.unembed`                the slow single CPU product over     ``fast.unembed.CHUNK_COLUMNS
                               the whole vocabulary                 = None``
:mod:`.prefix_sharing`         relevancy's teacher-forced positions ``baseline_probs(share_prefixes=
                               that rows share, recomputed per row  False)``, ``fast.prefix_sharing
                                                                    .ENABLED = False``
:mod:`.screened_argmax`        the float32 unembedding of every     ``generate(screened_argmax=
                               token in greedy steps whose logits   False)``, ``fast.screened_argmax
                               nothing else reads (CPU, bfloat16    .ENABLED = False``
                               screen + exact logits of the few
                               that could win)
=============================  ===================================  ==============================

They are installed only for the duration of a :func:`selfie_tl.generate` call (instance
attributes removed in ``finally``) or are plain functions; the model keeps nothing.
"""
