"""What a sweep computes: :class:`SweepJob`, its fingerprint and its work items.

A job names the model, what to interpret (a vectors file, or a prompts file crossed with
layers and tokens), the interpretation settings (a preset and/or
:class:`~selfie_tl.interpret.InterpretationConfig` fields) and the output directory. Its
*fingerprint* is a hash of everything that determines the results (the job's settings and
the content of its input file, not the output directory), so a re-run of the same job
resumes and a different job never writes into its directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfie_tl.errors import InvalidArgumentError

FORMAT = "selfie_tl.sweep/1"


class SweepConfigError(InvalidArgumentError):
    """A sweep job (config file or :class:`SweepJob`) is malformed; the message names the field."""


class OutputConflictError(InvalidArgumentError):
    """The output directory already holds the manifest or shards of another job."""


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def _sha(text: str | bytes, n: int = 16) -> str:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return hashlib.sha256(text).hexdigest()[:n]


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class SweepJob:
    """One resumable interpretation sweep.

    Attributes:
        output: output directory (shards, ``manifest.json``).
        model: ``None`` or ``"default"`` for SmolLM2-135M-Instruct, any name
            :func:`selfie_tl.load_model` accepts, or ``"tiny:llama"`` / ``"tiny:gpt2"``
            (:func:`selfie_tl.testing.tiny_model`, for tests).
        vectors: a ``.safetensors`` or ``.npy`` file of ``[n, d_model]`` vectors ...
        vectors_key: ... the tensor to read from a safetensors file (needed when it holds
            several).
        prompts: ... or a prompts file (``.txt``: one per line; ``.jsonl``: a string or
            ``{"prompt": ...}`` per line), crossed with ``layers`` x ``tokens``.
        layers, tokens: residual layers and token positions (negative from the end).
        preset: a preset name (``"paper"``, ``"best"``) that ``settings`` override.
        settings: :class:`~selfie_tl.interpret.InterpretationConfig` fields.
        shard_size: work items per Parquet shard (the unit of resuming and of work).
        device, dtype: where and how each worker loads the model (``None``: its default;
            on a Ray GPU worker ``"cuda"`` is used when ``device`` is ``None``).

    Relative paths in a config file are relative to that file.

    Example:
        >>> job = SweepJob(output="out", model="tiny:llama", vectors="v.npy", settings={"k": 1})
        >>> SweepJob.from_dict(job.to_dict()) == job
        True
    """

    output: str
    model: str | None = None
    vectors: str | None = None
    vectors_key: str | None = None
    prompts: str | None = None
    layers: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=lambda: [-1])
    preset: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    shard_size: int = 32
    device: str | None = None
    dtype: str = "float32"

    # ---- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON dict (the config file format)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, base_dir: str | Path | None = None) -> SweepJob:
        """Inverse of :meth:`to_dict`; relative paths are resolved against ``base_dir``.

        Raises:
            SweepConfigError: not a mapping, unknown or missing keys, wrong types.
        """
        if not isinstance(data, dict):
            raise SweepConfigError(f"a sweep config must be a JSON/YAML object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SweepConfigError(f"unknown sweep config keys {unknown}; allowed: {sorted(names)}")
        if "output" not in data:
            raise SweepConfigError("sweep config has no 'output' (the output directory)")
        data = dict(data)
        if base_dir is not None:
            for key in ("output", "vectors", "prompts"):
                value = data.get(key)
                if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
                    data[key] = str(Path(base_dir) / value)
        job = cls(**data)
        job.check(files=False)
        return job

    @classmethod
    def load(cls, path: str | Path) -> SweepJob:
        """Read a ``.json`` (or ``.yaml``/``.yml``, with PyYAML) config file.

        Raises:
            SweepConfigError: missing file, unparsable content, or a bad job.
        """
        path = Path(path)
        if not path.is_file():
            raise SweepConfigError(f"sweep config {path} does not exist")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except ImportError as exc:
            raise SweepConfigError(f"{path}: YAML configs need PyYAML (pip install pyyaml)") from exc
        except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
            raise SweepConfigError(f"{path} is not valid {path.suffix.lstrip('.') or 'JSON'}: {exc}") from exc
        return cls.from_dict(data, base_dir=path.parent).check()

    # ---- checks ------------------------------------------------------------------------
    def check(self, files: bool = True) -> SweepJob:
        """Check the fields that can be checked without the model (types, settings, and
        with ``files`` that the input file exists).

        Raises:
            SweepConfigError: the message names the field.
        """
        from selfie_tl.interpret import InterpretationConfig
        from selfie_tl.presets import get_preset

        def bad(msg: str) -> SweepConfigError:
            return SweepConfigError(f"sweep config: {msg}")

        if not isinstance(self.output, str) or not self.output:
            raise bad(f"'output' must be a directory path, got {self.output!r}")
        if self.model is not None and not isinstance(self.model, str):
            raise bad(f"'model' must be a model name or null, got {self.model!r}")
        if (self.vectors is None) == (self.prompts is None):
            raise bad(
                "give exactly one of 'vectors' (a .safetensors/.npy file) and 'prompts' (a .txt/.jsonl file)"
            )
        source = self.vectors if self.vectors is not None else self.prompts
        if not isinstance(source, str) or (files and not Path(source).expanduser().is_file()):
            raise bad(f"input file {source!r} does not exist")
        if self.vectors is not None and Path(self.vectors).suffix.lower() not in (".npy", ".safetensors"):
            raise bad(f"'vectors' must be a .npy or .safetensors file, got {self.vectors!r}")
        if self.prompts is not None:
            for key in ("layers", "tokens"):
                value = getattr(self, key)
                if not isinstance(value, list) or not value or not all(type(v) is int for v in value):
                    raise bad(f"'{key}' must be a non-empty list of integers with 'prompts', got {value!r}")
        if type(self.shard_size) is not int or self.shard_size < 1:
            raise bad(f"'shard_size' must be an integer >= 1, got {self.shard_size!r}")
        if not isinstance(self.settings, dict):
            raise bad(f"'settings' must be an object of InterpretationConfig fields, got {self.settings!r}")
        try:
            InterpretationConfig.from_dict(dict(self.settings))
            if self.preset is not None:
                get_preset(self.preset)
        except InvalidArgumentError as exc:
            raise bad(str(exc)) from exc
        if self.settings.get("do_sample") and self.settings.get("seed") is None:
            raise bad(
                "do_sample without a seed is not reproducible; set settings.seed (or use greedy decoding)"
            )
        return self

    # ---- identity ----------------------------------------------------------------------
    def settings_dict(self) -> dict[str, Any]:
        """What determines each result besides its inputs (model, preset, settings)."""
        return {"model": self.model or "default", "preset": self.preset, "settings": self.settings,
                "device": self.device, "dtype": self.dtype}  # fmt: skip

    def settings_hash(self) -> str:
        return _sha(_canonical(self.settings_dict()))

    def fingerprint(self) -> str:
        """Hash of everything that determines the results and the shard layout (input file
        content included, output directory excluded)."""
        data = self.to_dict()
        data.pop("output")
        for key in ("vectors", "prompts"):
            if data[key] is not None:
                data[key] = {"name": Path(data[key]).name, "sha256": file_sha256(data[key])}
        return _sha(_canonical({"format": FORMAT, **data}), 32)


# ---- inputs and items ------------------------------------------------------------------
def read_prompts(path: str | Path) -> list[str]:
    """Prompts of a ``.txt`` (one per non-empty line) or ``.jsonl`` file."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        prompts = [line for line in lines if line.strip()]
    else:
        prompts = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SweepConfigError(f"{path}:{number} is not JSON: {exc}") from exc
            if isinstance(value, dict):
                value = value.get("prompt")
            if not isinstance(value, str) or not value:
                raise SweepConfigError(
                    f'{path}:{number}: expected a string or {{"prompt": ...}}, got {line!r:.80}'
                )
            prompts.append(value)
    if not prompts:
        raise SweepConfigError(f"prompts file {path} holds no prompt")
    return prompts


