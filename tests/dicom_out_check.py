"""Reads unimed's DICOM output back with independent readers (pydicom and highdicom) and checks it against
what tests/dicom_out.rs wrote: the SR's content tree (task, question, answer, label, SCOORD box in source
pixel coordinates, image references to the source SOP Instance and frame), the study and patient copied
from the source, and the presentation state's box, references and rendering.

Usage: dicom_out_check.py CASES.json   (a list of cases; see `check_case`). Exit 0 when every case holds;
otherwise the first failure is raised with the file and the attribute that differ.
"""

import json
import sys

import highdicom as hd
import numpy as np
import pydicom

COMPREHENSIVE_SR = "1.2.840.10008.5.1.4.1.1.88.33"
GSPS = "1.2.840.10008.5.1.4.1.1.11.1"
PRIVATE_SCHEME = "99UNIMED"
NOT_FOR_DIAGNOSTIC_USE = "NOT FOR DIAGNOSTIC USE"
# Coordinates are written as FL (float32): compare with float32 resolution.
TOLERANCE = 1e-3


def fail(path, what, expected, got):
    raise AssertionError(f"{path}: {what}: expected {expected!r}, got {got!r}")


def expect(path, what, expected, got):
    if expected != got:
        fail(path, what, expected, got)


def rectangle(b):
    x1, y1, x2, y2 = b
    return [x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]


def expect_coords(path, what, box, got):
    want = np.array(rectangle(box), dtype=np.float64)
    got = np.asarray(got, dtype=np.float64).ravel()
    if want.shape != got.shape or not np.allclose(want, got, atol=TOLERANCE, rtol=0):
        fail(path, what, want.tolist(), got.tolist())


def expect_reference(path, what, ref, src, frame):
    expect(path, f"{what} ReferencedSOPClassUID", src.SOPClassUID, ref.ReferencedSOPClassUID)
    expect(path, f"{what} ReferencedSOPInstanceUID", src.SOPInstanceUID, ref.ReferencedSOPInstanceUID)
    if "NumberOfFrames" in src:
        got = [int(f) for f in np.atleast_1d(ref.get("ReferencedFrameNumber", []))]
        expect(path, f"{what} ReferencedFrameNumber", [frame + 1], got)
    elif "ReferencedFrameNumber" in ref:
        fail(path, f"{what} ReferencedFrameNumber", "absent (single-frame source)", ref.ReferencedFrameNumber)


