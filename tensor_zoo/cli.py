"""The `tensor-zoo` console script: one argparse tree built from the commands' signatures.

A command is a plain function (the table in `command_table`). Its parameters are declared once,
in its signature, and documented once, in its `Args:` docstring; the parser is derived from them:

- a parameter before `*` is a positional argument (optional when it has a default);
- a keyword-only parameter is an option, `--name-with-dashes` (a trailing `_` is dropped, as in
  `all_`), required when it has no default; a `bool` is a flag (`--no-NAME` too when True by
  default); a `list[T]` takes one or more values (an option may be repeated);
- `*args` receives what follows `--` on the command line;
- the type converts the text: `int`, `float`, `str`, `Path`, a `Literal[...]` (the choices), or
  `Annotated[T, converter]` (e.g. `PositiveInt`); `X | Y | None` converts as `X`.

The docstring's first line is the command's line in `tensor-zoo --help`; the rest, and each
`Args:` entry, is `tensor-zoo COMMAND --help`. Defaults come from the signature alone: an option
not given is not passed, so the function's own default applies.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import logging
import sys
import types
import typing
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import docstring_parser

PACKAGE = Path(__file__).resolve().parent
PROG = "tensor-zoo"


def command_table() -> dict[str, Callable[..., Any]]:
    """Every `tensor-zoo` command, by name (imported here: their modules import this one)."""
    from tensor_zoo import bench, demo
    from tensor_zoo.experiments import report, sweep
    from tensor_zoo.zoo import commands

    return {
        "demo": demo.main,
        "bench": bench.main,
        "list": commands.list_command,
        "info": commands.info_command,
        "eval": commands.eval_command,
        "predict": commands.predict_command,
        "export": commands.export_command,
        "publish": commands.publish_command,
        "certify": commands.certify_command,
        "onnx": commands.onnx_command,
        "sweep": sweep.main,
        "report": report.main,
    }


class CommandLineError(ValueError):
    """Arguments a command's parser refused (exit status 2, like argparse)."""


class CommandParser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line (`main` prints them), not usage + error."""

    def error(self, message: str) -> NoReturn:
        raise CommandLineError(f"{message} (see `{self.prog} --help`)")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


PositiveInt = Annotated[int, positive_int]


def one_of(choices: Collection[str], what: str) -> Callable[[str], str]:
    """An argparse type: one of `choices` (read when called, so a table may grow), else an
    error that lists them and suggests the closest."""

    def convert(text: str) -> str:
        if text in choices:
            return text
        close = difflib.get_close_matches(text, list(choices), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise argparse.ArgumentTypeError(
            f"unknown {what} {text!r}{hint}: choose from {', '.join(choices)}"
        )

    convert.__name__ = what  # argparse names the type in some messages
    return convert


def build_parser(
    commands: dict[str, Callable[..., Any]], prog: str = PROG
) -> argparse.ArgumentParser:
    """The whole command line: a parser with one sub-parser per command."""
    parser = CommandParser(
        prog=prog,
        description="CP, TT and HT tensor-network classifiers: the zoo, from a shell.",
        epilog="--debug (anywhere on the line): show the traceback of a failure, not one line.",
        formatter_class=_formatter,
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="_command")
    for name, function in commands.items():
        add_command(subparsers, name, function)
    return parser


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.HelpFormatter(prog, max_help_position=24, width=100)


def add_command(subparsers: Any, name: str, function: Callable[..., Any]) -> None:
    """A sub-parser for `function`, from its signature and its docstring."""
    doc = docstring_parser.parse(inspect.getdoc(function) or "")
    if not doc.short_description:
        raise TypeError(f"{function.__qualname__} has no docstring: a command needs one")
    helps = {param.arg_name: " ".join((param.description or "").split()) for param in doc.params}
    parser = subparsers.add_parser(
        name,
        help=doc.short_description.rstrip("."),
        description="\n\n".join(filter(None, [doc.short_description, doc.long_description])),
        formatter_class=_formatter,
    )
    hints = typing.get_type_hints(function, include_extras=True)
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind is parameter.VAR_KEYWORD:
            raise TypeError(f"{function.__qualname__}: **{parameter.name} cannot be a command line")
        text = helps.get(parameter.name)
        if not text:
            raise TypeError(f"{function.__qualname__}: {parameter.name} has no `Args:` entry")
        if parameter.kind is parameter.VAR_POSITIONAL:
            parser.epilog = f"-- {parameter.name.upper()}...: {text}"
            continue
        if parameter.name not in hints:
            raise TypeError(f"{function.__qualname__}: {parameter.name} has no type hint")
        _add_parameter(parser, parameter, hints[parameter.name], text)
    parser.set_defaults(_function=function)


def _add_parameter(
    parser: argparse.ArgumentParser, parameter: inspect.Parameter, hint: Any, text: str
) -> None:
    """One argument of a sub-parser, from one parameter of the command's function."""
    converter, hint = _unwrap(hint)
    has_default = parameter.default is not parameter.empty
    kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": text}
    if typing.get_origin(hint) in (list, tuple):
        (hint, *_) = typing.get_args(hint)
        element_converter, hint = _unwrap(hint)
        converter = converter or element_converter
        kwargs["nargs"] = "+"
    if typing.get_origin(hint) is Literal:
        kwargs["choices"] = typing.get_args(hint)
        hint = type(kwargs["choices"][0])
    shown = parameter.default
    if isinstance(shown, (list, tuple)):
        shown = " ".join(map(str, shown)) or None
    if has_default and shown is not None and shown is not False:
        kwargs["help"] = f"{text.rstrip('.')} (default: {shown})."
    if parameter.kind is not parameter.KEYWORD_ONLY:
        if has_default:
            kwargs["nargs"] = "*" if kwargs.get("nargs") == "+" else "?"
        parser.add_argument(parameter.name, type=converter or hint, **kwargs)
        return
    flag = "--" + parameter.name.rstrip("_").replace("_", "-")
    if hint is bool:
        action = argparse.BooleanOptionalAction if parameter.default is True else "store_true"
        parser.add_argument(flag, dest=parameter.name, action=action, **kwargs)
        return
    if kwargs.get("nargs") == "+":
        kwargs["action"] = "extend"
    parser.add_argument(
        flag, dest=parameter.name, type=converter or hint, required=not has_default, **kwargs
    )