def read_vectors(job: SweepJob):
    """The ``[n, d]`` float32 numpy array of a job's vectors file."""
    import numpy as np

    path = Path(job.vectors)
    try:
        if path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
        else:
            from safetensors.numpy import load_file

            tensors = load_file(str(path))
            if job.vectors_key is not None:
                if job.vectors_key not in tensors:
                    raise SweepConfigError(
                        f"{path} has no tensor {job.vectors_key!r}; it has {sorted(tensors)}"
                    )
                array = tensors[job.vectors_key]
            elif len(tensors) == 1:
                array = next(iter(tensors.values()))
            else:
                raise SweepConfigError(f"{path} holds tensors {sorted(tensors)}; name one with 'vectors_key'")
    except SweepConfigError:
        raise
    except Exception as exc:
        raise SweepConfigError(f"cannot read vectors file {path}: {exc}") from exc
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise SweepConfigError(
            f"vectors file {path} must hold a non-empty [n, d_model] array, got shape {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def work_items(job: SweepJob) -> list[dict[str, Any]]:
    """Every work item of the job, in order, with its stable id and its inputs.

    Vectors: one item per row. Prompts: prompt-major, then layer, then token.
    """
    fingerprint = job.fingerprint()
    items: list[dict[str, Any]] = []
    if job.vectors is not None:
        n = read_vectors(job).shape[0]
        source = Path(job.vectors).name
        for i in range(n):
            items.append({"source": source, "prompt_index": None, "prompt": None, "layer": None, "token": None,
                          "vector_index": i})  # fmt: skip
    else:
        prompts = read_prompts(job.prompts)
        source = Path(job.prompts).name
        for p, prompt in enumerate(prompts):
            for layer in job.layers:
                for token in job.tokens:
                    items.append({"source": source, "prompt_index": p, "prompt": prompt, "layer": layer,
                                  "token": token, "vector_index": None})  # fmt: skip
    for index, item in enumerate(items):
        item["item_index"] = index
        item["item_id"] = _sha(fingerprint + _canonical({k: v for k, v in item.items() if k != "source"}))
    return items


__all__ = [
    "FORMAT",
    "OutputConflictError",
    "SweepConfigError",
    "SweepJob",
    "read_prompts",
    "read_vectors",
    "work_items",
]
