"""The one image loader: pixel-count check from the header, downscale on load, per-post `ImageError`."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from gemner.data.images import ImageError, check_image, load_image, original_size, to_loaded, to_original
from imagefiles import blank_png

SRC = Path(__file__).resolve().parents[1] / "src" / "gemner"


def test_a_huge_image_is_refused_from_its_header(tmp_path):
    path = blank_png(tmp_path / "huge.png", 20000, 20000)  # 400 Mpx: Pillow itself raises a bomb error
    with pytest.raises(ImageError, match="over the limit"):
        load_image(path)
    with pytest.raises(ImageError, match="over the limit"):
        check_image(path)


def test_a_large_image_is_downscaled_and_keeps_its_file_size(tmp_path, monkeypatch):
    path = tmp_path / "wide.png"
    Image.new("RGB", (400, 200), (10, 20, 30)).save(path)
    image = load_image(path, limit_side=100)
    assert image.size == (100, 50) and image.mode == "RGB" and original_size(image) == (400, 200)
    assert to_original(image, [10, 5, 50, 25]) == [40, 20, 200, 100]
    assert to_loaded(image, [40, 20, 200, 100]) == [10, 5, 50, 25]
    monkeypatch.setenv("GEMNER_MAX_IMAGE_SIDE", "80")
    assert load_image(path).size == (80, 40)
    monkeypatch.setenv("GEMNER_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageError, match="400x200"):
        load_image(path)


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_broken_and_missing_files_are_one_image_error(tmp_path, content):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match="unreadable image"):
        load_image(path)
    with pytest.raises(ImageError, match="not found"):
        load_image(tmp_path / "absent.png")


def test_a_10000_pixel_square_costs_little_memory(tmp_path):
    """A 12 KB 10000x10000 PNG used to cost 2.2 GB per image; loaded now it is 2048 pixels wide."""
    path = blank_png(tmp_path / "big.png", 10000, 10000)
    # VmHWM, not ru_maxrss: the latter survives exec, so a child of a large pytest process would report
    # its parent's peak.
    script = textwrap.dedent(f"""
        from pathlib import Path
        from gemner.data.images import load_image
        image = load_image({str(path)!r})
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
        print(image.size, int(status["VmHWM"].split()[0]) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(SRC.parent), "PATH": "/usr/bin:/bin"})
    size, peak_mb = done.stdout.rsplit(" ", 1)
    assert size == "(2048, 2048)"
    assert int(peak_mb) < 400, f"peak memory {peak_mb} MB"  # 116 MB measured; Pillow open + RGB: 492 MB


def test_every_image_goes_through_the_one_loader():
    """Decoding lives in `gemner.data.images` only (pictures and plots write images, never read them)."""
    readers = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
               if re.search(r"Image\.open\(|def load_image\(", p.read_text()) and p.name != "images.py"]
    assert readers == []
