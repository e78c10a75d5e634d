"""The weekly chart: stage completion per township as a PNG bar chart with Chinese labels.

matplotlib (Agg backend) with a real CJK font: Noto Sans CJK SC shipped by the `mplfonts` package,
or a system Noto/WenQuanYi font; `cjk_font()` says which, and fails loudly if none is found.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import font_manager  # noqa: E402
from matplotlib import pyplot as plt  # noqa: E402

SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
)


class FontMissing(RuntimeError):
    pass


@lru_cache(maxsize=1)
def cjk_font() -> Path:
    """Path of a font that has Chinese glyphs."""
    candidates = []
    try:
        import mplfonts

        candidates.append(Path(mplfonts.__file__).parent / "fonts" / "NotoSansCJKsc-Regular.otf")
    except ImportError:
        pass
    candidates += [Path(p) for p in SYSTEM_FONTS]
    for path in candidates:
        if path.is_file():
            font_manager.fontManager.addfont(str(path))
            return path
    raise FontMissing("没有找到中文字体：请 pip install mplfonts 或 apt-get install fonts-noto-cjk")


def stage_chart(title: str, stages: list[str], townships: dict[str, list[float]]) -> bytes:
    """Grouped bars: for each stage, the share of villages in each township that finished it (0..1)."""
    font = font_manager.FontProperties(fname=str(cjk_font()))
    fig, ax = plt.subplots(figsize=(max(8, len(stages) * 1.1), 4.8), dpi=110)
    width = 0.8 / max(1, len(townships))
    for i, (name, shares) in enumerate(townships.items()):
        xs = [x + i * width - 0.4 + width / 2 for x in range(len(stages))]
        ax.bar(xs, [s * 100 for s in shares], width=width, label=name)
    ax.set_xticks(range(len(stages)))
    ax.set_xticklabels(stages, fontproperties=font, rotation=30, ha="right")
    ax.set_ylabel("完成的村(社区) %", fontproperties=font)
    ax.set_ylim(0, 105)
    ax.set_title(title, fontproperties=font)
    ax.legend(prop=font, fontsize=8, ncol=min(4, max(1, len(townships))))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def digest_chart(data: dict) -> bytes:
    """Chart for a built digest (needs per-township stage counts in data['chart'])."""
    return stage_chart(f"{data['scope']} 各阶段完成情况({data['date']})", data["chart"]["stages"], data["chart"]["townships"])
