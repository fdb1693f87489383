"""The book's diagrams, drawn with matplotlib when the book is built (a Sphinx extension).

Each ``draw_*`` function draws one picture of a core idea into ``book/_diagrams/<name>.svg``, where a
chapter shows it with a ``{figure}`` directive. Where a diagram shows numbers (the worked example's
adjoints, attention weights, BPE merges), minroots computes them, so the pictures cannot drift from
the code. Everything is offline: matplotlib's own fonts, no external tool.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle  # noqa: E402

OUT = "_diagrams"
INK, BACK, NEW, OLD, HIDE = "#222222", "#c0392b", "#e67e22", "#bdc3c7", "#34495e"
plt.rcParams.update({"svg.hashsalt": "minroots", "font.size": 11})


def _box(ax, x, y, text, w=1.6, h=0.7, color="white", edge=INK, size=11):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                facecolor=color, edgecolor=edge, linewidth=1.2))  # fmt: skip
    ax.text(x, y, text, ha="center", va="center", fontsize=size, color=INK)


def _arrow(ax, start, end, color=INK, style="-|>", dashed=False, rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=color,
                                 linestyle="--" if dashed else "-", linewidth=1.3,
                                 connectionstyle=f"arc3,rad={rad}"))  # fmt: skip


def _canvas(width, height, xlim, ylim):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.axis("off")
    return fig, ax


def draw_computation_graph():
    """Chapter 2's worked example, f = tanh(ab + c): values forward (black), adjoints back (red)."""
    import numpy as np

    import minroots

    a, b, c = (minroots.tensor(np.array(v), requires_grad=True) for v in (2.0, -1.5, 0.5))
    d = a * b
    e = d + c
    f = e.tanh()
    f.backward()
    bar_f = 1.0
    bar_e = float(1 - f.item() ** 2)
    fig, ax = _canvas(9.5, 4.2, (-0.2, 10.2), (0, 4.6))
    nodes = {
        "a": (1, 3.6, f"a = {a.item():g}", f"ā = {a.grad.item():.5f}"),
        "b": (1, 2.1, f"b = {b.item():g}", f"b̄ = {b.grad.item():.5f}"),
        "c": (1, 0.6, f"c = {c.item():g}", f"c̄ = {c.grad.item():.5f}"),
        "d": (4, 2.85, f"d = ab = {d.item():g}", f"d̄ = ē = {bar_e:.5f}"),
        "e": (6.5, 1.7, f"e = d + c = {e.item():g}", f"ē = f̄ (1 - f²) = {bar_e:.5f}"),
        "f": (9, 1.7, f"f = tanh e\n= {f.item():.5f}", f"f̄ = {bar_f:g}"),
    }
    for x, y, value, adjoint in nodes.values():
        _box(ax, x, y, value, w=2.1, h=0.75)
        ax.text(x, y - 0.62, adjoint, ha="center", va="center", fontsize=9.5, color=BACK)
    for src, dst in (("a", "d"), ("b", "d"), ("d", "e"), ("c", "e"), ("e", "f")):
        (x0, y0, *_), (x1, y1, *_) = nodes[src], nodes[dst]
        _arrow(ax, (x0 + 1.05, y0), (x1 - 1.05, y1))
        _arrow(ax, (x1 - 1.05, y1 - 0.2), (x0 + 1.05, y0 - 0.2), color=BACK, dashed=True)
    ax.text(5, 4.4, "forward: values (black)   ·   backward: adjoints ū = ∂f/∂u (red, dashed)",
            ha="center", fontsize=10)  # fmt: skip
    return fig


def draw_transformer_block():
    """A pre-LN Transformer block: two residual branches, attention then the MLP."""
    fig, ax = _canvas(4.6, 6.6, (0, 6), (0, 10))
    x, xr = 2.6, 5.2
    steps = [(0.6, "x  (B, T, C)", "white"), (2.1, "LayerNorm", "#ecf0f1"),
             (3.4, "causal multi-head\nself-attention", "#d6eaf8"), (4.8, "+", "white"),
             (6.0, "LayerNorm", "#ecf0f1"), (7.3, "MLP: Linear 4C,\nGELU, Linear C", "#fdebd0"),
             (8.7, "+", "white"), (9.7, "output  (B, T, C)", "white")]  # fmt: skip
    for y, text, color in steps:
        w = 0.7 if text == "+" else 3.0
        _box(ax, x, y, text, w=w, h=0.6 if text == "+" else 0.85, color=color, size=10)
    for (y0, t0, _), (y1, t1, _) in zip(steps, steps[1:], strict=False):
        _arrow(ax, (x, y0 + (0.3 if t0 == "+" else 0.43)), (x, y1 - (0.3 if t1 == "+" else 0.43)))
    for y0, y1 in ((1.33, 4.8), (5.35, 8.7)):  # the residual connections branch off the stem
        ax.plot([x, xr, xr], [y0, y0, y1], color=HIDE, linewidth=1.3)
        ax.plot([x], [y0], "o", color=HIDE, markersize=4)
        _arrow(ax, (xr, y1), (x + 0.35, y1), color=HIDE)
    ax.text(xr + 0.1, 2.7, "residual", rotation=90, color=HIDE, va="center", fontsize=9)
    ax.text(xr + 0.1, 6.7, "residual", rotation=90, color=HIDE, va="center", fontsize=9)
    return fig


