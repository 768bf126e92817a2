"""The match-cut report: a contact sheet (PNG) and an HTML page that opens in a browser.

Each pair is shown as the cut would play: the last representative frame of shot A beside the
first of shot B (not a black frame mid-fade), with the score and both timecodes. Frames keep
their display aspect ratio on the report's 16:9 thumbnails (letterbox or pillarbox). Frames
are decoded from the assets' files by exact frame number; file names inside the report folder
are generated (rank numbers), never taken from ids or aliases.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image, ImageDraw, ImageFont

from amberlite.core.timecode import timecode
from amberlite.media.decode import Decode, read_batch

THUMB = (320, 180)
_PAD = 12
_TEXT_H = 40
_BG = (24, 24, 28)
_FG = (235, 235, 235)
_ACCENT = (250, 200, 90)


def fit(width: int, height: int, box: tuple[int, int] = THUMB, aspect: float = 1.0):
    """(w, h) of a ``width`` x ``height`` picture (pixels ``aspect`` wide: its sample aspect
    ratio) scaled to fit inside ``box`` with its display aspect ratio kept; even sizes."""
    shown = width * aspect / height
    bw, bh = box
    if shown >= bw / bh:
        w, h = bw, bw / shown
    else:
        w, h = bh * shown, bh
    return max(2, int(round(w / 2)) * 2), max(2, int(round(h / 2)) * 2)


def letterbox(frame: np.ndarray, box: tuple[int, int] = THUMB, fill=(0, 0, 0)) -> np.ndarray:
    """``frame`` centred on a ``box`` canvas of ``fill``: letterbox (bars above and below)
    or pillarbox (bars left and right), never stretched."""
    bw, bh = box
    h, w = frame.shape[:2]
    out = np.empty((bh, bw, 3), dtype=np.uint8)
    out[:] = np.array(fill, dtype=np.uint8)
    y0, x0 = (bh - h) // 2, (bw - w) // 2
    out[y0 : y0 + h, x0 : x0 + w] = frame[: min(h, bh), : min(w, bw)]
    return out


def sample_aspect(path: str) -> float:
    """The video's sample (pixel) aspect ratio as the container or codec declares it; 1.0
    when it declares none."""
    import av

    try:
        with av.open(path) as c:
            sar = c.streams.video[0].sample_aspect_ratio
    except (av.FFmpegError, IndexError, OSError):
        return 1.0
    return float(sar) if sar else 1.0


def pair_frames(store, pairs: pl.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """(out frame of shot A, in frame of shot B) per pair, RGB on a :data:`THUMB` canvas
    (aspect ratio kept, letterboxed or pillarboxed). The out frame is shot A's last
    representative frame, the in frame shot B's first (not black, not mid-fade:
    :func:`amberlite.library.matchcut.representative_frame`)."""
    from amberlite.library.matchcut import representative_frame

    ids = sorted(set(pairs["asset_id_a"].to_list()) | set(pairs["asset_id_b"].to_list()))
    views = {v.id: v for v in store.ctx.asset_views(ids, Decode())}
    decodes: dict[str, Decode] = {}
    for asset_id, view in views.items():
        rec = view.record
        decodes[asset_id] = Decode(size=fit(rec.width, rec.height, THUMB, sample_aspect(rec.path)))
    cache: dict[tuple[str, int], np.ndarray] = {}

    def frame(asset_id: str, start: int, end: int, side: str) -> np.ndarray:
        view = views[asset_id]
        n = representative_frame(view.path, view.index, start, end, side)
        if (asset_id, n) not in cache:
            _, frames = read_batch(view.path, n, n + 1, decodes[asset_id], view.index)
            cache[asset_id, n] = (
                letterbox(frames[0]) if len(frames) else np.zeros((*THUMB[::-1], 3), "u1")
            )
        return cache[asset_id, n]

    return [
        (
            frame(r["asset_id_a"], r["start_frame_a"], r["end_frame_a"], "out"),
            frame(r["asset_id_b"], r["start_frame_b"], r["end_frame_b"], "in"),
        )
        for r in pairs.iter_rows(named=True)
    ]


def _caption(row: dict, rank: int) -> tuple[str, str]:
    a = f"{row['asset_a']} #{row['shot_a']} ends {timecode(row['end_a'])}"
    b = f"{row['asset_b']} #{row['shot_b']} starts {timecode(row['start_b'])}"
    return f"{rank}. score {row['score']:.3f}", f"{a}  ->  {b}"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size bitmap font
        return ImageFont.load_default()


def contact_sheet(
    pairs: pl.DataFrame, frames: list[tuple[np.ndarray, np.ndarray]], title: str
) -> Image.Image:
    """One row per pair: [A's last frame | B's first frame] with rank, score, timecodes."""
    w, h = THUMB
    row_h = h + _TEXT_H + _PAD
    width = 2 * w + 3 * _PAD
    sheet = Image.new("RGB", (width, 40 + max(1, len(frames)) * row_h), _BG)
    draw = ImageDraw.Draw(sheet)
    draw.text((_PAD, 10), title, fill=_ACCENT, font=_font(18))
    if not frames:
        draw.text((_PAD, 50), "no pairs", fill=_FG, font=_font(14))
    for k, (row, (fa, fb)) in enumerate(zip(pairs.iter_rows(named=True), frames)):
        y = 40 + k * row_h
        head, detail = _caption(row, k + 1)
        draw.text((_PAD, y), head, fill=_ACCENT, font=_font(14))
        draw.text((_PAD, y + 18), detail, fill=_FG, font=_font(12))
        sheet.paste(Image.fromarray(fa), (_PAD, y + _TEXT_H))
        sheet.paste(Image.fromarray(fb), (2 * _PAD + w, y + _TEXT_H))
    return sheet


def _html(pairs: pl.DataFrame, title: str) -> str:
    rows = []
    for k, row in enumerate(pairs.iter_rows(named=True), start=1):
        e = html.escape
        rows.append(
            f"""<tr><td>{k}</td><td class="score">{row["score"]:.3f}</td>
