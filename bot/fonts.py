"""The CJK font charts are drawn with. Found by file, not by name: matplotlib's name lookup goes
through its font cache, and a cache written before the font was installed hides it (every
Chinese character then renders as a box). The bot refuses to start without one."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CJK_FONTS = ("WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Noto Sans CJK SC", "Source Han Sans SC")
# Where Debian's packages put them.
CJK_FONT_FILES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/source-han-sans/SourceHanSansSC-Regular.otf",
)
MISSING = ("没有找到中文字体,周报图表中的汉字会显示为方框。请安装文泉驿微米黑:"
           "apt-get install -y fonts-wqy-microhei(make run 会自动安装)。"
           " / no CJK font found: install fonts-wqy-microhei")


def find_cjk_font() -> tuple[str, str] | None:
    """(family name, file) of the first CJK font on this machine, found on disk or by fontconfig."""
    from matplotlib import font_manager
    candidates = [Path(p) for p in CJK_FONT_FILES]
    fc = shutil.which("fc-match")
    if fc:
        for name in CJK_FONTS:
            try:
                out = subprocess.run([fc, "-f", "%{file}", f"{name}:lang=zh-cn"], capture_output=True,
                                     text=True, timeout=5).stdout.strip()
            except (OSError, subprocess.SubprocessError):
                break
            if out:
                candidates.append(Path(out))
    for path in candidates:
        if not path.is_file():
            continue
        try:
            family = font_manager.FontProperties(fname=str(path)).get_name()
        except (OSError, RuntimeError, ValueError):
            continue
        if family in CJK_FONTS:
            return family, str(path)
    return None
