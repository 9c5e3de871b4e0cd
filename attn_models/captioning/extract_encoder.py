"""Take the frozen encoder out of a trained captioning model, as stage 2's ``--encoder-from`` reads it.

A decoder run freezes an encoder exported by ``attn_models.captioning.pretrain``; when that run directory is gone,
the encoder still lives inside every decoder trained on it (its ``encoder.*`` tensors, unchanged by stage 2). This
writes them to ``OUT/encoder.safetensors``, so that a new decoder (another seed, other flags) trains on exactly the
encoder of the shipped models:

    python -m attn_models.captioning.extract_encoder weights/sat-hard-fashion-scenes runs/sat-encoder-shipped

The file's metadata names the model file it came from and that file's sha256.
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from attn_models.captioning.pretrain import ENCODER_FILE

PREFIX = "encoder."


def extract_encoder(model_dir: str | Path, out_dir: str | Path) -> Path:
    """``model_dir/model.safetensors``'s encoder tensors (prefix stripped) -> ``out_dir/encoder.safetensors``."""
    from safetensors.torch import load_file, save_file

    source = Path(model_dir) / "model.safetensors"
    if not source.is_file():
        raise SystemExit(f"{model_dir}: no model.safetensors (a captioning weights folder or a decoder export)")
    state = load_file(str(source))
    encoder = {k.removeprefix(PREFIX): v.contiguous() for k, v in state.items() if k.startswith(PREFIX)}
    if not encoder:
        raise SystemExit(f"{source}: no {PREFIX}* tensors (not a captioning model)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / ENCODER_FILE
    save_file(encoder, str(target), metadata={"source": str(source),
                                              "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest()})
    return target


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="python -m attn_models.captioning.extract_encoder",
                                description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model_dir", help="folder holding the captioning model's model.safetensors")
    p.add_argument("out_dir", help="where encoder.safetensors goes (what --encoder-from then names)")
    args = p.parse_args(argv)
    target = extract_encoder(args.model_dir, args.out_dir)
    print(target)
    return target


if __name__ == "__main__":
    main()
