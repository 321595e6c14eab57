"""selfie_tl: SelfIE (Self-Interpretation of Embeddings) for TransformerLens.

The data flow, one module per step::

    prompts      InterpretationPrompt: text with placeholder slots
    hooks        hook_name, capture, capture_rows, injection_hooks: read and write the residual stream
    generation   generate: KV-cached decode loop that keeps the model's hooks firing
    relevancy    which generated tokens came from the embedding
    interpret    interpret, interpret_vectors: the whole pipeline -> pandas DataFrame

Around it: ``selfie_tl.control`` (edits as trainable hook additions, Supervised and
Reinforcement Control), ``selfie_tl.eval`` (faithfulness evaluation and baselines),
``selfie_tl.viz`` (grids, relevancy shading, reports), ``selfie_tl.interop`` (logit lens,
patching, directions), ``selfie_tl.models`` (loading) and ``selfie-tl`` (the CLI).

Quick start::

    import selfie_tl
    model = selfie_tl.load_model()          # embedded SmolLM2-135M-Instruct
    df = selfie_tl.interpret(model, "What is the highest mountain in the world?",
                             selfie_tl.layer_token_pairs(range(0, 31, 3), [-1]))
"""

from selfie_tl import circuits as circuits  # SelfIE for circuit studies (docs/circuits.md)
from selfie_tl.errors import (
    ChecksumMismatchError,
    ContextLengthError,
    HookError,
    InvalidArgumentError,
    LayerOutOfRangeError,
    ModelLoadError,
    NumericalError,
    PositionOutOfRangeError,
    PromptError,
    SelfieError,
    UnknownModelError,
    VectorError,
)
from selfie_tl.generation import GenerationOutput, complete, generate
from selfie_tl.hooks import (
    capture,
    capture_rows,
    hook_name,
    injection_hook,
    injection_hooks,
    model_lock,
    vectors_from_cache,
)
from selfie_tl.interpret import (
    InterpretationBatch,
    InterpretationConfig,
    generate_interpretations,
    interpret,
    interpret_vectors,
    layer_token_pairs,
)
from selfie_tl.models import DEFAULT_MODEL_NAME, load_model
from selfie_tl.prompts import PLACEHOLDER, InterpretationPrompt, default_interpretation_prompt
from selfie_tl.relevancy import baseline_probs, relevancy_scores

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MODEL_NAME",
    "PLACEHOLDER",
    "ChecksumMismatchError",
    "ContextLengthError",
    "GenerationOutput",
    "HookError",
    "InterpretationBatch",
    "InterpretationConfig",
    "InterpretationPrompt",
    "InvalidArgumentError",
    "LayerOutOfRangeError",
    "ModelLoadError",
    "NumericalError",
    "PositionOutOfRangeError",
    "PromptError",
    "SelfieError",
    "UnknownModelError",
    "VectorError",
    "baseline_probs",
    "capture",
    "capture_rows",
    "complete",
    "default_interpretation_prompt",
    "generate",
    "generate_interpretations",
    "hook_name",
    "injection_hook",
    "injection_hooks",
    "interpret",
    "interpret_vectors",
    "layer_token_pairs",
    "load_model",
    "model_lock",
    "relevancy_scores",
    "vectors_from_cache",
]