def expect_study(path, ds, src):
    """The new object joins the source's study and patient, in a series of its own."""
    for keyword in ("StudyInstanceUID", "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                    "StudyDate", "StudyTime", "AccessionNumber", "StudyID", "ReferringPhysicianName"):
        expect(path, keyword, str(src.get(keyword, "")), str(ds.get(keyword, "")))
    for keyword in ("SeriesInstanceUID", "SOPInstanceUID"):
        uid = str(ds[keyword].value)
        if not uid.startswith("2.25.") or len(uid) > 64 or uid == str(src.get(keyword, "")):
            fail(path, keyword, "a new 2.25 UID", uid)
    if ds.SOPInstanceUID not in path:
        fail(path, "file name", "named from the SOP Instance UID", path)
    expect(path, "MediaStorageSOPInstanceUID", ds.SOPInstanceUID, ds.file_meta.MediaStorageSOPInstanceUID)
    equipment = ds.ContributingEquipmentSequence[0]
    if NOT_FOR_DIAGNOSTIC_USE not in equipment.ContributionDescription:
        fail(path, "ContributionDescription", NOT_FOR_DIAGNOSTIC_USE, equipment.ContributionDescription)


def concept(item):
    seq = item.get("ConceptNameCodeSequence")
    return (seq[0].CodeValue, seq[0].CodingSchemeDesignator) if seq else None


def by_concept(items, value, scheme=PRIVATE_SCHEME):
    return [i for i in items if concept(i) == (value, scheme)]


def one(path, items, value, scheme=PRIVATE_SCHEME):
    found = by_concept(items, value, scheme)
    if len(found) != 1:
        fail(path, f"content items ({scheme}, {value})", "exactly one", len(found))
    return found[0]


def check_sr(case, src):
    path = case["sr"]
    ds = pydicom.dcmread(path)
    expect(path, "SOPClassUID", COMPREHENSIVE_SR, ds.SOPClassUID)
    expect(path, "Modality", "SR", ds.Modality)
    expect(path, "VerificationFlag", "UNVERIFIED", ds.VerificationFlag)
    expect_study(path, ds, src)
    evidence = ds.CurrentRequestedProcedureEvidenceSequence[0]
    expect(path, "evidence StudyInstanceUID", src.StudyInstanceUID, evidence.StudyInstanceUID)
    series = evidence.ReferencedSeriesSequence[0]
    expect(path, "evidence SeriesInstanceUID", src.SeriesInstanceUID, series.SeriesInstanceUID)
    expect(path, "evidence ReferencedSOPInstanceUID", src.SOPInstanceUID,
           series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)

    items = list(ds.ContentSequence)
    expect(path, "root concept", ("AIR-RESULT", PRIVATE_SCHEME), concept(ds))
    expect(path, "Task", case["task"], one(path, items, "AIR-TASK").TextValue)
    expect(path, "Answer", case["answer"], one(path, items, "AIR-ANSWER").TextValue)
    questions = by_concept(items, "AIR-QUESTION")
    expect(path, "Question", [case["question"]] if case.get("question") else [],
           [q.TextValue for q in questions])
    labels = by_concept(items, "AIR-LABEL")
    expect(path, "Label", [case["label"]] if case.get("label") else [], [q.TextValue for q in labels])
    comment = one(path, items, "121106", "DCM").TextValue
    if NOT_FOR_DIAGNOSTIC_USE not in comment:
        fail(path, "Comment", NOT_FOR_DIAGNOSTIC_USE, comment)
    expect(path, "Algorithm Version mentions the bundle sha256", True,
           case["bundle_sha256"] in one(path, items, "111003", "DCM").TextValue)
    image = one(path, items, "AIR-SOURCE-IMAGE")
    expect_reference(path, "source image", image.ReferencedSOPSequence[0], src, case["frame"])

    box, concept_value = {
        "rec": (case.get("answer_box"), "111030"),
        "reg": (case.get("query_box"), "AIR-QUERY-REGION"),
    }.get(case["task"], (None, None))
    scoords = [i for i in items if i.ValueType == "SCOORD"]
    if box is None:
        expect(path, "SCOORD items", 0, len(scoords))
    else:
        expect(path, "SCOORD items", 1, len(scoords))
        scoord = scoords[0]
        expect(path, "SCOORD concept", concept_value, concept(scoord)[0])
        expect(path, "GraphicType", "POLYLINE", scoord.GraphicType)
        expect_coords(path, "SCOORD GraphicData", box, scoord.GraphicData)
        selected = scoord.ContentSequence[0]
        expect(path, "SCOORD child relationship", "SELECTED FROM", selected.RelationshipType)
        expect_reference(path, "SCOORD image", selected.ReferencedSOPSequence[0], src, case["frame"])

    # highdicom reads the document as a Comprehensive SR and parses the content tree into its typed
    # content items (an independent reading of value types, relationships and coordinates).
    hd.sr.ComprehensiveSR.from_dataset(ds)
    root = hd.sr.ContainerContentItem.from_dataset(ds)
    tree = list(root.ContentSequence)
    texts = {(i.name.value, i.name.scheme_designator): i.value for i in tree
             if isinstance(i, hd.sr.TextContentItem)}
    expect(path, "highdicom Answer", case["answer"], texts.get(("AIR-ANSWER", PRIVATE_SCHEME)))
    hd_scoords = [i for i in tree if isinstance(i, hd.sr.ScoordContentItem)]
    expect(path, "highdicom SCOORD items", 0 if box is None else 1, len(hd_scoords))
    if box is not None:
        expect(path, "highdicom graphic type", hd.sr.GraphicTypeValues.POLYLINE, hd_scoords[0].graphic_type)
        expect_coords(path, "highdicom SCOORD value", box, hd_scoords[0].value)
        ref = hd_scoords[0].ContentSequence[0]
        if not isinstance(ref, hd.sr.ImageContentItem):
            fail(path, "highdicom SCOORD child", "ImageContentItem", type(ref).__name__)
        expect(path, "highdicom referenced SOP Instance", src.SOPInstanceUID,
               ref.referenced_sop_instance_uid)
        if "NumberOfFrames" in src:
            expect(path, "highdicom referenced frame", [case["frame"] + 1],
                   [int(f) for f in np.atleast_1d(ref.referenced_frame_numbers)])
    return 1


def check_gsps(case, src):
    path = case["gsps"]
    ds = pydicom.dcmread(path)
    expect(path, "SOPClassUID", GSPS, ds.SOPClassUID)
    expect(path, "Modality", "PR", ds.Modality)
    expect_study(path, ds, src)
    series = ds.ReferencedSeriesSequence[0]
    expect(path, "ReferencedSeriesSequence SeriesInstanceUID", src.SeriesInstanceUID, series.SeriesInstanceUID)
    expect_reference(path, "ReferencedImageSequence", series.ReferencedImageSequence[0], src, case["frame"])
    annotation = ds.GraphicAnnotationSequence[0]
    graphic = annotation.GraphicObjectSequence[0]
    expect(path, "GraphicAnnotationUnits", "PIXEL", graphic.GraphicAnnotationUnits)
    expect(path, "GraphicType", "POLYLINE", graphic.GraphicType)
    box = case["answer_box"] if case["task"] == "rec" else case["query_box"]
    expect_coords(path, "GraphicData", box, graphic.GraphicData)
    expect(path, "GraphicLayer", ds.GraphicLayerSequence[0].GraphicLayer, annotation.GraphicLayer)
    shape = "INVERSE" if src.PhotometricInterpretation == "MONOCHROME1" else "IDENTITY"
    expect(path, "PresentationLUTShape", shape, ds.PresentationLUTShape)
    if case.get("window"):
        voi = ds.SoftcopyVOILUTSequence[0]
        got = [float(voi.WindowCenter), float(voi.WindowWidth)]
        if not np.allclose(case["window"], got, atol=1e-3):
            fail(path, "Softcopy VOI window", case["window"], got)
    # highdicom 0.28 cannot read a presentation state back (it only builds them): dcmtk's dcmp2pgm renders
    # it instead, in tests/dicom_out.rs.
    return 1


def check_case(case):
    """One written set: `sr` and `gsps` (or null) paths, the `source` path, the 0-based `frame`, the
    `task`, `question`, `answer`, `label`, `answer_box`, `query_box`, `window` [center, width] and the
    `bundle_sha256` the objects must carry."""
    src = pydicom.dcmread(case["source"], stop_before_pixels=True)
    n = check_sr(case, src)
    if case.get("gsps"):
        n += check_gsps(case, src)
    return n


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    n = sum(check_case(c) for c in cases)
    print(f"dicom_out_check: {n} objects of {len(cases)} cases read back and match")


if __name__ == "__main__":
    main()
