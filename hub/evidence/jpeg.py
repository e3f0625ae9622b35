"""Does this JPEG decode? A structural check at the cost of a scan over the bytes, not a decode.

Ingest used to run `cv2.imdecode(..., IMREAD_REDUCED_GRAYSCALE_8)` on every JPEG: ~0.75 ms for a
100 KB frame, more than all other checks together. What that decode rejects is the file's structure:
a missing or damaged header (markers, lengths, frame and scan parameters, tables a scan refers to) and,
with the end-of-image check it needed anyway, truncation. It does not reject damaged entropy-coded
data: libjpeg only warns ("Corrupt JPEG data") and returns an image. The hash and the device's
signature are what protect content. So this module walks the marker segments the way libjpeg's marker
reader does and checks every field the decoder would refuse, then checks that each scan's entropy-coded
data ends in a marker (every 0xFF in it is stuffed or a restart marker) and that the image ends with EOI.
On a corpus of bit flips and cuts it rejects a superset of what the 1/8 decode rejected
(tests/hub/evidence/test_jpeg.py).

Cost (bench/jpeg_check.py): the buffer is not copied (ingest passes zmq frames as memoryviews); the
end of each scan is found with two vectorised numpy passes over the file instead of a byte-at-a-time
regex (a `bytes.find` loop is no better: it costs a Python iteration per 0xFF, ~1 in 400 bytes); and
the frame, table and scan header segments, which an encoder repeats in every file it writes, are
checked once per distinct segment (small LRU caches) instead of once per file.
"""

from __future__ import annotations

import operator
import struct
from functools import lru_cache
from typing import NamedTuple

import numpy as np

Buffer = bytes | bytearray | memoryview

# SOF markers of the decoding processes libjpeg-turbo implements (baseline, extended, progressive,
# arithmetic sequential/progressive). Lossless and hierarchical files are refused.
_SOF_OK = frozenset({0xC0, 0xC1, 0xC2, 0xC9, 0xCA})
_SOF_ALL = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_SKIPPED = frozenset({0xDC, 0xFE, *range(0xE0, 0xF0)})  # DNL, COM, APPn: length-prefixed, not needed
_NO_LENGTH = frozenset({0x01, *range(0xD0, 0xDA), 0xFF})  # TEM, RSTn, SOI, EOI; 0xFF: fill before a marker
_MARKER = struct.Struct(">BBH")  # 0xFF, marker, segment length
_KRAFT_WEIGHTS = tuple(1 << (16 - length) for length in range(1, 17))  # DHT: a code of each length
# Distinct SOF/DQT/DHT/SOS segments remembered, each. An encoder writes the same ones in every file
# (optimised Huffman tables are the exception, and only miss). Bounded: a key is at most a 64 KB segment.
_CACHED_SEGMENTS = 64


class JpegError(ValueError):
    pass


def jpeg_error(data: Buffer) -> str | None:
    """Why `data` would not decode as a JPEG image, or None when its structure is sound."""
    try:
        _check(_view(data))
    except JpegError as exc:
        return str(exc)
    return None


def _view(data: Buffer) -> bytes | memoryview:
    """`data` as something indexable by byte without a copy (a copy only for a non-contiguous view)."""
    if isinstance(data, bytes):
        return data
    view = memoryview(data)
    return view.cast("B") if view.c_contiguous else view.tobytes()


class _Frame(NamedTuple):  # hashable: a key of the SOS cache
    qtables: frozenset[int]  # quantisation tables the components use
    blocks: tuple[tuple[int, int], ...]  # (component id, blocks it has in an MCU: h * v)
    arithmetic: bool
    progressive: bool


class _ScanEnds:
    """Where each scan's entropy-coded data ends: the first 0xFF at or after a position that is not
    stuffing (FF 00), a restart marker (FF D0-D7) or fill before a marker (FF FF), or an 0xFF that is the
    last byte. That is what the regex `\\xff(?![\\x00\\xd0-\\xd7\\xff])` finds, but the regex engine looks at
    one byte per step; here numpy marks every candidate once per file (from the first scan on) and each
    scan is an argmax, which stops at the first mark."""

    def __init__(self, b: bytes | memoryview, start: int) -> None:
        self.b, self.start = b, start
        a = np.frombuffer(b, np.uint8)
        self.following = a[start + 1:]
        # marks[k]: b[start + k] is 0xFF and b[start + k + 1] is not 0x00. Two passes, not three
        # (`marks &= following != 0`): the minimum of 0/1 and a byte is 0/1, so still a valid bool array.
        self.marks = a[start:-1] == 0xFF
        as_bytes = self.marks.view(np.uint8)
        np.minimum(as_bytes, self.following, out=as_bytes)
        self.refined = False

    def find(self, pos: int) -> int:
        """The end of the entropy-coded data that starts at `pos` (>= start), or -1 if it does not end."""
        b, marks, k = self.b, self.marks, pos - self.start
        while k < marks.size:
            rest = marks[k:]
            j = int(rest.argmax())
            if not rest[j]:
                break
            i = self.start + k + j
            code = b[i + 1]
            if code != 0xFF and not 0xD0 <= code <= 0xD7:
                return i
            if self.refined:
                raise AssertionError(f"restart marker or fill left marked at byte {i}")
            # A restart marker or fill: unmark all of them at once (a few more passes) rather than step
            # over each one from Python (files with a restart interval have hundreds), then search again.
            # Once per file, so this loop runs at most twice.
            following = self.following
            marks &= (following & 0xF8) != 0xD0
            marks &= following != 0xFF
            self.refined = True
        last = len(b) - 1
        return last if pos <= last and b[last] == 0xFF else -1


