#!/usr/bin/env python3
"""Writes tests/fixtures/input/: synthetic images, what Pillow makes of them, and DICOM renderings
computed independently with pydicom + numpy. The Rust tests (tests/input_*.rs) compare against these.

What each expected file is:
- <case>.rgb.png: `Image.open(input).convert("RGB")` (the reference's first step), exact.
- <case>.224.png: that, `.resize((224, 224), Image.BICUBIC)` (torchvision `Resize` on a PIL image).
- dicom_*.png: the 8-bit frame computed here from pydicom's `pixel_array` with the DICOM formulas
  (modality LUT, PS3.3 C.11.2.1.2 linear VOI, round half up, MONOCHROME1 inversion).
`fixtures.json` lists every case and records the library versions used.

Run from the repository root: .venv/bin/python export/scripts/make_input_fixtures.py
It is deterministic (fixed seeds); rerun it after changing a case and commit the outputs.
"""
from __future__ import annotations

import hashlib
import json
import platform
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import PIL
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "input"
SIZE = 224
# Window presets (center, width) in HU; must match src/input/window.rs.
PRESETS = {
    "lung": (-600, 1500),
    "mediastinum": (50, 350),
    "bone": (400, 1800),
    "brain": (40, 80),
    "soft-tissue": (50, 400),
}