<td><img src="frames/{k:03d}_a.jpg" alt="last frame of shot A"><br>
{e(str(row["asset_a"]))} shot {row["shot_a"]}<br>{timecode(row["start_a"])} &ndash;
{timecode(row["end_a"])}</td>
<td><img src="frames/{k:03d}_b.jpg" alt="first frame of shot B"><br>
{e(str(row["asset_b"]))} shot {row["shot_b"]}<br>{timecode(row["start_b"])} &ndash;
{timecode(row["end_b"])}</td></tr>"""
        )
    body = "\n".join(rows) or '<tr><td colspan="4">no pairs</td></tr>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #18181c; color: #eee; margin: 2em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .5em 1em; vertical-align: top; }}
tr:nth-child(even) {{ background: #222228; }} .score {{ color: #fac85a; font-weight: bold; }}
img {{ width: 320px; border-radius: 4px; }} a {{ color: #fac85a; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Each row is a cut: the last frame of shot A, then the first frame of shot B.
Contact sheet: <a href="contact_sheet.png">contact_sheet.png</a>.</p>
<table><tr><th>#</th><th>score</th><th>shot A (out)</th><th>shot B (in)</th></tr>
{body}
</table></body></html>
"""


def write_report(store, pairs: pl.DataFrame, out_dir: Path, title: str) -> dict[str, Path]:
    """Write ``report.html``, ``contact_sheet.png`` and ``frames/NNN_{a,b}.jpg`` into
    ``out_dir`` (created); returns their paths. ``pairs`` comes from
    :func:`amberlite.matchcut.scored_pairs`."""
    frames_dir = out_dir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    for old in frames_dir.glob("[0-9][0-9][0-9]_[ab].jpg"):  # a previous, longer report
        old.unlink()
    frames = pair_frames(store, pairs) if pairs.height else []
    for k, (fa, fb) in enumerate(frames, start=1):
        Image.fromarray(fa).save(frames_dir / f"{k:03d}_a.jpg", quality=88)
        Image.fromarray(fb).save(frames_dir / f"{k:03d}_b.jpg", quality=88)
    sheet = out_dir / "contact_sheet.png"
    contact_sheet(pairs, frames, title).save(sheet)
    page = out_dir / "report.html"
    page.write_text(_html(pairs, title), encoding="utf-8")
    return {"html": page, "contact_sheet": sheet, "frames": frames_dir}
