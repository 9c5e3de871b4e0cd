"""The model-card picture of a captioning model: per-word attention over test scenes."""
from __future__ import annotations

from attn_models.captioning.metrics import attention_correctness, upsample_attention
from attn_models.data.scenes import CANVAS, Scene, word_boxes


def attention_figure(model, scenes: list[Scene], path: str, beam_size: int = 3) -> None:
    """One row per scene: the image, then each word's attention (upsampled, over the image) with the
    word, its gate beta and, for object words, its attention correctness; the item's box in white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    from PIL import Image

    caps = [model.caption(Image.fromarray(s.image), beam_size=beam_size) for s in scenes]
    cols = 1 + max(len(c.words) for c in caps)
    fig, axes = plt.subplots(len(scenes), cols, figsize=(1.6 * cols, 2.0 * len(scenes)), squeeze=False)
    for row, (s, cap) in enumerate(zip(scenes, caps, strict=True)):
        axes[row, 0].imshow(s.image)
        axes[row, 0].set_title("input", fontsize=8)
        corr = attention_correctness(cap.alphas, cap.words, s)
        boxes = word_boxes(s, cap.words)
        for k in range(1, cols):
            ax = axes[row, k]
            if k - 1 >= len(cap.words):
                ax.axis("off")
                continue
            ax.imshow(s.image)
            ax.imshow(upsample_attention(cap.alphas[k - 1]), cmap="inferno", alpha=0.65,
                      extent=(-0.5, CANVAS - 0.5, CANVAS - 0.5, -0.5))
            title = cap.words[k - 1]
            if cap.betas is not None:
                title += f"\nβ={cap.betas[k - 1]:.2f}"
            if corr[k - 1] is not None:
                title += f" AC={corr[k - 1]:.2f}"
                y0, x0, y1, x1 = boxes[k - 1]
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec="white", lw=0.8))
            ax.set_title(title, fontsize=7)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
