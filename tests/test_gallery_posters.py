"""Video poster frames for gallery thumbnails: made where a decoder is (PyAV, else ffmpeg on PATH), the
first frame's picture in the usual WebP sizes; elsewhere the video keeps its placeholder and nothing fails.

The video is one the test writes by hand: Motion-JPEG frames in an AVI (RIFF) container, the simplest
file both ffmpeg and PyAV decode, which probe what a file holds rather than trust its name (it is saved
as ``.mp4``, a name the gallery indexes). Where ffmpeg is not installed, ``ffmpeg`` is a local stand-in
speaking its command line (``-i file:<path> -frames:v 1 -f image2pipe -c:v png -``): it answers the
first JPEG frame of the file as PNG on stdout, as ffmpeg does.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from PIL import Image

from studio.gallery import posters
from studio.services import Services
from tests.gallery_helpers import gallery_items, put_file

FAKE_FFMPEG = '''#!{python}
import io, sys
from PIL import Image
args = sys.argv[1:]
source = args[args.index("-i") + 1].removeprefix("file:")
data = open(source, "rb").read()
start = data.find(b"\\xff\\xd8")
end = data.find(b"\\xff\\xd9", start)
if start < 0 or end < 0:
    sys.stderr.write(source + ": Invalid data found when processing input\\n")
    sys.exit(1)
out = io.BytesIO()
Image.open(io.BytesIO(data[start:end + 2])).save(out, "PNG")
sys.stdout.buffer.write(out.getvalue())
'''


def mjpeg_avi(colors: list[tuple[int, int, int]], size: tuple[int, int] = (64, 48), fps: int = 10) -> bytes:
    """An AVI of Motion-JPEG frames, one per colour: RIFF AVI, hdrl (avih, strl: strh + strf), movi, idx1."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return kind + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")

    def listed(kind: bytes, data: bytes) -> bytes:
        return chunk(b"LIST", kind + data)

    frames = []
    for color in colors:
        buffer = io.BytesIO()
        Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
        frames.append(buffer.getvalue())
    width, height = size
    biggest = max(len(f) for f in frames)
    avih = struct.pack("<10I4I", 1_000_000 // fps, biggest * fps, 0, 0x10, len(frames), 0, 1, biggest, width, height,
                       0, 0, 0, 0)
    strh = b"vids" + b"MJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, fps, 0, len(frames), biggest,
                                           0xFFFFFFFF, 0, 0, 0, width, height)
    strf = struct.pack("<IiiHH4sIiiII", 40, width, height, 1, 24, b"MJPG", width * height * 3, 0, 0, 0, 0)
    hdrl = listed(b"hdrl", chunk(b"avih", avih) + listed(b"strl", chunk(b"strh", strh) + chunk(b"strf", strf)))
    movi_data, index, offset = b"", b"", 4
    for frame in frames:
        piece = chunk(b"00dc", frame)
        index += b"00dc" + struct.pack("<III", 0x10, offset, len(frame))
        movi_data += piece
        offset += len(piece)
    return chunk(b"RIFF", b"AVI " + hdrl + listed(b"movi", movi_data) + chunk(b"idx1", index))


@pytest.fixture
def a_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """PyAV or ffmpeg as this machine has them; the ffmpeg stand-in where it has neither."""
    if importlib.util.find_spec("av") is None and shutil.which("ffmpeg") is None:
        tools = tmp_path / "bin"
        tools.mkdir()
        script = tools / "ffmpeg"
        script.write_text(FAKE_FFMPEG.format(python=sys.executable))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ.get('PATH', '')}")
    posters.decoder.cache_clear()
    found = posters.decoder()
    assert found is not None
    yield found
    posters.decoder.cache_clear()


@pytest.fixture
def no_decoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A machine with neither: no ffmpeg on PATH, PyAV not installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else real(name, *a))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    posters.decoder.cache_clear()
    yield
    posters.decoder.cache_clear()


def test_a_videos_first_frame_becomes_its_thumbnails(
        a_decoder: str, client: FlaskClient, services: Services) -> None:
    put_file(services.data_dir.outputs, "clips/fox.mp4", mjpeg_avi([(220, 30, 30), (30, 30, 220)], (96, 48)))
    put_file(services.data_dir.outputs, "clips/broken.mp4", b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64)
    assert services.gallery.index.reconcile()["added"] == 2
    by_name = {item["filename"]: item for item in gallery_items(client)}
    fox = by_name["fox.mp4"]
    assert fox["kind"] == "video"
    with client.get(fox["thumbs"]["256"]) as answer:
        assert answer.status_code == 200, (a_decoder, answer.get_json())
        assert answer.mimetype == "image/webp"
        poster = Image.open(io.BytesIO(answer.get_data())).convert("RGB")
    assert poster.size == (96, 48)  # never enlarged; the video's shape
    red, green, blue = poster.getpixel((48, 24))  # type: ignore[misc]
    assert red > 150, (a_decoder, red, green, blue)  # the first frame (red), not the second (blue)
    assert blue < 90, (a_decoder, red, green, blue)
    broken = by_name["broken.mp4"]
    assert client.get(broken["thumbs"]["256"]).status_code == 404  # not a video: no thumbnail, no error
    assert client.get(f"/api/gallery/items/{broken['id']}").get_json()["thumbs"] is None  # and not asked again
    assert not list((services.data_dir.gallery / "thumbs").glob(".poster-*"))  # the frame's PNG is removed


def test_without_a_decoder_a_video_keeps_its_placeholder(
        no_decoder: None, client: FlaskClient, services: Services) -> None:
    put_file(services.data_dir.outputs, "clips/fox.mp4", mjpeg_avi([(220, 30, 30)]))
    assert services.gallery.index.reconcile()["added"] == 1
    [fox] = gallery_items(client)
    assert (fox["kind"], fox["thumbs"]) == ("video", None)
    assert client.get(f"/api/gallery/items/{fox['id']}/thumb/256.webp").status_code == 404
