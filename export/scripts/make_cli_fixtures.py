#!/usr/bin/env python3
"""Writes tests/fixtures/cli/: inputs and expected renderings for the `unimed` CLI tests (tests/cli_*.rs).

What it writes:
- scene_96x80.png: a small non-square RGB image (PNG input of every task; `--draw` size checks).
- patient_ct.dcm: pydicom's CT_small.dcm with known sentinel values in the patient-identifying attributes
  (PatientName, PatientID, birth date, accession number, institution, referring physician, ...). The leak test
  checks that none of these strings reaches stdout, stderr or any file the CLI writes.
- patient_jpegls.dcm: MR_small_jpeg_ls_lossless.dcm with the same sentinels: a file this build cannot decode
  (JPEG-LS), so the leak test also covers the error path.
- mr_monochrome1.dcm: MR_small.dcm relabelled MONOCHROME1 (pydicom ships no MONOCHROME1 file).
- expected/<case>.png: the 8-bit grayscale frame a DICOM viewer shows, computed here from pydicom's `pixel_array`
  with numpy and the DICOM formulas (modality LUT; PS3.3 C.11.2.1.2.1 linear VOI; min/max when there is no
  window; round half up; MONOCHROME1 inverted). RGB cases store the RGB frame.
- cases.json: every case (input file, CLI flags, expected file), the sentinels, versions and input hashes.

This is deliberately independent of src/input/ and of export/scripts/make_input_fixtures.py: the CLI tests check
the binary against numbers computed a second way.

Run from the repository root: .venv/bin/python export/scripts/make_cli_fixtures.py
Deterministic; rerun after changing a case and commit the outputs (they are small: ~80 KB in all).
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import PIL
import pydicom
from PIL import Image
from pydicom.data import get_testdata_file

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "fixtures" / "cli"
Y_MAX = 255.0

# Named CT windows (center, width) in HU, as documented for `--preset` in docs/CLI.md.
PRESETS = {"lung": (-600.0, 1500.0), "bone": (400.0, 1800.0)}

# Strings that must never appear in any output. Distinctive, so a match cannot be a coincidence.
SENTINELS = {
    "PatientName": "Leakcheck^Zebulon^Quixote",
    "PatientID": "PID-7731-XQZ",
    "PatientBirthDate": "19230417",
    "OtherPatientIDs": "OPID-5521-XQZ",
    "AccessionNumber": "ACC-99017-XQZ",
    "InstitutionName": "Quixote Memorial Hospital",
    "ReferringPhysicianName": "Refdoc^Yolanda",
    "PatientAddress": "17 Sentinel Lane, Zzyzx",
}


class FixtureError(RuntimeError):
    """A source file or case is not what this script expects (names the file and the attribute)."""


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def window_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 (LINEAR) to 0..255, then round half up."""
    if width < 1:
        raise FixtureError(f"window width {width}: expected >= 1")
    low = center - 0.5 - (width - 1) / 2
    high = center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * Y_MAX
    y = np.where(x <= low, 0.0, np.where(x > high, Y_MAX, y))
    return np.clip(np.floor(y + 0.5), 0, Y_MAX).astype(np.uint8)


def window_minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    if hi <= lo:
        return np.zeros(x.shape, np.uint8)
    return np.clip(np.floor((x - lo) / (hi - lo) * Y_MAX + 0.5), 0, Y_MAX).astype(np.uint8)


def modality_lut(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
    return stored.astype(np.float64) * float(ds.get("RescaleSlope", 1.0)) + float(ds.get("RescaleIntercept", 0.0))


def file_window(ds: pydicom.Dataset, name: str) -> tuple[float, float]:
    c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
    if c is None or w is None:
        raise FixtureError(f"{name}: expected WindowCenter/WindowWidth, found none")
    first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)
    return first(c), first(w)


