"""mkdocs hooks: the CLI reference from the parser, the experiments from their files, and the
repository's results in the site.

`<!-- cli-reference -->` in a page becomes every command's `--help`; `<!-- experiments -->`
becomes one section per `experiments/*.toml` (title, kind, presets, where its results are).
The committed results (`results/`, `benchmarks/results/`, `examples/`) are added to the site
under the same paths, so a page's link `../results/...` (right on GitHub) is rewritten to the
site's copy and checked by `mkdocs build --strict` like any other link.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
SHARED = ("results", "benchmarks/results", "examples")
LINK_UP = re.compile(r"\]\(\.\./(" + "|".join(re.escape(p) for p in SHARED) + r")/")


def on_files(files, config):
    for folder in SHARED:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix != ".py":
                relative = path.relative_to(ROOT).as_posix()
                files.append(File(relative, str(ROOT), config["site_dir"], False))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri.count("/") == 0:  # a page of docs/: its links up leave docs/
        markdown = LINK_UP.sub(r"](\1/", markdown)
    if "<!-- cli-reference -->" in markdown:
        markdown = markdown.replace("<!-- cli-reference -->", cli_reference())
    if "<!-- experiments -->" in markdown:
        markdown = markdown.replace("<!-- experiments -->", experiments_overview())
    return markdown


def cli_reference() -> str:
    """Every subcommand's help, as argparse prints it, under its own heading."""
    import argparse

    from rewritelab.cli.main import build_parser

    parser = build_parser()
    sections = ["## rewritelab\n\n```text\n" + parser.format_help() + "```\n"]
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in commands.choices.items():
        sections.append(f"## rewritelab {name}\n\n```text\n{command.format_help()}```\n")
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for inner in nested:
            for sub, subparser in inner.choices.items():
                sections.append(
                    f"### rewritelab {name} {sub}\n\n```text\n{subparser.format_help()}```\n"
                )
    return "\n".join(sections)


def experiments_overview() -> str:
    """One section per experiment file: its title, kind, presets and committed results."""
    sections = []
    for path in sorted((ROOT / "experiments").glob("e*.toml")):
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        name = data["name"]
        presets = ", ".join(f"`{preset}`" for preset in data.get("presets", {}))
        results = sorted(p.name for p in (ROOT / "results" / "cpu").glob(f"{name}*") if p.is_dir())
        links = ", ".join(_result_link(folder) for folder in results) or "none committed yet"
        title = data.get("title", name)
        heading = title if title.lower().startswith(name) else f"{name.upper()}: {title}"
        sections.append(
            f"## {heading}\n\n"
            f"- kind: `{data.get('kind', 'generic')}`\n"
            f"- presets: {presets}\n"
            f"- run it: `rewritelab reproduce {name} --preset cpu`\n"
            f"- committed CPU results: {links}\n"
        )
    return "\n".join(sections)


def _result_link(folder: str) -> str:
    directory = ROOT / "results" / "cpu" / folder
    page = next((n for n in ("NOTES.md", "report.md") if (directory / n).exists()), None)
    return f"[{folder}](results/cpu/{folder}/{page})" if page else f"`{folder}`"
