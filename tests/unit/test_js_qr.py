"""The commuter page's hand-written QR encoder (ticketing/static/ticketing/qr.js).

Each matrix the JavaScript produces is rendered to a PNG and read back with zxing-cpp, an
independent decoder, and compared with the `qrcode` package: same smallest version at level M,
and module for module the same symbol when both use the same mask.
"""

import json
import os
import random
import shutil
import subprocess
from pathlib import Path

import base45
import pytest
import qrcode
import zxingcpp
from PIL import Image
from qrcode.util import MODE_ALPHA_NUM, QRData, lost_point

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "unit" / "js" / "qr_driver.mjs"
ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# Alphanumeric characters that fit each version at level M (ISO/IEC 18004 table 7).
CAPACITY_M = {1: 20, 2: 38, 3: 61, 4: 90, 5: 122, 6: 154, 7: 178, 8: 221, 9: 262, 10: 311}
SCALE = 4
QUIET_ZONE = 4


def require_node() -> str:
    node = shutil.which("node")
    if node is None:
        message = "Node.js (`node`) is not installed; the page's JavaScript cannot be run"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return node


def encode_with_js(texts: list[str], masks: list[int | None] | None = None) -> list[dict]:
    completed = subprocess.run(
        [require_node(), str(DRIVER), json.dumps(masks or [])],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(completed.stdout)


def render_png(modules: list[list[int]]) -> Image.Image:
    width = (len(modules) + 2 * QUIET_ZONE) * SCALE
    image = Image.new("L", (width, width), 255)
    for y, row in enumerate(modules):
        for x, dark in enumerate(row):
            if dark:
                left, top = (x + QUIET_ZONE) * SCALE, (y + QUIET_ZONE) * SCALE
                image.paste(0, (left, top, left + SCALE, top + SCALE))
    return image


def decode(modules: list[list[int]], tmp_path: Path, name: str) -> zxingcpp.Barcode:
    path = tmp_path / f"{name}.png"
    render_png(modules).save(path)
    with Image.open(path) as png:
        barcodes = zxingcpp.read_barcodes(png, formats=zxingcpp.BarcodeFormat.QRCode)
    assert len(barcodes) == 1, f"zxing-cpp found {len(barcodes)} QR codes in {name}"
    return barcodes[0]


def python_qrcode(text: str, mask: int | None = None) -> qrcode.QRCode:
    # An explicit alphanumeric segment: qrcode's default optimiser would split digit runs into
    # numeric-mode segments, a different (legal) encoding from the one qr.js uses.
    qr = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=0, mask_pattern=mask
    )
    qr.add_data(QRData(text, mode=MODE_ALPHA_NUM))
    return qr


def random_tv2_text(rng: random.Random) -> str:
    # The real shape: credential (125) + step (4) + device signature (64) = 193 bytes.
    return "TV2:" + base45.b45encode(rng.randbytes(193)).decode("ascii")


def random_text(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(ALPHANUMERIC) for _ in range(length))


def sample_texts() -> list[str]:
    rng = random.Random(20241101)
    texts = ["HELLO WORLD", "0", ALPHANUMERIC, "TV2:", random_tv2_text(rng)]
    for capacity in CAPACITY_M.values():
        # The longest text each version holds, one character more, and one a little shorter.
        texts += [random_text(rng, capacity), random_text(rng, capacity - 7)]
        if capacity < CAPACITY_M[10]:
            texts.append(random_text(rng, capacity + 1))
    return texts


@pytest.fixture(scope="module")
def samples() -> list[tuple[str, dict]]:
    texts = sample_texts()
    return list(zip(texts, encode_with_js(texts), strict=True))


def test_samples_cover_every_version_and_a_tv2_text(samples):
    assert {result["version"] for _, result in samples} == set(range(1, 11))
    tv2 = [text for text, _ in samples if text.startswith("TV2:") and len(text) == 4 + 96 * 3 + 2]
    assert len(tv2) == 1  # "TV2:" + Base45 of 193 bytes = 4 + 96 triples + 1 pair


def test_zxing_decodes_every_symbol_back_to_its_text(samples, tmp_path):
    for i, (text, result) in enumerate(samples):
        barcode = decode(result["modules"], tmp_path, f"sample{i}")
        assert barcode.text == text
        assert barcode.ec_level == "M"
        assert barcode.extra["Version"] == str(result["version"])
        assert barcode.extra["DataMask"] == result["mask"]


def test_version_is_the_smallest_that_fits_at_level_m(samples):
    for text, result in samples:
        assert result["version"] == python_qrcode(text).best_fit(), len(text)
        assert result["size"] == 17 + 4 * result["version"] == len(result["modules"])


def test_the_tv2_text_fits_version_10(samples):
    tv2 = next(result for text, result in samples if text.startswith("TV2:") and len(text) > 200)
    assert tv2["version"] == 10


def test_matrix_equals_python_qrcode_for_the_same_mask(samples):
    # Same version, data, EC codewords, interleaving, format and version info: bit for bit.
    for text, result in samples:
        qr = python_qrcode(text, mask=result["mask"])
        qr.make(fit=True)
        expected = [[int(module) for module in row] for row in qr.get_matrix()]
        assert result["modules"] == expected, f"{len(text)} characters"


def test_every_mask_decodes(tmp_path):
    # Version 10 has version-info blocks and six alignment patterns, the most that can go wrong.
    text = random_tv2_text(random.Random(7))
    results = encode_with_js([text] * 8, masks=list(range(8)))
    for mask, result in enumerate(results):
        barcode = decode(result["modules"], tmp_path, f"mask{mask}")
        assert (barcode.text, barcode.extra["DataMask"]) == (text, mask)
        assert result["version"] == 10


def test_chosen_mask_has_the_lowest_iso_penalty():
    # qrcode's util.lost_point scores a finished symbol by the ISO 18004 penalty rules; qr.js must
    # pick the mask with the lowest score (the first on a tie). qrcode's own choice is not the
    # oracle: it scores masks with the format bits blanked, so it can pick a different mask.
    rng = random.Random(3)
    texts = [random_text(rng, rng.randint(1, CAPACITY_M[10])) for _ in range(16)]
    chosen = encode_with_js(texts)
    every_mask = encode_with_js([t for t in texts for _ in range(8)], masks=[*range(8)] * 16)
    for i, result in enumerate(chosen):
        scores = [lost_point(every_mask[8 * i + mask]["modules"]) for mask in range(8)]
        assert result["mask"] == min(range(8), key=lambda mask: (scores[mask], mask))
    assert len({result["mask"] for result in chosen}) > 1


def test_one_character_past_version_10_needs_version_11():
    assert python_qrcode("A" * (CAPACITY_M[10] + 1)).best_fit() == 11


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A" * (CAPACITY_M[10] + 1), "version above 10"),
        ("9" * 400, "version above 10"),
        ("tv2:abc", "not in the QR alphanumeric set"),
        ("TV2:É", "not in the QR alphanumeric set"),
    ],
)
def test_text_that_does_not_fit_throws(text, reason):
    [result] = encode_with_js([text])
    assert "modules" not in result
    assert result["error"].startswith("RangeError")
    assert reason in result["error"]
