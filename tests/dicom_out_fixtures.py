"""Writes the multi-frame grayscale source of tests/dicom_out.rs: a Multi-frame Grayscale Word Secondary
Capture image of 3 frames made from pydicom's MR_small.dcm (its patient and study, new series and instance).

Why not a multi-frame file of the pydicom wheel: its grayscale ones are RT Dose objects, which are not image
SOP classes (an SR IMAGE reference or an SCOORD must point at an image; dcmtk refuses the SR otherwise),
and its image multi-frames are colour. Deterministic: the same bytes on every run.

Usage: dicom_out_fixtures.py MR_small.dcm OUT.dcm
"""

import sys

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

MULTIFRAME_GRAYSCALE_WORD_SC = "1.2.840.10008.5.1.4.1.1.7.3"
FRAMES = 3
# Frame Increment Pointer: the frames are told apart by Frame Label Vector (0018,2002).
FRAME_LABEL_VECTOR = 0x00182002
COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
          "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")


def main(src_path, out_path):
    src = pydicom.dcmread(src_path)
    frame = np.clip(src.pixel_array.astype(np.int32), 0, 65535).astype(np.uint16)
    # Three different frames, so a reference to the wrong frame would show.
    frames = np.stack([frame, frame[:, ::-1], frame // 2])

    ds = Dataset()
    for keyword in COPIED:
        if keyword in src:
            setattr(ds, keyword, src.data_element(keyword).value)
    entropy = [src.SOPInstanceUID, "unimed dicom_out multi-frame fixture"]
    ds.SOPClassUID = MULTIFRAME_GRAYSCALE_WORD_SC
    ds.SOPInstanceUID = generate_uid(entropy_srcs=entropy + ["instance"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=entropy + ["series"])
    ds.Modality = "OT"
    ds.SeriesNumber = 77
    ds.InstanceNumber = 1
    ds.ConversionType = "WSD"
    ds.BurnedInAnnotation = "NO"
    ds.Laterality = None  # type 2C, empty
    ds.PatientOrientation = None  # type 2C, empty
    ds.PresentationLUTShape = "IDENTITY"
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = frame.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = FRAMES
    ds.FrameIncrementPointer = FRAME_LABEL_VECTOR
    ds.FrameLabelVector = [f"frame {i + 1}" for i in range(FRAMES)]
    ds.WindowCenter = 600
    ds.WindowWidth = 1600
    ds.PixelData = frames.tobytes()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.save_as(out_path, enforce_file_format=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
