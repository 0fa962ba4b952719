"""The `boxer` entry point: help without torch, defaults in every help, one checkpoint flag, one AMP
spelling, one `--set` grammar."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from boxer.cli.help import DefaultsHelpFormatter
from boxer.cli.main import COMMANDS, build_parser, command_of, main
from boxer.errors import BoxerError


def _modules_after(argv: list[str]) -> set[str]:
    code = (
        "import sys\nfrom boxer.cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: boxer" in done.stdout
    return set(done.stdout.strip().splitlines()[-1].split())


def test_top_level_help_does_not_import_torch():
    assert "torch" not in _modules_after(["--help"])


@pytest.mark.parametrize(
    "command",
    COMMANDS,
)
def test_command_help_does_not_import_torch(command):
    assert "torch" not in _modules_after([command, "--help"])


def test_summaries_are_the_ones_the_modules_register():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    registered = {action.dest: action.help for action in sub._choices_actions}
    assert registered == {name: summary for name, (_, summary) in COMMANDS.items()}
    assert list(sub.choices) == list(COMMANDS)


def test_command_of_skips_top_level_options():
    assert command_of(["-v", "train", "--model", "x"]) == "train"
    assert command_of(["--help"]) is None


def test_unknown_command_lists_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["trian"])
    assert "invalid choice: 'trian'" in capsys.readouterr().err


def _flags_without_default(parser: argparse.ArgumentParser, path: list[str]) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                missing += _flags_without_default(child, [*path, name])
        elif action.option_strings and not isinstance(
            action, (argparse._HelpAction, argparse._VersionAction)
        ):
            text = DefaultsHelpFormatter("boxer")._get_help_string(action)
            switch = action.nargs == 0 or isinstance(action.default, bool)
            if not (switch or action.required or "default" in text.lower()):
                missing.append(f"boxer {' '.join(path)} {action.option_strings[0]}")
    return missing


@pytest.mark.parametrize(
    "command",
    list(dict.fromkeys(COMMANDS)),
)
def test_every_flag_shows_its_default(command):
    sub = next(a for a in build_parser([command])._actions if isinstance(a, argparse._SubParsersAction))
    assert _flags_without_default(sub.choices[command], [command]) == []


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "square input side for models (default: 224)" in out and "(default: 1)" in out


def test_eval_cls_takes_the_checkpoint_as_a_flag(capsys):
    assert main(["eval-cls", "--checkpoint", "/nonexistent/run"]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["eval-cls"]) == 1
    assert "--checkpoint CKPT is required" in capsys.readouterr().err
    assert main(["eval-cls", "/a", "--checkpoint", "/b"]) == 1
    assert "once" in capsys.readouterr().err


def test_amp_has_one_spelling_and_off_means_none():
    from boxer.classification.config import ClassifyConfig
    from boxer.engine.config import AMP_MODES, TrainConfig, resolve_config

    assert AMP_MODES == ("auto", "bf16", "fp16", "none")
    cfg = ClassifyConfig(amp="off")
    cfg.validate()
    assert cfg.amp == "none"
    assert TrainConfig(amp="off").validate().amp == "none"
    assert resolve_config(sets=["amp=off"]).amp == "none"
    for mode in AMP_MODES:
        ClassifyConfig(amp=mode).validate()
        assert resolve_config(sets=[f"amp={mode}"]).amp == mode
    with pytest.raises(BoxerError, match="amp"):
        ClassifyConfig(amp="half").validate()
    for command in ("train-cls", "bench"):
        parser = build_parser([command])
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
        amp = next((a for a in sub._actions if "--amp" in a.option_strings), None)
        if amp is not None:
            assert tuple(amp.choices) == AMP_MODES


def test_set_values_parse_the_same_for_detectors_and_classifiers():
    from boxer.cli.cls import parse_model_kwargs
    from boxer.engine.config import resolve_config

    items = ["model.a=1", "b=(3,)", "c=local", "d=true", "e=None", "f={'k': False}", "g=2e-4"]
    detector = resolve_config(
        sets=[i if i.startswith("model.") else f"model.{i}" for i in items]
    ).model_kwargs
    assert parse_model_kwargs(items) == detector == {
        "a": 1, "b": (3,), "c": "local", "d": True, "e": None, "f": {"k": False}, "g": 2e-4
    }  # fmt: skip
    for parse in (parse_model_kwargs, lambda items: resolve_config(sets=items)):
        with pytest.raises(BoxerError, match="--set: expected key=value"):
            parse(["novalue"])


def test_unknown_keys_suggest_the_closest_name():
    from boxer.classification.config import ClassifyConfig
    from boxer.engine.config import resolve_config

    with pytest.raises(BoxerError, match="did you mean 'epochs'"):
        ClassifyConfig.from_dict({"epochz": 3})
    with pytest.raises(BoxerError, match="did you mean 'epochs'"):
        resolve_config(sets=["epochz=3"])