def draw_attention_mask():
    """The causal mask and the attention weights it leaves: P = softmax(QKᵀ/√d + M)."""
    import numpy as np

    import minroots
    import minroots.nn.functional as F

    t, d = 6, 4
    rng = np.random.default_rng(3)
    q, k = rng.standard_normal((t, d)), rng.standard_normal((t, d))
    mask = F.causal_mask(t, t, np.float64, np)
    p = F.softmax(minroots.tensor(q @ k.T / np.sqrt(d) + mask), axis=-1).numpy()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8.4, 3.9))
    ax1.imshow(np.isfinite(mask), cmap="Greys_r", vmin=-0.3, vmax=1.2)
    for i in range(t):
        for j in range(t):
            ax1.text(j, i, "0" if np.isfinite(mask[i, j]) else "−∞", ha="center", va="center",
                     color=INK if np.isfinite(mask[i, j]) else "white", fontsize=10)  # fmt: skip
    ax1.set_title("causal mask M: query i sees keys j ≤ i", fontsize=10)
    im = ax2.imshow(p, cmap="viridis", vmin=0, vmax=1)
    for i in range(t):
        for j in range(t):
            if p[i, j] > 0:
                ax2.text(j, i, f"{p[i, j]:.2f}", ha="center", va="center", fontsize=8,
                         color="white" if p[i, j] < 0.6 else INK)  # fmt: skip
    ax2.set_title("weights P = softmax(QKᵀ/√d + M), rows sum to 1", fontsize=10)
    for ax in (ax1, ax2):
        ax.set_xlabel("key position j")
        ax.set_ylabel("query position i")
        ax.set_xticks(range(t))
        ax.set_yticks(range(t))
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    return fig


def draw_kv_cache():
    """Decoding with a key/value cache: each step computes one new key and value, reuses the rest."""
    steps, prompt = 4, 3
    fig, ax = _canvas(9, 3.9, (-2.6, prompt + steps + 3.4), (-0.9, steps + 0.6))
    for s in range(steps + 1):
        y = steps - s
        length = prompt + s
        label = "prefill (the prompt)" if s == 0 else f"step {s}"
        ax.text(-2.5, y, label, va="center", fontsize=10)
        for j in range(length):
            new = (s == 0) or (j == length - 1)
            color = NEW if new else OLD
            ax.add_patch(FancyBboxPatch((j + 0.08, y - 0.33), 0.84, 0.66,
                                        boxstyle="round,pad=0.02", facecolor=color,
                                        edgecolor=INK, linewidth=0.8))  # fmt: skip
            ax.text(j + 0.5, y, f"k,v{j}", ha="center", va="center", fontsize=8)
        note = (f"← {length} positions in one pass" if s == 0
                else f"← the new query {length - 1} attends to {length} keys")  # fmt: skip
        ax.text(length + 0.2, y, note, va="center", fontsize=9)
    for x, color, text in ((0.1, NEW, "computed this step"), (3.6, OLD, "read from the cache")):
        ax.add_patch(Rectangle((x, -0.75), 0.4, 0.3, facecolor=color, edgecolor=INK))
        ax.text(x + 0.55, -0.6, text, va="center", fontsize=9)
    return fig


def draw_bpe_merges():
    """BPE on "aaabdaaabac": the text after each merge that minroots' trainer learns."""
    from minroots.tokenizers import BPETokenizer

    text = "aaabdaaabac"
    tok = BPETokenizer(pattern="basic")
    tok.train(text, 259, min_frequency=1, show_progress=False)
    rows = [("bytes", [bytes([c]) for c in text.encode()])]
    for k, pair in enumerate(tok.merges):
        first, second = tok.vocab[pair[0]], tok.vocab[pair[1]]
        partial = BPETokenizer.__new__(BPETokenizer)  # the tokenizer after the first k + 1 merges
        vocab = {i: tok.vocab[i] for i in range(256 + k + 1)}
        partial._setup("basic", vocab, tok.merges[: k + 1], {})
        ids = partial.encode(text)
        rows.append(
            (f"merge {k + 1}: {first.decode()} + {second.decode()}", [tok.vocab[i] for i in ids])
        )
    fig, ax = _canvas(9, 0.75 * len(rows) + 0.4, (-3.4, len(text) + 0.2), (-0.6, len(rows) - 0.3))
    for r, (label, pieces) in enumerate(rows):
        y = len(rows) - 1 - r
        ax.text(-3.3, y, label, va="center", fontsize=10)
        x = 0.0
        for piece in pieces:
            w = len(piece)
            ax.add_patch(FancyBboxPatch((x + 0.06, y - 0.3), w - 0.12, 0.6,
                                        boxstyle="round,pad=0.02", edgecolor=INK,
                                        facecolor=NEW if w > 1 else "white", linewidth=0.9))  # fmt: skip
            ax.text(x + w / 2, y, piece.decode(), ha="center", va="center", fontsize=11,
                    family="monospace")  # fmt: skip
            x += w
        ax.text(len(text) + 0.1, y, f"{len(pieces)} tokens", va="center", fontsize=9)
    return fig


DIAGRAMS = {
    "computation_graph": draw_computation_graph,
    "transformer_block": draw_transformer_block,
    "attention_mask": draw_attention_mask,
    "kv_cache": draw_kv_cache,
    "bpe_merges": draw_bpe_merges,
}


def draw_all(folder: Path) -> list[Path]:
    """Draw every diagram into ``folder``; returns the SVG paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in DIAGRAMS.items():
        fig = draw()
        path = folder / f"{name}.svg"
        fig.savefig(path, bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
        paths.append(path)
    return paths


def _on_builder_inited(app) -> None:
    draw_all(Path(app.srcdir) / OUT)


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