def _check(b: bytes | memoryview) -> None:
    n = len(b)
    if n < 4 or b[0] != 0xFF or b[1] != 0xD8:
        raise JpegError("no SOI marker")
    pos = 2
    frame: _Frame | None = None
    qtables: frozenset[int] = frozenset()
    htables: frozenset[tuple[int, int]] = frozenset()
    ends: _ScanEnds | None = None  # made at the first scan
    unpack = _MARKER.unpack_from
    while True:
        head = unpack(b, pos) if pos + 4 <= n else None
        if head is not None and head[0] == 0xFF and head[1] not in _NO_LENGTH:
            _, marker, length = head  # the usual case, read at once: FF, a marker, its segment's length
            pos += 2
        else:  # anything else byte by byte, as libjpeg's next_marker() does
            if pos >= n:
                raise JpegError("truncated: no EOI marker")
            if b[pos] != 0xFF:
                raise JpegError(f"expected a marker at byte {pos}, found 0x{b[pos]:02x}")
            pos += 1
            while pos < n and b[pos] == 0xFF:  # fill bytes
                pos += 1
            if pos >= n:
                raise JpegError("truncated: no EOI marker")
            marker = b[pos]
            pos += 1
            if marker == 0xD9:
                if ends is None:
                    raise JpegError("EOI before any image data")
                return
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:
                continue  # TEM, stray RSTn: no length (libjpeg tolerates them)
            if pos + 2 > n:
                raise JpegError("truncated marker segment")
            length = (b[pos] << 8) | b[pos + 1]
        if length < 2 or pos + length > n:
            raise JpegError(f"marker 0x{marker:02x} length {length} runs past the data")
        body, pos = pos + 2, pos + length
        if marker in _SKIPPED:  # first: APPn (EXIF) can be large, and it is never copied
            continue
        seg = bytes(b[body:pos])  # small: a cache key, and it holds no reference to the caller's buffer
        if marker == 0xC4:
            htables |= _dht(seg)
        elif marker == 0xDB:
            qtables |= _dqt(seg)
        elif marker in _SOF_ALL:
            if frame is not None:
                raise JpegError("more than one SOF marker")
            if marker not in _SOF_OK:
                raise JpegError(f"unsupported JPEG process (SOF 0x{marker:02x})")
            frame = _frame(seg, marker)
        elif marker == 0xDA:
            if frame is None:
                raise JpegError("SOS before SOF")
            missing = frame.qtables - qtables
            if missing:
                raise JpegError(f"quantisation table {min(missing)} is not defined")
            _sos(seg, frame, htables)
            if ends is None:
                ends = _ScanEnds(b, pos)
            end = ends.find(pos)
            if end < 0:
                raise JpegError("truncated: entropy-coded data has no end")
            if end == pos:
                raise JpegError("empty scan")
            pos = end
        elif marker == 0xDD:
            if length != 4:
                raise JpegError(f"DRI length {length}, expected 4")
        elif marker == 0xCC:
            _dac(seg)
        else:
            raise JpegError(f"unknown marker 0x{marker:02x}")


@lru_cache(maxsize=_CACHED_SEGMENTS)
def _frame(seg: bytes, marker: int) -> _Frame:
    if len(seg) < 6:
        raise JpegError("SOF segment too short")
    precision, height, width, count = seg[0], (seg[1] << 8) | seg[2], (seg[3] << 8) | seg[4], seg[5]
    if precision not in (8, 12):
        raise JpegError(f"sample precision {precision} (8 or 12 expected)")
    if height == 0 or width == 0:
        raise JpegError(f"image size {width}x{height}")
    if not 1 <= count <= 4 or len(seg) != 6 + 3 * count:
        raise JpegError(f"SOF with {count} components in {len(seg) + 2} bytes")
    comps: dict[int, int] = {}
    factors: dict[int, tuple[int, int]] = {}
    for i in range(count):
        cid, sampling, tq = seg[6 + 3 * i: 9 + 3 * i]
        h, v = sampling >> 4, sampling & 15
        if not (1 <= h <= 4 and 1 <= v <= 4):
            raise JpegError(f"component {cid}: sampling factors {h}x{v}")
        if tq > 3:
            raise JpegError(f"component {cid}: quantisation table {tq}")
        if cid in comps:
            raise JpegError(f"component id {cid} appears twice")
        comps[cid], factors[cid] = tq, (h, v)
    max_h, max_v = max(h for h, _ in factors.values()), max(v for _, v in factors.values())
    if any(max_h % h or max_v % v for h, v in factors.values()):
        raise JpegError("fractional sampling factors")  # libjpeg: not implemented
    return _Frame(frozenset(comps.values()), tuple((cid, h * v) for cid, (h, v) in factors.items()),
                  arithmetic=marker >= 0xC9, progressive=marker in (0xC2, 0xCA))


