"""Every ``basicsr ...`` command shown in README.md and docs/*.md exists with the flags it shows: each is read by the
real parser (``cli.build_parser``), never run. Commands in shell code blocks are parsed whole (with their values);
commands quoted inline in the text, which may show a command without its required flags, have their flags checked."""
import argparse
import glob
import re
import shlex
from os import path as osp
from typing import List, Tuple

import pytest
from helpers.runs import REPO_ROOT

from basicsr_nlattn import cli
from basicsr_nlattn.commands.bench import selected_mode

DOCS = [osp.join(REPO_ROOT, 'README.md')] + sorted(glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')))
INLINE = re.compile(r'`(basicsr [^`]*)`')


def _strip_comment(line: str) -> str:
    return re.split(r'\s#\s', line, maxsplit=1)[0].rstrip()


def shown_commands(text: str) -> Tuple[List[str], List[str]]:
    """(commands in shell code blocks, commands quoted inline), each as the text from ``basicsr`` on."""
    blocks, inline = [], []
    in_block, in_shell = False, False
    pending = ''
    for line in text.splitlines():
        if line.startswith('```'):
            in_block, in_shell = not in_block, line.strip() in ('```bash', '```sh')
            continue
        if in_shell:
            line = pending + _strip_comment(line)
            if line.endswith('\\'):
                pending = line[:-1] + ' '
                continue
            pending = ''
            match = re.search(r'(?:^|[\s;|&])(basicsr \S.*)$', line)
            if match:
                blocks.append(match.group(1))
        elif not in_block:
            inline += INLINE.findall(line)
    return blocks, [command for command in inline if not command.split()[1].endswith(':')]  # messages, not commands


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    [action] = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return action.choices


def _all_shown() -> List[Tuple[str, str, bool]]:
    shown = []
    for path in DOCS:
        with open(path, encoding='utf-8') as file:
            blocks, inline = shown_commands(file.read())
        name = osp.relpath(path, REPO_ROOT)
        shown += [(name, command, True) for command in blocks] + [(name, command, False) for command in inline]
    return shown


def test_the_docs_show_commands():
    shown = _all_shown()
    assert {osp.basename(name) for name, _, _ in shown} >= {'README.md', 'training.md', 'export.md', 'benchmarks.md'}
    assert len([command for _, command, whole in shown if whole]) >= 20


@pytest.mark.parametrize('document, command, whole', _all_shown())
def test_shown_command_and_flags_exist(document, command, whole, capsys):
    parser = cli.build_parser()
    tokens = shlex.split(command)[1:]
    if tokens in (['--help'], ['<command>', '--help']):
        return
    commands = _subparsers(parser)
    assert tokens and tokens[0] in commands, f'{document}: unknown command in `{command}`'
    subparser = commands[tokens[0]]
    flags = [token.split('=')[0] for token in tokens[1:] if re.match(r'-[a-z-]', token)]
    unknown = [flag for flag in flags if flag not in subparser._option_string_actions]
    assert not unknown, f'{document}: `{command}` shows flags that {tokens[0]} does not take: {unknown}'
    if whole:
        try:
            args = parser.parse_args(tokens)
        except SystemExit:
            pytest.fail(f'{document}: `{command}` does not parse: {capsys.readouterr().err.strip()}')
        if args.command == 'bench':
            selected_mode(args)  # a flag of another mode is an OptionError


def test_commands_are_found_in_shell_blocks_and_inline_only():
    text = (
        '```bash\nFOO=1 basicsr bench --network ENLCN \\\n    --scale 2   # a comment\n```\n```\nbasicsr layout\n```\n'
        'Run `basicsr infer -opt FILE` or see `basicsr train: error: x`.\n')
    assert shown_commands(text) == (['basicsr bench --network ENLCN      --scale 2'], ['basicsr infer -opt FILE'])