class FixtureError(RuntimeError):
    pass


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def scene(w: int, h: int, seed: int) -> np.ndarray:
    """A photo-like RGB test scene: gradients, hard-edged shapes (ringing of the cubic's negative
    lobes shows there), thin lines and a little texture, uint8 HxWx3. Flat regions keep PNGs small."""
    r = rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 40 + 180 * x / max(w - 1, 1)
    img[..., 1] = 200 - 150 * y / max(h - 1, 1)
    # A 5×4 checkerboard: hard edges everywhere, and (unlike smooth 2-D patterns) cheap to store.
    img[..., 2] = 60 + 120 * ((x * 5 // w + y * 4 // h) % 2)
    for _ in range(6):
        cx, cy = r.uniform(0, w), r.uniform(0, h)
        rad = r.uniform(0.05, 0.3) * min(w, h)
        colour = r.integers(0, 256, 3)
        mask = (x - cx) ** 2 + (y - cy) ** 2 < rad**2
        img[mask] = colour
    for _ in range(3):
        x0, y0 = int(r.integers(0, w)), int(r.integers(0, h))
        img[y0 : y0 + max(h // 6, 1), x0 : x0 + max(w // 5, 1)] = r.integers(0, 256, 3)
    img[:, :: max(w // 9, 2)] = [255, 255, 255]
    img[:: max(h // 7, 2), :] = [0, 0, 0]
    # A small patch of texture (high frequencies) in one corner; larger ones would bloat the PNGs.
    th, tw = min(h, 12), min(w, 12)
    img[:th, :tw] = r.integers(0, 256, (th, tw, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def png16(path: Path, arr: np.ndarray, colour_type: int) -> None:
    """Writes a 16-bit PNG by hand (Pillow cannot write 16-bit RGB/RGBA/LA PNGs)."""
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[row].astype(">u2").tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def bomb_png(path: Path, w: int, h: int) -> None:
    """A valid PNG header claiming w×h, with a tiny (truncated) IDAT: must fail before allocating."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def save_rgb(img: Image.Image, path: Path) -> None:
    """Saves an RGB expectation as L when R = G = B (a third of the bytes; the tests replicate)."""
    arr = np.asarray(img)
    if (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all():
        img = Image.fromarray(arr[..., 0])
    img.save(path, optimize=True)


def sha256(img: Image.Image) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(img.convert("RGB"))).tobytes()).hexdigest()


def save_expected(name: str, src: Path, cases: list, rgb_file: bool = True, resize: bool = False,
                  hash_only: bool = False, note: str = "") -> None:
    """rgb_file: store convert("RGB") (skip it where it equals the RGB input); resize: store the
    224×224 BICUBIC result, as a PNG or (hash_only, to stay within the fixture size budget) as the
    sha256 of its raw RGB bytes, which the tests then match exactly."""
    with Image.open(src) as im:
        mode = im.mode
        rgb = im.convert("RGB")
    case = {"name": name, "input": src.name, "pil_mode": mode, "note": note}
    if rgb_file:
        save_rgb(rgb, OUT / f"{name}.rgb.png")
        case["rgb"] = f"{name}.rgb.png"
    if resize:
        out = rgb.resize((SIZE, SIZE), Image.BICUBIC)
        case["resized_sha256"] = sha256(out)
        if not hash_only:
            save_rgb(out, OUT / f"{name}.224.png")
            case["resized"] = f"{name}.224.png"
    cases.append(case)


def raster_cases() -> list:
    cases: list = []
    # Geometry: down, up, tiny, non-square, mixed directions.
    for name, (w, h), seed, hash_only in [
        ("down_1000x700", (1000, 700), 1, False),
        ("up_3x5", (3, 5), 2, True),
        ("up_1x1", (1, 1), 3, False),
        ("up_150x90", (150, 90), 4, True),
        ("mixed_300x120", (300, 120), 5, True),
    ]:
        p = OUT / f"{name}.png"
        Image.fromarray(scene(w, h, seed)).save(p, optimize=True)
        save_expected(name, p, cases, rgb_file=False, resize=True, hash_only=hash_only, note="geometry")
    p = OUT / "gray_200x260.png"
    Image.fromarray(scene(200, 260, 19)[..., 0]).save(p, optimize=True)
    save_expected("gray_200x260", p, cases, rgb_file=False, resize=True, note="geometry, grayscale")
    # Modes: PIL's convert("RGB") rules.
    base = scene(16, 12, 7)
    p = OUT / "mode_L.png"
    Image.fromarray(base[..., 1]).save(p)
    save_expected("mode_L", p, cases)
    p = OUT / "mode_LA.png"
    Image.fromarray(np.dstack([base[..., 0], base[..., 2]]), "LA").save(p)
    save_expected("mode_LA", p, cases)
    p = OUT / "mode_RGBA.png"
    Image.fromarray(np.dstack([base, rng(8).integers(0, 256, base.shape[:2], dtype=np.uint8)]), "RGBA").save(p)
    save_expected("mode_RGBA", p, cases, note="alpha dropped, no compositing")
    p = OUT / "mode_P.png"
    Image.fromarray(base).quantize(colors=16, dither=Image.Dither.NONE).save(p, transparency=3)
    save_expected("mode_P", p, cases, note="palette with a transparent index")
    p = OUT / "mode_1.png"
    Image.fromarray(base[..., 0] > 128).save(p)
    save_expected("mode_1", p, cases, note="bilevel")
    g16 = (rng(9).integers(0, 1200, (12, 16))).astype(np.uint16)
    p = OUT / "mode_I16.png"
    Image.fromarray(g16).save(p)
    save_expected("mode_I16", p, cases, note="16-bit gray: PIL I;16 -> RGB clips at 255")
    p = OUT / "mode_I16.tif"
    Image.fromarray(g16).save(p)
    save_expected("mode_I16_tif", p, cases, note="16-bit gray TIFF: same as PNG")
    p = OUT / "rgb16.png"
    png16(p, rng(10).integers(0, 65536, (12, 16, 3)).astype(np.uint16), 2)
    save_expected("rgb16", p, cases, note="16-bit RGB PNG: PIL keeps the high byte")
    p = OUT / "rgba16.png"
    png16(p, rng(11).integers(0, 65536, (12, 16, 4)).astype(np.uint16), 6)
    save_expected("rgba16", p, cases, note="16-bit RGBA PNG: high byte, alpha dropped")
    p = OUT / "la16.png"
    png16(p, rng(12).integers(0, 65536, (12, 16, 2)).astype(np.uint16), 4)
    save_expected("la16", p, cases, note="16-bit LA PNG: PIL opens as RGBA from the high bytes")
    p = OUT / "mode_RGB.bmp"
    Image.fromarray(base).save(p)
    save_expected("bmp", p, cases)
    p = OUT / "photo.jpg"
    Image.fromarray(scene(64, 48, 13)).save(p, quality=90)
    save_expected("jpeg", p, cases, note="baseline 4:2:0 JPEG: decoder differences (zune-jpeg vs libjpeg-turbo)")
    p = OUT / "gray.jpg"
    Image.fromarray(scene(32, 24, 14)[..., 0]).save(p, quality=90)
    save_expected("jpeg_gray", p, cases)
    p = OUT / "cmyk.jpg"
    cmyk = np.dstack([scene(24, 16, 15), rng(16).integers(0, 256, (16, 24), dtype=np.uint8)])
    Image.fromarray(cmyk, "CMYK").save(p, quality=95)
    save_expected("jpeg_cmyk", p, cases, note="Adobe CMYK JPEG")
    # Animated PNG: PIL's open gives the first frame.
    p = OUT / "anim.png"
    frames = [Image.fromarray(scene(24, 16, 17)), Image.fromarray(scene(24, 16, 18))]
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    save_expected("apng", p, cases, note="APNG: first frame")
    # Formats that must fail cleanly.
    frames[0].save(OUT / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    bomb_png(OUT / "bomb_100000x100000.png", 100_000, 100_000)
    return cases


def window_linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, output 0..255, written independently of the Rust code."""
    lo = x <= c - 0.5 - (w - 1) / 2
    hi = x > c - 0.5 + (w - 1) / 2
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
    y = np.where(lo, 0.0, np.where(hi, 255.0, y))
    return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, np.uint8)
    return np.clip(np.floor((x - lo) / (hi - lo) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def modality(ds: pydicom.Dataset, arr: np.ndarray) -> np.ndarray:
    slope = float(ds.get("RescaleSlope", 1.0))
    intercept = float(ds.get("RescaleIntercept", 0.0))
    return arr.astype(np.float64) * slope + intercept


def first_value(v) -> float:
    return float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)


def dicom_cases() -> list:
    cases: list = []

    def add(name: str, file: str, expected: np.ndarray, store: str | None = None, hash_only: bool = False,
            **opts) -> None:
        """store: reuse an expectation file already written (identical pixels); hash_only: record
        the sha256 of the RGB bytes instead of a PNG (exact match; keeps large frames out of git)."""
        rgb = expected if expected.ndim == 3 else np.repeat(expected[..., None], 3, axis=2)
        case = {"name": name, "file": file, "expected_sha256": hashlib.sha256(np.ascontiguousarray(rgb).tobytes()).hexdigest()}
        if not hash_only:
            if store is None:
                store = f"dicom_{name}.png"
                Image.fromarray(expected).save(OUT / store, optimize=True)
            case["expected"] = store
        cases.append({**case, **opts})

    ct_path = get_testdata_file("CT_small.dcm")
    ct = pydicom.dcmread(ct_path)
    hu = modality(ct, ct.pixel_array)
    add("ct_minmax", "CT_small.dcm", minmax(hu), source="MinMax")
    add("ct_window_40_400", "CT_small.dcm", window_linear(hu, 40, 400), window=[40, 400], source="Explicit")
    for preset, (c, w) in PRESETS.items():
        add(f"ct_preset_{preset}", "CT_small.dcm", window_linear(hu, c, w), preset=preset, source="Preset")

    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    c, w = first_value(mr.WindowCenter), first_value(mr.WindowWidth)
    mr8 = window_linear(modality(mr, mr.pixel_array), c, w)
    for f in ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm"]:
        other = pydicom.dcmread(get_testdata_file(f))
        if not np.array_equal(other.pixel_array, mr.pixel_array):
            raise FixtureError(f"{f}: pixel_array differs from MR_small.dcm; the shared expectation would be wrong")
        add(f"mr_file_window_{Path(f).stem}", f, mr8, store=None if f == "MR_small.dcm" else "dicom_mr_file_window_MR_small.png", source="File")

    # MONOCHROME1: MR_small relabelled (no such file in pydicom's test set). Same stored values,
    # so the expected image is the inverted MONOCHROME2 rendering.
    mono1 = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mono1.PhotometricInterpretation = "MONOCHROME1"
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
        if keyword in mono1:
            setattr(mono1, keyword, "")
    mono1.save_as(OUT / "mr_small_monochrome1.dcm", enforce_file_format=True)
    add("mr_monochrome1", "fixtures:mr_small_monochrome1.dcm", 255 - mr8, source="File")

    # Multi-frame, 32-bit unsigned: frame 3 of rtdose.dcm (no window: min/max of that frame).
    dose = pydicom.dcmread(get_testdata_file("rtdose.dcm"))
    add("rtdose_frame3", "rtdose.dcm", minmax(modality(dose, dose.pixel_array[3])), frame=3, frames=int(dose.NumberOfFrames), source="MinMax")

    # More transfer syntaxes and layouts, checked by hash: deflate (8-bit), JPEG 2000 (CT, 14 bits
    # stored, signed, file window), 1-bit SEG, 12-bit MR with two windows (the first is used).
    dfl = pydicom.dcmread(get_testdata_file("image_dfl.dcm"))
    add("deflate_minmax", "image_dfl.dcm", minmax(modality(dfl, dfl.pixel_array)), hash_only=True, source="MinMax")
    j2k = pydicom.dcmread(get_testdata_file("693_J2KI.dcm"))
    add("ct_j2k_file_window", "693_J2KI.dcm",
        window_linear(modality(j2k, j2k.pixel_array), first_value(j2k.WindowCenter), first_value(j2k.WindowWidth)),
        hash_only=True, source="File")
    seg = pydicom.dcmread(get_testdata_file("liver_1frame.dcm"))
    add("seg_1bit", "liver_1frame.dcm", minmax(seg.pixel_array.astype(np.float64)), hash_only=True, source="MinMax")
    ov = pydicom.dcmread(get_testdata_file("examples_overlay.dcm"))
    add("mr_12bit_first_window", "examples_overlay.dcm",
        window_linear(modality(ov, ov.pixel_array), first_value(ov.WindowCenter), first_value(ov.WindowWidth)),
        hash_only=True, source="File")

    # Native YBR_FULL (no such file in pydicom's set): a crop of the ultrasound image converted by
    # pydicom; the expectation is pydicom's own YBR_FULL -> RGB conversion of it.
    from pydicom.pixels import convert_color_space
    src = pydicom.dcmread(get_testdata_file("examples_rgb_color.dcm"))
    crop = np.ascontiguousarray(src.pixel_array[80:128, 100:164])
    ybr_ds = pydicom.dcmread(get_testdata_file("examples_rgb_color.dcm"))
    ybr_ds.Rows, ybr_ds.Columns = crop.shape[:2]
    ybr_ds.PhotometricInterpretation = "YBR_FULL"
    ybr_ds.PixelData = convert_color_space(crop, "RGB", "YBR_FULL").tobytes()
    for keyword in ("PatientName", "PatientID", "PatientBirthDate"):
        if keyword in ybr_ds:
            setattr(ybr_ds, keyword, "")
    ybr_ds.save_as(OUT / "ybr_full_native.dcm", enforce_file_format=True)
    back = pydicom.dcmread(OUT / "ybr_full_native.dcm").pixel_array
    add("ybr_full_native", "fixtures:ybr_full_native.dcm", back)

    # Colour: native RGB (a real ultrasound image) and multi-frame RLE RGB.
    rgb = pydicom.dcmread(get_testdata_file("examples_rgb_color.dcm"))
    rgb_arr = rgb.pixel_array
    # A real image: checked by hash (exact), the full frame and its 224×224 resize.
    cases.append({"name": "us_rgb", "file": "examples_rgb_color.dcm", "expected": None,
                  "rgb_sha256": sha256(Image.fromarray(rgb_arr)),
                  "resized_sha256": sha256(Image.fromarray(rgb_arr).resize((SIZE, SIZE), Image.BICUBIC))})
    rle2 = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    add("rgb_rle_frame1", "SC_rgb_rle_2frame.dcm", rle2.pixel_array[1], frame=1)
    rle16 = pydicom.dcmread(get_testdata_file("SC_rgb_rle_16bit.dcm"))
    full = float(2 ** int(rle16.BitsStored) - 1)
    add("rgb_rle_16bit", "SC_rgb_rle_16bit.dcm", np.clip(np.floor(rle16.pixel_array * 255.0 / full + 0.5), 0, 255).astype(np.uint8))
    # YBR_FULL_422 inside JPEG baseline, 30 frames (pydicom decodes with Pillow / libjpeg).
    ybr = pydicom.dcmread(get_testdata_file("examples_ybr_color.dcm"))
    ybr_arr = ybr.pixel_array
    # Only a band of rows is stored (size budget); it holds most of the image's detail.
    band = [64, 160]
    add("us_ybr_jpeg_frame0", "examples_ybr_color.dcm", ybr_arr[0][band[0]:band[1]], frame=0,
        frames=int(ybr.NumberOfFrames), rows=band)
    return cases


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "export/scripts/make_input_fixtures.py",
        "versions": {
            "python": platform.python_version(),
            "pillow": PIL.__version__,
            "numpy": np.__version__,
            "pydicom": pydicom.__version__,
        },
        "size": SIZE,
        "raster": raster_cases(),
        "dicom": dicom_cases(),
    }
    (OUT / "fixtures.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
