"""The structural JPEG check accepts what encoders write and rejects at least what a 1/8 decode rejected."""

from __future__ import annotations

import random
import re

import cv2
import numpy as np
import pytest

from hub.evidence.jpeg import _ScanEnds, jpeg_error


def _encode(image: np.ndarray, *params: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, list(params))
    assert ok
    return buf.tobytes()


def _corpus() -> list[bytes]:
    rng = np.random.default_rng(7)
    out = []
    for wh in ((64, 48), (17, 9), (320, 240)):
        image = cv2.GaussianBlur(rng.integers(0, 255, (wh[1], wh[0], 3), dtype=np.uint8), (3, 3), 0)
        out += [
            _encode(image, cv2.IMWRITE_JPEG_QUALITY, 90),
            _encode(image, cv2.IMWRITE_JPEG_QUALITY, 60, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
            _encode(image[:, :, 0], cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_RST_INTERVAL, 4),
            _encode(image, cv2.IMWRITE_JPEG_OPTIMIZE, 1, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                    cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
        ]
    return out


CORPUS = _corpus()


def _decodes(data: bytes) -> bool:
    """What ingest used to run: EOI near the end, then a 1/8-scale greyscale decode."""
    if len(data) < 4 or data[:2] != b"\xff\xd8" or b"\xff\xd9" not in data[-32:]:
        return False
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8) is not None


def test_encoder_output_passes(dog_jpg, person_jpg) -> None:  # type: ignore[no-untyped-def]
    for data in [*CORPUS, dog_jpg.read_bytes(), person_jpg.read_bytes()]:
        assert jpeg_error(data) is None
        assert jpeg_error(memoryview(data)) is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:-2], "truncated"),
        (lambda b: b"\xff\xd8" + b"not a jpeg at all" * 50 + b"\xff\xd9", "expected a marker"),
        (lambda b: b"GIF89a" + b[6:], "no SOI"),
        (lambda b: b[:2] + b"\xff\xd9", "EOI before any image data"),
    ],
)
def test_damaged_files_name_the_problem(damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    error = jpeg_error(damage(CORPUS[0]))
    assert error is not None and reason in error


def test_rejects_everything_the_decoder_rejected() -> None:
    """Bit flips and byte swaps in the headers and cuts anywhere: whatever the 1/8-scale decode refused,
    the structural check refuses too (it refuses more: e.g. scans cut short and patched with an EOI)."""
    rng = random.Random(11)
    missed = []
    for original in CORPUS:
        header_end = original.find(b"\xff\xda") + 12
        for _ in range(60):
            damaged = bytearray(original)
            kind = rng.randrange(3)
            if kind == 0:
                damaged[rng.randrange(2, header_end)] ^= 1 << rng.randrange(8)
            elif kind == 1:
                damaged[rng.randrange(2, header_end)] = rng.randrange(256)
            else:
                damaged = damaged[: rng.randrange(2, len(damaged))]
            data = bytes(damaged)
            if not _decodes(data) and jpeg_error(data) is None:
                missed.append(data)
    assert not missed


def test_buffer_types_get_the_same_verdicts() -> None:
    """bytes, memoryview (what ingest passes) and bytearray: the same answer, word for word, on damaged files."""
    rng = random.Random(3)
    for original in CORPUS:
        for _ in range(40):
            damaged = bytearray(original)
            damaged[rng.randrange(2, len(damaged))] = rng.choice([0x00, 0xFF, 0xD0, 0xD9, rng.randrange(256)])
            data = bytes(damaged[: rng.randrange(len(damaged) // 2, len(damaged) + 1)])
            assert jpeg_error(memoryview(data)) == jpeg_error(bytearray(data)) == jpeg_error(data)


def test_keeps_no_reference_to_the_buffer() -> None:
    """The segment caches keep copies: a bytearray checked is free to be resized afterwards."""
    data = bytearray(CORPUS[0])
    assert jpeg_error(data) is None
    data.extend(b"\x00")  # BufferError if a memoryview of it were still alive


def test_ends_on_a_trailing_ff() -> None:
    error = jpeg_error(CORPUS[0][:-1])  # EOI cut after its 0xFF
    assert error is not None and "truncated" in error


def test_scan_end_is_the_first_ff_not_stuffing_restart_or_fill() -> None:
    """The vectorised search finds what `\\xff(?![\\x00\\xd0-\\xd7\\xff])` finds, from any position."""
    pattern = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")
    rng = random.Random(5)
    alphabet = [0x00, 0xFF, 0xD0, 0xD7, 0xD8, 0xCF, 0xD9, 0x12]
    for trial in range(20000):
        data = bytes(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))
        start = rng.randrange(len(data) + 1)
        ends = _ScanEnds(memoryview(data) if trial % 2 else data, start)
        pos = start
        while pos <= len(data):
            match = pattern.search(data, pos)
            assert ends.find(pos) == (match.start() if match else -1), (data, start, pos)
            pos = (match.start() if match else len(data)) + rng.randrange(1, 4)
