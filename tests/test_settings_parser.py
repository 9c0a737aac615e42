"""textclf.settings.SettingsParser reads settings dataclasses as transformers' HfArgumentParser does
(the peer it stands in for in the model server, where importing transformers costs seconds)."""

import pytest
from transformers import HfArgumentParser

from serving.__main__ import ServerSettings
from serving.explain import ExplainSettings
from textclf.inference import InferenceSettings
from textclf.settings import SettingsParser
from textclf.train import TrainSettings

CLASSES = [InferenceSettings, ServerSettings, ExplainSettings]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--backend", "onnx-int8", "--max_length", "64", "--truncation", "head_tail", "--threads", "3"],
        ["--head-tokens", "10", "--max-batch-tokens", "512", "--pass_cost_tokens", "0"],
        ["--explain", "false", "--enable_model_repository"],
        ["--no_explain", "--enable-model-repository", "yes"],
        ["--explain", "--max_batch_delay_ms", "0.5", "--host", "127.0.0.1"],
    ],
)
def test_the_serving_flags_parse_as_hfargumentparser_parses_them(argv):
    assert SettingsParser(CLASSES).parse_args_into_dataclasses(argv) == tuple(
        HfArgumentParser(CLASSES).parse_args_into_dataclasses(argv)
    )


def test_training_settings_parse_the_same_too():
    argv = ["--epochs", "2", "--precision", "bf16", "--group_by_length", "false", "--learning_rate", "3e-5"]
    assert SettingsParser([TrainSettings]).parse_args_into_dataclasses(argv) == tuple(
        HfArgumentParser([TrainSettings]).parse_args_into_dataclasses(argv)
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--truncation", "tail"], "invalid choice"),
        (["--explain", "maybe"], "expected a boolean"),
        (["--threads", "two"], "invalid int value"),
    ],
)
def test_bad_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        SettingsParser(CLASSES).parse_args_into_dataclasses(argv)
    assert message in capsys.readouterr().err


def test_flags_of_a_parent_parser_come_back_as_a_namespace():
    import argparse

    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--http_port", type=int, default=8080)
    *settings, rest = SettingsParser(CLASSES, parents=[parent]).parse_args_into_dataclasses(["--http_port", "9"])
    assert rest.http_port == 9 and settings[0] == InferenceSettings()


def test_a_required_flag_and_a_repeated_list_flag_come_from_settings():
    import dataclasses

    from textclf.settings import REQUIRED, SettingsParser, setting

    @dataclasses.dataclass
    class Flags:
        url: str = setting(REQUIRED, "Where, 100% required.")
        item: list[str] = setting([], "One item a flag.", action="append")

    parser = SettingsParser([Flags], prog="x")
    (flags,) = parser.parse_args_into_dataclasses(["--url", "u", "--item", "a", "--item", "b"])
    assert (flags.url, flags.item) == ("u", ["a", "b"])
    assert parser.parse_args_into_dataclasses(["--url", "u"])[0].item == []
    assert "100% required" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args([])


def test_the_training_and_trial_command_lines_parse_as_hfargumentparser_parses_them():
    """python -m textclf.train and textclf.tune.trial read their flags with SettingsParser: the arguments the
    launchers write (every field, as str(value)) give what HfArgumentParser gave them before."""
    from textclf.tracking import TrackingSettings
    from textclf.train.__main__ import TrainPaths
    from textclf.train.launch import settings_arguments
    from textclf.tune.settings import TuneSettings
    from textclf.tune.trial import TrialPaths

    train_argv = [
        "--tokenized",
        "tok",
        "--output",
        "out",
        *settings_arguments(
            TrainSettings(epochs=2, precision="bf16", group_by_length=False, class_weighting="balanced"),
            TrackingSettings(wandb_project="p"),
        ),
    ]
    for classes, argv in (
        ((TrainPaths, TrainSettings, TrackingSettings), train_argv),
        (
            (TrialPaths, TrainSettings, TuneSettings),
            ["--tokenized", "tok", "--engine", "vertex", "--learning_rate", "3e-5", "--batch_size", "16"],
        ),
    ):
        assert SettingsParser(classes).parse_args_into_dataclasses(argv) == tuple(
            HfArgumentParser(classes).parse_args_into_dataclasses(argv)
        )
