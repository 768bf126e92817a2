"""Built-in annotators: ``subtitles``, ``transitions`` and ``subjects``.

* ``subtitles`` (over assets): every subtitle stream FFmpeg (through PyAV) decodes from the
  container — mov_text, SubRip, WebVTT, ASS... — and the sidecar files next to the media
  (``film.srt``, ``film.en.vtt``, ``film.ass``): one ``text`` annotation per cue, its time
  range clipped to the asset, with the stream (``0:mov_text``, ``film.en.srt``) and its
  language (stream metadata, or the sidecar's middle suffix).
* ``transitions`` (over assets): the shot segmenter's boundaries, typed. Every cut the
  ``shots`` segmenter accepts (same method, same parameters) is labelled ``cut`` (a hard cut:
  ``start_s == end_s``, the first frame of the new shot), ``fade`` (the span of the dip to
  black, ramps included) or ``dissolve`` (the analysis window around the transition's
  midpoint, 2 x 0.2 s), with ``start_frame``/``end_frame``.
* ``subjects`` (over shots): the foreground of ``match_framing`` (saliency, Otsu, GrabCut) on
  three sampled frames, majority vote, as one box per shot (none when the shot has no
  subject); ``confidence`` is the share of the box the foreground covers.
"""

from __future__ import annotations

import glob
import re
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from amberlite.define.annotation import AnnotatorSpec, annotator
from amberlite.media.decode import Decode

SIDECARS = (".srt", ".vtt", ".ass", ".ssa")
_ASS_TAG = re.compile(r"\{[^}]*\}")


def cue_text(dialogue: bytes | str) -> str:
    """Plain text of an ASS dialogue (what FFmpeg decodes every text subtitle to).

    Example:
        >>> cue_text(b"Hello {\\\\i1}there{\\\\i0}\\\\Nsecond")
        'Hello there\\nsecond'
    """
    text = dialogue.decode("utf-8", "replace") if isinstance(dialogue, bytes) else dialogue
    text = _ASS_TAG.sub("", text).replace("\\N", "\n").replace("\\n", "\n").replace("\\h", " ")
    return text.strip()


def read_cues(path: str | Path) -> list[dict[str, Any]]:
    """``{start_s, end_s, text, stream, language}`` of every cue of every subtitle stream of a
    media or subtitle file (empty when it has none)."""
    import av

    out: list[dict[str, Any]] = []
    with av.open(str(path)) as container:
        streams = list(container.streams.subtitles)
        if not streams:
            return out
        for packet in container.demux(*streams):  # one pass: streams interleave
            if packet.size == 0 or packet.pts is None:
                continue
            s = packet.stream
            lang = (s.metadata or {}).get("language")
            tb = packet.time_base or s.time_base
            start = float(packet.pts * tb)
            end = float((packet.pts + (packet.duration or 0)) * tb)
            for sub in packet.decode():
                text = cue_text(getattr(sub, "dialogue", b"") or b"")
                if text:
                    out.append(
                        {"start_s": start, "end_s": end, "text": text,
                         "stream": f"{s.index}:{s.codec_context.name}",
                         "language": lang if lang and lang != "und" else None}
                    )  # fmt: skip
    return out


def sidecars(media: str | Path) -> list[Path]:
    """Subtitle files next to ``media``: ``<stem>.srt`` and ``<stem>.<lang>.srt`` (and .vtt,
    .ass, .ssa), sorted."""
    media = Path(media)
    found = []
    for p in media.parent.glob(f"{glob.escape(media.stem)}.*"):
        if p.suffix.lower() in SIDECARS and p.is_file():
            middle = p.name[len(media.stem) : -len(p.suffix)]
            if middle == "" or re.fullmatch(r"\.[A-Za-z]{2,3}(-[A-Za-z]{2,4})?", middle):
                found.append(p)
    return sorted(found)


@annotator(type="subtitles", entity="asset", version=1)
def subtitles(asset) -> list[dict[str, Any]]:
    """Subtitle cues of the container's streams and of sidecar files (see module doc)."""
    duration = asset.record.duration_s
    cues = read_cues(asset.path)
    for side in sidecars(asset.path):
        middle = side.name[len(Path(asset.path).stem) : -len(side.suffix)].lstrip(".")
        for cue in read_cues(side):
            cue.update(stream=side.name, language=middle or cue["language"])
            cues.append(cue)
    out = []
    for c in cues:
        if c["start_s"] >= duration:
            continue
        c["end_s"] = min(max(c["end_s"], c["start_s"]), duration)
        out.append(c)
    return out


@annotator(type="transitions", entity="asset", version=1)
def transitions(asset) -> list[dict[str, Any]]:
    """The shots segmenter's cuts typed cut / fade / dissolve, with spans (see module doc)."""
    from amberlite.library import segment

    params = dict(segment.shots.params)
    f = segment.features(asset.path, asset.index, fps=float(asset.record.frame_rate))
    cuts = segment.detect(f, **params)
    hard = {int(f.numbers[j]) for j, _ in segment.hard_cuts(f, params["threshold"],
                                                           params["min_content"])}  # fmt: skip
    fades = {int(f.numbers[j]): (int(f.numbers[s]), int(f.numbers[min(e, f.numbers.size - 1)]))
             for j, s, e in segment.fades(f)}  # fmt: skip
    n = asset.record.frame_count
    out = []
    for cut in cuts:
        if cut in hard:
            kind, lo, hi = "cut", cut, cut
        elif cut in fades:
            kind, (lo, hi) = "fade", fades[cut]
        else:
            kind, lo, hi = "dissolve", max(0, cut - f.half_window), min(n - 1, cut + f.half_window)
        out.append(
            {"start_s": asset.time_of(lo), "end_s": asset.time_of(hi), "label": kind,
             "start_frame": lo, "end_frame": hi}
        )  # fmt: skip
    return out


@annotator(type="subjects", entity="shot", version=1, decode=Decode(size=(96, 54), fps=Fraction(2)))
def subjects(shot) -> list[dict[str, Any]]:
    """The shot's foreground (majority over 3 frames) as one box (see module doc)."""
    from amberlite.library.matchcut import foreground_mask, sample_frames

    frames = sample_frames(shot, 3)
    votes = np.mean([foreground_mask(f) for f in frames], axis=0) >= 0.5
    if not votes.any():
        return []
    ys, xs = np.nonzero(votes)
    h, w = votes.shape
    x0, x1, y0, y1 = xs.min() / w, (xs.max() + 1) / w, ys.min() / h, (ys.max() + 1) / h
    cover = float(votes.sum()) / ((xs.max() + 1 - xs.min()) * (ys.max() + 1 - ys.min()))
    return [
        {"start_s": shot.start_s, "end_s": shot.end_s, "box": [x0, y0, x1, y1],
         "label": "subject", "confidence": round(cover, 4)}
    ]  # fmt: skip


def builtin_annotators() -> list[AnnotatorSpec]:
    """The annotators every store has."""
    return [subtitles, transitions, subjects]