def _unwrap(hint: Any) -> tuple[Callable[[str], Any] | None, Any]:
    """(converter from `Annotated`, or None; the type without `Annotated`, `X | Y`: X)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # the first member converts
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    converter = None
    if typing.get_origin(hint) is Annotated:
        hint, *metadata = typing.get_args(hint)
        converter = next((item for item in metadata if callable(item)), None)
    return converter, hint


def call(function: Callable[..., Any], values: dict[str, Any], rest: Iterable[str]) -> Any:
    """Call a command's function with the parsed values (by name) and the arguments after --."""
    positional, keywords, rest = [], dict(values), list(rest)
    parameters = inspect.signature(function).parameters.values()
    for parameter in parameters:
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional.append(keywords.pop(parameter.name, parameter.default))
    if rest and not any(parameter.kind is parameter.VAR_POSITIONAL for parameter in parameters):
        raise CommandLineError(f"this command takes no arguments after --, got {rest}")
    return function(*positional, *rest, **keywords)


def main(
    argv: list[str] | None = None, commands: Iterable[str] | None = None, prog: str = PROG
) -> None:
    """Run `tensor-zoo COMMAND [ARGS...]`; `commands` and `prog`: a subset, for another entry.

    Any failure of a command ends in one line on stderr, `tensor-zoo COMMAND: message`, and
    exit status 1 (2 for arguments the parser refuses); `--debug` (anywhere before `--`) shows
    the traceback instead.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    split = args.index("--") if "--" in args else len(args)
    args, rest = args[:split], args[split + 1 :]
    debug = "--debug" in args
    args = [arg for arg in args if arg != "--debug"]
    table = command_table()
    if commands is not None:
        table = {name: table[name] for name in commands}
    parser = build_parser(table, prog)
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return
    if args[0] not in table:
        close = difflib.get_close_matches(args[0], list(table), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(
            f"{prog}: unknown command {args[0]!r}{hint}; the commands: {', '.join(table)} "
            f"(see `{prog} --help`).",
            file=sys.stderr,
        )
        sys.exit(2)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s: %(message)s"
    )
    name = args[0]
    try:
        parsed, unknown = parser.parse_known_args(args)
        if unknown:  # named by the command's parser, not the top one
            raise CommandLineError(
                f"unrecognized arguments: {' '.join(unknown)} (see `{prog} {name} --help`)"
            )
        namespace = vars(parsed)
        function = namespace.pop("_function")
        del namespace["_command"]
        call(function, namespace, rest)
    except KeyboardInterrupt:
        print(f"{prog} {name}: interrupted", file=sys.stderr)
        sys.exit(130)
    except CommandLineError as error:
        if debug:
            raise
        print(f"{prog} {name}: {error}", file=sys.stderr)
        sys.exit(2)
    except Exception as error:
        if debug:
            raise
        sys.exit(f"{prog} {name}: {one_line(error)}")


def one_line(error: BaseException) -> str:
    """An exception as one line: its message, with its type when that says something more.

    An error raised by tensor_zoo's own code already says what was wrong and what to do; any
    other exception (from a library, or a bug) gets its type name and a pointer to `--debug`.
    """
    message = " ".join(str(error).split()) or repr(error)
    if _raised_by_tensor_zoo(error) or isinstance(error, (FileNotFoundError, PermissionError)):
        return message
    return f"{type(error).__name__}: {message} (run with --debug for the traceback)"


def _raised_by_tensor_zoo(error: BaseException) -> bool:
    """Whether the innermost frame of the error's traceback is in the tensor_zoo package."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    if frame is None:
        return False
    return Path(frame.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE)


if __name__ == "__main__":
    main()