def scene(w: int, h: int) -> np.ndarray:
    """Gradients and a few flat blocks: small as PNG, not symmetric (a transposed output would show)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 30 + 200 * x / (w - 1)
    img[..., 1] = 220 - 180 * y / (h - 1)
    img[..., 2] = 90
    img[h // 4 : h // 2, w // 5 : w // 2] = [250, 250, 40]
    img[h // 2 :, (2 * w) // 3 :] = [20, 40, 200]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def with_sentinels(src: str, dst: Path) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file(src))
    for keyword, value in SENTINELS.items():
        setattr(ds, keyword, value)
    ds.save_as(dst, enforce_file_format=True)
    back = pydicom.dcmread(dst)
    for keyword, value in SENTINELS.items():
        if str(back.get(keyword)) != value:
            raise FixtureError(f"{dst}: {keyword} reads back as {back.get(keyword)!r}, expected {value!r}")
    return back


def main() -> int:
    (OUT / "expected").mkdir(parents=True, exist_ok=True)
    cases = []

    def add(name: str, file: str, pixels: np.ndarray, flags: list, note: str) -> None:
        rel = f"expected/{name}.png"
        mode = "RGB" if pixels.ndim == 3 else "L"
        Image.fromarray(pixels, mode).save(OUT / rel, optimize=True)
        height, width = pixels.shape[:2]
        cases.append({"name": name, "file": file, "flags": flags, "expected": rel, "width": width, "height": height,
                      "note": note})

    Image.fromarray(scene(96, 80), "RGB").save(OUT / "scene_96x80.png", optimize=True)

    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = modality_lut(ct, ct.pixel_array)
    add("ct_window_40_400", "pydicom:CT_small.dcm", window_linear(hu, 40, 400), ["--window", "40,400"],
        "explicit window on HU (RescaleIntercept -1024)")
    add("ct_preset_lung", "pydicom:CT_small.dcm", window_linear(hu, *PRESETS["lung"]), ["--preset", "lung"],
        "named preset lung = -600/1500")
    add("ct_preset_bone", "pydicom:CT_small.dcm", window_linear(hu, *PRESETS["bone"]), ["--preset", "bone"],
        "named preset bone = 400/1800")
    add("ct_minmax", "pydicom:CT_small.dcm", window_minmax(hu), [], "no window in the file: min/max")

    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr_values = modality_lut(mr, mr.pixel_array)
    mr_file = window_linear(mr_values, *file_window(mr, "MR_small.dcm"))
    add("mr_file_window", "pydicom:MR_small.dcm", mr_file, [], "the file's WindowCenter/Width 600/1600")
    add("mr_jp2k_file_window", "pydicom:MR_small_jp2klossless.dcm", mr_file, [],
        "JPEG 2000 lossless of the same pixels: the same rendering")

    mono1 = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mono1.PhotometricInterpretation = "MONOCHROME1"
    mono1.save_as(OUT / "mr_monochrome1.dcm", enforce_file_format=True)
    add("mr_monochrome1", "fixtures:mr_monochrome1.dcm", (255 - mr_file).astype(np.uint8), [],
        "MONOCHROME1: windowed, then inverted")

    dose = pydicom.dcmread(get_testdata_file("rtdose.dcm"))
    frames = int(dose.NumberOfFrames)
    frame = 3
    if frames <= frame:
        raise FixtureError(f"rtdose.dcm: NumberOfFrames {frames}, expected more than {frame}")
    add("rtdose_frame3", "pydicom:rtdose.dcm", window_minmax(modality_lut(dose, dose.pixel_array[frame])),
        ["--frame", str(frame)], f"multi-frame ({frames} frames, 32-bit): frame {frame}, min/max")

    rgb = pydicom.dcmread(get_testdata_file("SC_rgb_rle_2frame.dcm"))
    add("rgb_rle_frame1", "pydicom:SC_rgb_rle_2frame.dcm", np.ascontiguousarray(rgb.pixel_array[1]).astype(np.uint8),
        ["--frame", "1"], "RGB multi-frame (RLE), frame 1: samples as they are")

    with_sentinels("CT_small.dcm", OUT / "patient_ct.dcm")
    with_sentinels("MR_small_jpeg_ls_lossless.dcm", OUT / "patient_jpegls.dcm")

    record = {
        "generator": "export/scripts/make_cli_fixtures.py",
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "pydicom": pydicom.__version__,
                     "pillow": PIL.__version__},
        "sentinels": SENTINELS,
        "inputs": {p.name: sha256_file(p) for p in sorted(OUT.glob("*.dcm")) + [OUT / "scene_96x80.png"]},
        "cases": cases,
    }
    (OUT / "cases.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {len(cases)} cases to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