@lru_cache(maxsize=_CACHED_SEGMENTS)
def _dqt(seg: bytes) -> frozenset[int]:
    ids, i = set(), 0
    while i < len(seg):
        pq, tq = seg[i] >> 4, seg[i] & 15
        if pq > 1 or tq > 3:
            raise JpegError(f"DQT table {tq} precision {pq}")
        i += 1 + 64 * (pq + 1)
        if i > len(seg):
            raise JpegError("DQT segment length does not match its tables")
        ids.add(tq)
    if not ids:
        raise JpegError("empty DQT segment")
    return frozenset(ids)


@lru_cache(maxsize=_CACHED_SEGMENTS)
def _dht(seg: bytes) -> frozenset[tuple[int, int]]:
    ids, i, n = set(), 0, len(seg)
    while i < n:
        if i + 17 > n:
            raise JpegError("DHT segment length does not match its tables")
        tc, th = seg[i] >> 4, seg[i] & 15
        if tc > 1 or th > 3:
            raise JpegError(f"DHT class {tc} table {th}")
        counts = seg[i + 1: i + 17]
        total = sum(counts)
        if total > 256:
            raise JpegError(f"DHT table {tc}/{th} has {total} codes")
        # Canonical codes must fit their lengths, as jdhuff.c checks length by length: the code after the
        # codes of length L, sum(counts[l] << (L - l) for l <= L), must be < 1 << L. Divided by 1 << L that
        # sum only grows with L, so the check at L = 16 is all of them (Kraft: the codes leave one unused).
        if sum(map(operator.mul, counts, _KRAFT_WEIGHTS)) >= 1 << 16:
            raise JpegError(f"DHT table {tc}/{th}: invalid code lengths")
        values = seg[i + 17: i + 17 + total]
        i += 17 + total
        if i > n:
            raise JpegError("DHT segment length does not match its tables")
        if tc == 0 and values and max(values) > 15:
            raise JpegError(f"DC Huffman table {th} has a symbol over 15")
        ids.add((tc, th))
    if not ids:
        raise JpegError("empty DHT segment")
    return frozenset(ids)


def _dac(seg: bytes) -> None:
    if len(seg) % 2:
        raise JpegError("DAC segment has an odd length")
    for index, value in zip(seg[::2], seg[1::2], strict=True):
        if index >= 32 or (index >= 16 and not 1 <= value <= 63) or (index < 16 and (value & 15) > (value >> 4)):
            raise JpegError(f"DAC entry {index}={value}")


@lru_cache(maxsize=_CACHED_SEGMENTS)
def _sos(seg: bytes, frame: _Frame, htables: frozenset[tuple[int, int]]) -> None:
    blocks, arithmetic, progressive = dict(frame.blocks), frame.arithmetic, frame.progressive
    if not seg:
        raise JpegError("empty SOS segment")
    count = seg[0]
    if not 1 <= count <= 4 or len(seg) != 4 + 2 * count:
        raise JpegError(f"SOS with {count} components in {len(seg) + 2} bytes")
    ss, se, a = seg[1 + 2 * count], seg[2 + 2 * count], seg[3 + 2 * count]
    ah, al = a >> 4, a & 15
    if progressive:
        if (ss == 0 and se != 0) or (ss > 0 and (se < ss or se > 63 or count != 1)) or ah > 13 or al > 13:
            raise JpegError(f"progressive scan parameters Ss={ss} Se={se} Ah={ah} Al={al}")
    elif ss > 63 or se > 63 or ss > se:
        raise JpegError(f"scan parameters Ss={ss} Se={se}")
    seen: set[int] = set()
    for i in range(count):
        cid, tables = seg[1 + 2 * i], seg[2 + 2 * i]
        if cid not in blocks:
            raise JpegError(f"scan refers to component {cid}, which the frame does not have")
        if cid in seen:
            raise JpegError(f"scan lists component {cid} twice")
        seen.add(cid)
        td, ta = tables >> 4, tables & 15
        if td > 3 or ta > 3:
            raise JpegError(f"scan component {cid}: table ids {td}/{ta}")
        if arithmetic:
            continue
        if progressive:  # each scan needs the one table it codes with, from the file itself
            needed = [] if ah and ss == 0 else [(0, td)] if ss == 0 else [(1, ta)]
        else:  # libjpeg-turbo supplies standard tables 0 and 1 when a file has none (Motion-JPEG)
            needed = [(tc, th) for tc, th in ((0, td), (1, ta)) if th > 1]
        for tc, th in needed:
            if (tc, th) not in htables:
                raise JpegError(f"scan component {cid}: Huffman table {tc}/{th} is not defined")
    if count > 1 and sum(blocks[c] for c in seen) > 10:
        raise JpegError("too many blocks in an MCU")
