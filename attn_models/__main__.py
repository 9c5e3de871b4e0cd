"""Command line for the model registry.

    python -m attn_models list [--task TASK]
    python -m attn_models push NAME --repo-id ORG/NAME [--revision BRANCH] [--private] [--message MSG]

``push`` needs write access to the Hub: log in once (`hf auth login`) or set HF_TOKEN.
HF_ENDPOINT points both commands' Hub traffic at another Hub-compatible server.
"""
from __future__ import annotations

import argparse
import sys

from attn_models import registry


def _source_of(spec: registry.ModelSpec) -> str:
    """What ``load(name)`` with source="auto" would read right now."""
    if registry.auto_source(spec) == "local":
        try:
            shown = spec.local_dir.relative_to(registry.WEIGHTS_ROOT.parent)
        except ValueError:  # a spec whose folder lives elsewhere
            shown = spec.local_dir
        return f"local ({shown}/)"
    rev = f"@{spec.revision}" if spec.revision and spec.repo_id == spec.published_repo_id else ""
    return f"hub ({spec.repo_id}{rev})"


def cmd_list(args: argparse.Namespace) -> int:
    if args.task is not None and args.task not in registry.TASKS:
        raise ValueError(f"unknown task {args.task!r}; expected one of {', '.join(registry.TASKS)}")
    rows = [("NAME", "TASK", "WEIGHTS", "DESCRIPTION")]
    for name in registry.list_models(args.task):
        spec = registry.get_spec(name)
        rows.append((name, spec.task, _source_of(spec), spec.description))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    if args.repo_id.count("/") != 1 or not all(args.repo_id.split("/")):
        raise ValueError(f"--repo-id must look like ORG/NAME, got {args.repo_id!r}")
    registry.get_spec(args.name)  # unknown name: ValueError before any network traffic
    try:
        info = registry.push(args.name, repo_id=args.repo_id, revision=args.revision, private=args.private,
                             commit_message=args.message)
    except ValueError:
        raise
    except Exception as e:  # network, auth (401/403), quota: report it without a traceback
        print(f"error: pushing {args.name} to {args.repo_id} failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"pushed {args.name} to {args.repo_id}" + (f" (branch {args.revision})" if args.revision else ""))
    print(f"commit: {getattr(info, 'oid', '')}  {getattr(info, 'commit_url', '')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attn_models", description="The attention-in-vision model registry.")
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="registered models: name, task, where `load` gets the weights, description")
    ls.add_argument("--task", help=f"only models of this task ({', '.join(registry.TASKS)})")
    ls.set_defaults(func=cmd_list)
    push = sub.add_parser(
        "push", help="publish bundled weights/<NAME>/ to the Hub (config, safetensors, model card, pictures)",
        description="Check weights/<NAME>/ with a strict load, then publish config.json, model.safetensors, its "
        "README.md (as the model card) and its pictures to the Hub.",
        epilog="Needs write access: log in once (`hf auth login`) or set HF_TOKEN. HF_ENDPOINT selects another "
        "Hub-compatible server.",
    )
    push.add_argument("name", metavar="NAME", help="a registered model name (see `list`)")
    push.add_argument("--repo-id", required=True, help="target Hub repo, ORG/NAME (created if missing)")
    push.add_argument("--revision", help="branch to commit to (created from main if missing; default: main)")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--message", help="commit message")
    push.set_defaults(func=cmd_push)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as e:  # user errors: say what is wrong, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
