"""The `tensor-zoo` command line: built from signatures and docstrings, filters of `list`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import pytest

import tensor_zoo
from tensor_zoo.cli import (
    CommandLineError,
    PositiveInt,
    build_parser,
    call,
    command_table,
    main,
    one_of,
)
from tensor_zoo.zoo.registry import ModelName

Tag = Annotated[str, one_of(("a", "b"), "tag")]


def toy(
    source: str,
    targets: list[Path],
    label: str | None = None,
    *passed_on: str,
    count: PositiveInt = 2,
    mode: Literal["fast", "slow"] = "fast",
    tags: tuple[Tag, ...] = (),
    dry_run: bool = False,
    check: bool = True,
    token: str,
) -> dict:
    """Everything a command's signature can say.

    Args:
        source: a positional argument.
        targets: one or more paths.
        label: an optional positional argument.
        passed_on: what follows --.
        count: a positive number.
        mode: one of two.
        tags: repeatable, each checked.
        dry_run: a flag.
        check: a flag that is on by default.
        token: a required option.
    """
    return {
        "source": source,
        "targets": targets,
        "label": label,
        "passed_on": passed_on,
        "count": count,
        "mode": mode,
        "tags": tags,
        "dry_run": dry_run,
        "check": check,
        "token": token,
    }


def run_toy(*args: str) -> dict:
    argv = list(args)
    split = argv.index("--") if "--" in argv else len(argv)
    namespace = vars(build_parser({"toy": toy}).parse_args(["toy", *argv[:split]]))
    function = namespace.pop("_function")
    del namespace["_command"]
    return call(function, namespace, argv[split + 1 :])


def test_a_signature_becomes_positionals_options_flags_and_defaults():
    got = run_toy("src", "a", "b", "--token", "t", "--tags", "a", "--tags", "b", "a")
    assert got == {
        "source": "src",
        "targets": [Path("a"), Path("b")],
        "label": None,
        "passed_on": (),
        "count": 2,
        "mode": "fast",
        "tags": ["a", "b", "a"],
        "dry_run": False,
        "check": True,
        "token": "t",
    }
    got = run_toy(
        "src",
        "a",
        "--count",
        "5",
        "--mode",
        "slow",
        "--dry-run",
        "--no-check",
        "--token",
        "t",
        "--",
        "--x=1",
        "y",
    )
    assert got["count"] == 5 and got["mode"] == "slow" and got["dry_run"] and not got["check"]
    assert got["targets"] == [Path("a")] and got["passed_on"] == ("--x=1", "y")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["src", "a"], "the following arguments are required: --token"),
        (["src", "a", "--token", "t", "--count", "0"], "--count: must be at least 1, got 0"),
        (["src", "a", "--token", "t", "--mode", "medium"], "invalid choice: 'medium'"),
        (["src", "a", "--token", "t", "--tags", "c"], "unknown tag 'c': choose from a, b"),
        (["src"], "the following arguments are required: targets"),
    ],
)
def test_refused_arguments_are_one_error_naming_the_option(args, message):
    with pytest.raises(CommandLineError, match=message):
        run_toy(*args)


def test_help_documents_every_option_from_the_docstring(capsys):
    with pytest.raises(SystemExit):
        build_parser({"toy": toy}).parse_args(["toy", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.count("Everything a command's signature can say") == 1
    assert "--count COUNT a positive number (default: 2)." in text
    assert "--no-check a flag that is on by default (default: True)." in text
    assert "-- PASSED_ON...: what follows --." in text


def test_a_parameter_without_an_args_entry_is_refused_when_the_parser_is_built():
    def undocumented(name: str, *, limit: int = 3) -> None:
        """One line.

        Args:
            name: documented.
        """

    with pytest.raises(TypeError, match="limit has no `Args:` entry"):
        build_parser({"x": undocumented})


def test_every_command_documents_itself_and_every_option():
    parser = build_parser(command_table())
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert list(commands.choices) == list(command_table())
    for name, subparser in commands.choices.items():
        assert subparser.description, name
        for action in subparser._actions:
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
    listed = subprocess.run(
        [sys.executable, "-m", "tensor_zoo.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert [words[0] for words in lines if words and words[0] in command_table()] == list(
        command_table()
    )


def test_the_command_line_starts_without_training_or_hub_code():
    code = (
        "import sys\nfrom tensor_zoo.cli import build_parser, command_table\n"
        "build_parser(command_table())\n"
        "print(sorted(m for m in ('lightning', 'wandb', 'huggingface_hub', 'matplotlib') "
        "if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.fixture
def packaged(monkeypatch, capsys):
    """`tensor-zoo ARGS` in this process, on the packaged index: (exit status, stdout, stderr)."""
    monkeypatch.delenv("TENSOR_ZOO_INDEX", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exit_:
            code = exit_.code
        out, err = capsys.readouterr()
        return code, out, err

    return run


def listed(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()]


def test_list_filters_by_architecture_and_dataset(packaged):
    code, out, _ = packaged("list", "--arch", "tt", "--dataset", "mnist")
    published = tensor_zoo.list_models("tt-mnist-*")
    assert code == 0 and listed(out) == published and len(published) >= 2
    _, out, _ = packaged("list", "--dataset", "fashion-mnist", "--all")
    names = listed(out)
    assert set(tensor_zoo.list_models("*-fashion-mnist-*")) < set(names)
    assert all(ModelName.parse(name).dataset == "fashion-mnist" for name in names)
    assert {name.split("-")[0] for name in names} == {"cp", "tt", "ht"}
    code, out, err = packaged("list", "--arch", "ht", "--dataset", "digits")
    assert code == 0 and out == "" and "No model matches (--all also lists" in err


def test_list_sorts_by_accuracy_or_parameters(packaged):
    _, out, _ = packaged("list", "--sort", "accuracy")
    names = listed(out)
    accuracies = [tensor_zoo.model_info(name)["metrics"]["test/acc"] for name in names]
    assert sorted(names) == sorted(tensor_zoo.list_models())
    assert accuracies == sorted(accuracies, reverse=True)
    _, out, _ = packaged("list", "cp-*", "--all", "--sort", "accuracy")
    names = listed(out)
    pretrained = [tensor_zoo.model_info(name)["pretrained"] for name in names]
    assert pretrained == sorted(pretrained, reverse=True) and not pretrained[-1]
    _, out, _ = packaged("list", "--dataset", "mnist", "--sort", "params")
    counts = [int(line.split()[1].replace(",", "")) for line in out.splitlines()]
    assert counts == sorted(counts) and len(counts) == len(tensor_zoo.list_models("??-mnist-*"))


def test_list_lines_up_its_columns_for_the_longest_names(packaged):
    _, out, _ = packaged("list", "--all")
    lines = out.splitlines()
    assert max(len(line.split()[0]) for line in lines) > 22  # e.g. tt-fashion-mnist-p4m64-r16
    assert len({line.index(" params") for line in lines}) == 1


def test_list_refuses_unknown_choices_and_arguments_after_a_double_dash(packaged):
    code, _, err = packaged("list", "--dataset", "mnst")
    assert code == 2 and err.count("\n") == 1
    assert "unknown dataset 'mnst' (did you mean 'mnist'?): choose from" in err
    code, _, err = packaged("list", "--arch", "rnn")
    assert code == 2 and "choose from cp, tt, ht" in err
    code, _, err = packaged("list", "--", "--arch", "tt")
    assert code == 2 and "takes no arguments after --" in err
