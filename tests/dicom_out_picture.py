"""Draws a Grayscale Softcopy Presentation State over its source image, as a viewer would, for docs/CLI.md.

The grayscale rendering is dcmtk's: `dcmp2pgm --pstate` applies the presentation state's modality LUT, VOI
window and presentation LUT to the source frame. dcmp2pgm does not draw graphics (its manual says so), so the
graphic objects (polylines, in PIXEL units) and text objects of the state are read with pydicom and drawn
with Pillow on the enlarged rendering.

Usage: dicom_out_picture.py SOURCE.dcm GSPS.dcm OUT.png [SCALE]
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import pydicom
from PIL import Image, ImageDraw

# Enlargement of the (small) test images so the box and its label are readable.
DEFAULT_SCALE = 4
BOX_RGB = (255, 214, 0)
TEXT_MARGIN = 3


def main(source, gsps, out, scale=DEFAULT_SCALE):
    ps = pydicom.dcmread(gsps)
    frame = 1
    ref = ps.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    if "ReferencedFrameNumber" in ref:
        frame = int(ref.ReferencedFrameNumber)
    with tempfile.TemporaryDirectory() as tmp:
        pgm = Path(tmp) / "rendered.pgm"
        subprocess.run(["dcmp2pgm", "--frame", str(frame), "--pstate", gsps, source, str(pgm)], check=True)
        gray = Image.open(pgm).convert("RGB")
    image = gray.resize((gray.width * scale, gray.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(image)
    for annotation in ps.GraphicAnnotationSequence:
        for graphic in annotation.get("GraphicObjectSequence", []):
            assert graphic.GraphicAnnotationUnits == "PIXEL", graphic.GraphicAnnotationUnits
            data = [float(v) * scale for v in graphic.GraphicData]
            points = list(zip(data[0::2], data[1::2]))
            draw.line(points, fill=BOX_RGB, width=2)
        for text in annotation.get("TextObjectSequence", []):
            x, y = (float(v) * scale for v in text.AnchorPoint)
            at = (x + TEXT_MARGIN, y + TEXT_MARGIN)
            # A dark backing keeps the label readable over bone.
            draw.rectangle(draw.textbbox(at, text.UnformattedTextValue), fill=(0, 0, 0))
            draw.text(at, text.UnformattedTextValue, fill=BOX_RGB)
    image.save(out)


if __name__ == "__main__":
    main(*sys.argv[1:4], *(int(a) for a in sys.argv[4:5]))
