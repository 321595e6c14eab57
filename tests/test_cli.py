import argparse
import importlib
import json

import pandas as pd
import pytest

import selfie_tl
from selfie_tl import cli
from selfie_tl.errors import InvalidArgumentError
from selfie_tl.presets import get_preset
from selfie_tl.testing import tiny_model


@pytest.mark.parametrize(
    "spec, length, expected",
    [
        ("3", 31, [3]),
        ("0,5, 9", 31, [0, 5, 9]),
        ("0:31:10", 31, [0, 10, 20, 30]),
        ("-3:", 10, [7, 8, 9]),
        (":2", 10, [0, 1]),
        ("2:8:3", None, [2, 5]),
    ],
)
def test_parse_index_spec(spec, length, expected):
    assert cli.parse_index_spec(spec, length) == expected


@pytest.mark.parametrize("spec", ["a", "1:2:3:4", "1;2"])
def test_parse_index_spec_rejects(spec):
    with pytest.raises(InvalidArgumentError, match="bad index spec"):
        cli.parse_index_spec(spec, 10)


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("interpret", "demo"):
        assert command in out


def test_interpret_command_on_a_tiny_model(monkeypatch, tmp_path, capsys):
    model = tiny_model()
    monkeypatch.setattr("selfie_tl.models.load_model", lambda name=None, **kw: model)
    csv, js = tmp_path / "r.csv", tmp_path / "r.json"
    code = cli.main([
        "interpret", "The cat", "--layers", "0:4:3", "--tokens", "-2:", "--k", "1",
        "--max-new-tokens", "3", "--csv", str(csv), "--json", str(js), "-q",
        "--interpretation-prompt", "Q: {}{}\\nA:",
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "layer" in out and "interpretation" in out
    df = pd.read_csv(csv)
    assert list(zip(df.layer, df.token)) == [(0, 5), (0, 6), (3, 5), (3, 6)]
    data = json.loads(js.read_text())
    assert data["meta"]["settings"]["k"] == 1 and len(data["rows"]) == 4
    side = json.loads((tmp_path / "r.csv.meta.json").read_text())
    assert side == data["meta"]
    assert side["model_name"] == "tiny-llama" and side["version"] == selfie_tl.__version__
    assert side["command"].startswith("selfie-tl interpret 'The cat' --layers 0:4:3")
    assert side["date"][:4].isdigit() and side["preset"] is None and side["settings"]["max_new_tokens"] == 3


def test_bad_input_exits_with_a_message(monkeypatch, capsys):
    monkeypatch.setattr("selfie_tl.models.load_model", lambda name=None, **kw: tiny_model())
    assert cli.main(["interpret", "ab", "--layers", "0", "--tokens", "0", "--k", "9", "-q"]) == 2
    assert "injection layer k 9 is out of range" in capsys.readouterr().err


def _no_model(*args, **kwargs):
    raise AssertionError("the model must not be loaded")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--html", "{missing}/r.html"], "--html {missing}/r.html: folder {missing} does not exist"),
        (["--csv", "{missing}/r.csv"], "--csv {missing}/r.csv: folder {missing} does not exist"),
        (["--json", "{tmp}"], "--json {tmp} is a directory"),
        (["--adapter", "{missing}/a.pt"], "--adapter {missing}/a.pt: no such file"),
    ],
)
@pytest.mark.parametrize("command", [["interpret", "Hello"], ["demo"]])
def test_bad_output_path_fails_before_loading_the_model(
    monkeypatch, capsys, tmp_path, command, flags, message
):
    # a folder that surely does not exist (a fixed /nonexistent can be created by other tests run as root)
    where = {"missing": tmp_path / "missing", "tmp": tmp_path}
    monkeypatch.setattr("selfie_tl.models.load_model", _no_model)
    assert cli.main([*command, *(f.format(**where) for f in flags), "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("selfie-tl: error: ") and message.format(**where) in captured.err
    assert not (tmp_path / "missing").exists()


def _help_actions(parser, path=("selfie-tl",)):
    """(command path, action) for every action of ``parser`` and its subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _help_actions(sub, (*path, name))
        else:
            yield path, action


def test_every_option_has_help():
    missing = [
        f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        for path, action in _help_actions(cli.build_parser())
        if not isinstance(action, argparse._HelpAction)
        and not (action.help or "").strip()
    ]
    assert missing == []


def _help_text(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices[command].format_help().split())


def test_interpret_help_shows_every_default():
    from selfie_tl.interpret import InterpretationConfig

    cfg = InterpretationConfig()
    text = _help_text("interpret")
    for expected in [
        "(default: 0:31:3)", "(default: -6:)", f"injection layer (default: {cfg.k})",
        f"(default: {cfg.max_new_tokens})", f"(default: {cfg.batch_size})", f"(default: {cfg.scale})",
        f"0 = off (default: {cfg.no_repeat_ngram_size})", f"1 = off (default: {cfg.repetition_penalty:g})",
        f"k+N-1 (default: {cfg.inject_layers})", "the paper recipe", "embedded SmolLM2-135M-Instruct",
    ]:  # fmt: skip
        assert expected in text
    # no default of the CLI's own: the library's defaults are the only ones
    args = cli.build_parser().parse_args(["interpret", "x"])
    assert cli.config_overrides(args) == {} and args.preset is None


def test_demo_help_shows_the_preset_defaults():
    text = _help_text("demo")
    best = get_preset("best").config()
    for expected in ["(default: 3:28:3)", "(default: :, every token)", "default: best)", "(default: 16)",
                     "(default: 15)", f"(default: {best.no_repeat_ngram_size} with preset best)"]:  # fmt: skip
        assert expected in text


def _record_interpret(monkeypatch):
    """Replace load_model and interpret; return the list of interpret's keyword arguments."""
    interpret_module = importlib.import_module(
        "selfie_tl.interpret"
    )  # the package's attribute is the function
    calls = []
    real = interpret_module.interpret

    def fake(model, prompt, pairs, interpretation_prompt=None, **kwargs):
        calls.append(kwargs)
        return real(model, prompt, pairs, interpretation_prompt, **kwargs)

    model = tiny_model()
    monkeypatch.setattr("selfie_tl.models.load_model", lambda name=None, **kw: model)
    monkeypatch.setattr(interpret_module, "interpret", fake)
    return calls


def test_only_given_flags_reach_interpret(monkeypatch):
    calls = _record_interpret(monkeypatch)
    base = ["interpret", "ab", "--layers", "1", "--tokens", "-1", "-q"]
    assert cli.main([*base, "--max-new-tokens", "2"]) == 0
    assert calls[-1] == {"preset": None, "adapter": None, "verbose": False, "max_new_tokens": 2}
    flags = ["--preset", "best", "--no-repeat-ngram-size", "0", "--scale", "auto", "--norm-match",
             "--repetition-penalty", "1.3", "--inject-layers", "2", "--k", "1", "--batch-size", "3",
             "--no-relevancy", "--max-new-tokens", "2"]  # fmt: skip
    assert cli.main([*base, *flags]) == 0
    assert calls[-1] == {
        "preset": "best", "adapter": None, "verbose": False, "k": 1, "max_new_tokens": 2, "batch_size": 3,
        "relevancy": False, "scale": "auto", "norm_match": True, "no_repeat_ngram_size": 0,
        "repetition_penalty": 1.3, "inject_layers": 2,
    }  # fmt: skip


def test_preset_settings_apply_unless_overridden(monkeypatch, tmp_path):
    _record_interpret(monkeypatch)
    out = tmp_path / "r.json"
    base = [
        "interpret",
        "ab",
        "--layers",
        "1",
        "--tokens",
        "-1",
        "--max-new-tokens",
        "2",
        "-q",
        "--json",
        str(out),
    ]
    base += ["--k", "1"]  # the tiny model has 3 layers; best's k is chosen for the default model
    assert cli.main([*base, "--preset", "best"]) == 0
    meta = json.loads(out.read_text())["meta"]
    assert meta["preset"] == "best" and meta["settings"]["k"] == 1
    assert meta["settings"]["repetition_penalty"] == get_preset("best").config().repetition_penalty != 1.0
    assert cli.main([*base, "--preset", "best", "--repetition-penalty", "1.0"]) == 0
    assert json.loads(out.read_text())["meta"]["settings"]["repetition_penalty"] == 1.0


def test_demo_prints_the_most_relevant_cells_first(monkeypatch, capsys):
    calls = _record_interpret(monkeypatch)
    assert (
        cli.main(["demo", "--k", "1", "--layers", "0:4:3", "--max-new-tokens", "3", "--top", "4", "--width", "80", "-q"])
        == 0
    )
    assert calls[-1]["preset"] == "best" and calls[-1]["max_new_tokens"] == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"prompt: {cli.DEMO_PROMPT!r}"
    assert lines[1].startswith("  ") and "preset best" in lines[1]
    assert lines[2].startswith("the 4 most relevant of ")
    rows = lines[6:10]
    scores = [float(r[23:32]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(len(line) <= 80 for line in lines)
    assert lines[-1] == "for the full layer x token grid: selfie-tl demo --html report.html"


def test_demo_writes_a_report_with_metadata(monkeypatch, tmp_path, capsys):
    _record_interpret(monkeypatch)
    out = tmp_path / "report.html"
    assert (
        cli.main(
            ["demo", "--k", "1", "--layers", "1", "--tokens", "-2:", "--max-new-tokens", "2", "--html", str(out), "-q"]
        )
        == 0
    )
    page = out.read_text()
    assert "selfie-tl demo --k 1 --layers 1 --tokens -2: --max-new-tokens 2 --html" in page
    assert selfie_tl.__version__ in page and "tiny-llama" in page
    assert capsys.readouterr().out.splitlines()[-1] == f"wrote {out}"


def test_json_rows_are_plain_json(monkeypatch, tmp_path):
    monkeypatch.setattr("selfie_tl.models.load_model", lambda name=None, **kw: tiny_model())
    out = tmp_path / "r.json"
    assert cli.main(["interpret", "ab", "--layers", "1", "--tokens", "0", "--max-new-tokens", "2",
                     "--no-relevancy", "--json", str(out), "-q"]) == 0  # fmt: skip
    text = out.read_text()
    assert "NaN" not in text
    row = json.loads(text)["rows"][0]
    assert row["content_relevancy"] is None and row["layer"] == 1


def test_scale_flag_parses_numbers_and_auto(capsys):
    parser = cli.build_parser()
    assert parser.parse_args(["interpret", "x", "--scale", "auto"]).scale == "auto"
    assert parser.parse_args(["interpret", "x", "--scale", "2.5"]).scale == 2.5
    with pytest.raises(SystemExit):
        parser.parse_args(["interpret", "x", "--scale", "big"])
    assert "expected a number or 'auto'" in capsys.readouterr().err
