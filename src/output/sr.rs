//! The Comprehensive SR (PS3.3 A.35.3) holding one result. The content tree follows this project's own
//! template, "UNIMED-AIR-1" (docs/CLI.md "DICOM output"), built from standard pieces: TID 1002/1004
//! device observer context, TID 4019 algorithm identification, SCOORD-from-IMAGE regions as in
//! TID 1410. It is not TID 1500 (a measurement report: a free-text answer is not a measurement), so the
//! document claims no standard template (no Content Template Sequence).
//!
//! ```text
//! CONTAINER  Uni-Med AI result                                     (root, SEPARATE)
//!   HAS OBS CONTEXT  CODE    Observer Type = Device
//!   HAS OBS CONTEXT  UIDREF  Device Observer UID = 2.25 UID of the bundle
//!   HAS OBS CONTEXT  TEXT    Device Observer Name / Manufacturer / Model Name
//!   CONTAINS  TEXT   Algorithm Name, Algorithm Version (bundle sha256), Algorithm Parameters
//!   CONTAINS  TEXT   Comment = NOT FOR DIAGNOSTIC USE ...
//!   CONTAINS  TEXT   Task
//!   CONTAINS  TEXT   Question                                        (when the request had text)
//!   CONTAINS  TEXT   Answer
//!   CONTAINS  TEXT   Label                                           (cls, when a label matched)
//!   CONTAINS  SCOORD Image Region (rec) / Region asked about (reg)   POLYLINE, closed rectangle
//!     SELECTED FROM  IMAGE  source SOP Class/Instance (+ frame)
//!   CONTAINS  IMAGE  Source image                                    source SOP Class/Instance (+ frame)
//! ```

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use super::codes::{self, Code};
use super::dataset::{self, code_item, code_seq, fl, seq, text, NewObject, Stamp};
use super::source::Source;
use super::{Algorithm, DicomResult};
use crate::request::Task;

/// Relationship types (PS3.3 C.17.3.2.4).
const CONTAINS: &str = "CONTAINS";
const HAS_OBS_CONTEXT: &str = "HAS OBS CONTEXT";
const SELECTED_FROM: &str = "SELECTED FROM";

/// Value types (PS3.3 C.17.3.2.1).
const CONTAINER: &str = "CONTAINER";
const TEXT: &str = "TEXT";
const CODE: &str = "CODE";
const UIDREF: &str = "UIDREF";
const IMAGE: &str = "IMAGE";
const SCOORD: &str = "SCOORD";

/// The shape of a box: a closed polyline of four corners plus the first again (SCOORD has no rectangle).
const POLYLINE: &str = "POLYLINE";

/// What stands in for an empty answer: Text Value is type 1, and an empty answer is still a result.
pub(crate) const EMPTY_ANSWER: &str = "(the model gave an empty answer)";

/// A content item with its relationship to the parent, value type and concept name.
fn item(relationship: &str, value_type: &str, concept: Code) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, value_type),
        code_seq(tags::CONCEPT_NAME_CODE_SEQUENCE, concept),
    ])
}

fn text_item(relationship: &str, concept: Code, value: &str) -> InMemDicomObject {
    let mut it = item(relationship, TEXT, concept);
    it.put(text(tags::TEXT_VALUE, VR::UT, value));
    it
}

/// The source's Referenced SOP Class and Instance UIDs (the item of a Referenced SOP Sequence).
fn sop_reference(source: &Source) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(
            tags::REFERENCED_SOP_CLASS_UID,
            VR::UI,
            source.sop_class_uid.clone(),
        ),
        text(
            tags::REFERENCED_SOP_INSTANCE_UID,
            VR::UI,
            source.sop_instance_uid.clone(),
        ),
    ])
}

/// The source image reference of an IMAGE item (PS3.3 Table C.18.4-1), naming the frame (1-based) of a
/// multi-frame source.
pub(crate) fn image_reference(source: &Source, frame: u32) -> InMemDicomObject {
    let mut r = sop_reference(source);
    if source.multi_frame {
        r.put(text(
            tags::REFERENCED_FRAME_NUMBER,
            VR::IS,
            (frame + 1).to_string(),
        ));
    }
    r
}

fn image_item(
    relationship: &str,
    concept: Option<Code>,
    source: &Source,
    frame: u32,
) -> InMemDicomObject {
    let mut it = InMemDicomObject::from_element_iter([
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, IMAGE),
    ]);
    if let Some(c) = concept {
        it.put(code_seq(tags::CONCEPT_NAME_CODE_SEQUENCE, c));
    }
    it.put(seq(
        tags::REFERENCED_SOP_SEQUENCE,
        vec![image_reference(source, frame)],
    ));
    it
}

/// The corners of `b` = [x1, y1, x2, y2] as a closed polyline of (column, row) pairs in image pixel
/// coordinates: (0, 0) is the top left corner of the top left pixel, as the box is (PS3.3 C.18.6.1.2).
pub(crate) fn rectangle(b: [f64; 4]) -> Vec<f32> {
    let [x1, y1, x2, y2] = b.map(|v| v as f32);
    vec![x1, y1, x2, y1, x2, y2, x1, y2, x1, y1]
}

fn region_item(concept: Code, b: [f64; 4], source: &Source, frame: u32) -> InMemDicomObject {
    let mut it = item(CONTAINS, SCOORD, concept);
    it.put(fl(tags::GRAPHIC_DATA, &rectangle(b)));
    it.put(text(tags::GRAPHIC_TYPE, VR::CS, POLYLINE));
    it.put(seq(
        tags::CONTENT_SEQUENCE,
        vec![image_item(SELECTED_FROM, None, source, frame)],
    ));
    it
}

/// The observer context of TID 1002 for a device observer (TID 1004).
fn observer_context(algorithm: &Algorithm) -> Vec<InMemDicomObject> {
    let mut observer_type = item(HAS_OBS_CONTEXT, CODE, codes::OBSERVER_TYPE);
    observer_type.put(seq(
        tags::CONCEPT_CODE_SEQUENCE,
        vec![code_item(codes::DEVICE)],
    ));
    let mut uid = item(HAS_OBS_CONTEXT, UIDREF, codes::DEVICE_OBSERVER_UID);
    uid.put(text(tags::UID, VR::UI, algorithm.device_uid()));
    vec![
        observer_type,
        uid,
        text_item(
            HAS_OBS_CONTEXT,
            codes::DEVICE_OBSERVER_NAME,
            &algorithm.model_name,
        ),
        text_item(
            HAS_OBS_CONTEXT,
            codes::DEVICE_OBSERVER_MANUFACTURER,
            dataset::MANUFACTURER,
        ),
        text_item(
            HAS_OBS_CONTEXT,
            codes::DEVICE_OBSERVER_MODEL_NAME,
            &algorithm.model_name,
        ),
    ]
}

/// The content tree (see the module docs).
fn content(
    result: &DicomResult,
    algorithm: &Algorithm,
    source: &Source,
    frame: u32,
) -> Vec<InMemDicomObject> {
    let mut items = observer_context(algorithm);
    items.push(text_item(
        CONTAINS,
        codes::ALGORITHM_NAME,
        &algorithm.model_name,
    ));
    items.push(text_item(
        CONTAINS,
        codes::ALGORITHM_VERSION,
        &algorithm.version_text(),
    ));
    items.push(text_item(
        CONTAINS,
        codes::ALGORITHM_PARAMETERS,
        &algorithm.parameters,
    ));
    items.push(text_item(CONTAINS, codes::COMMENT, &algorithm.statement()));
    items.push(text_item(CONTAINS, codes::TASK, result.task.name()));
    if let Some(q) = result.question.filter(|q| !q.trim().is_empty()) {
        items.push(text_item(CONTAINS, codes::QUESTION, q));
    }
    let answer = if result.answer.trim().is_empty() {
        EMPTY_ANSWER
    } else {
        result.answer
    };
    items.push(text_item(CONTAINS, codes::ANSWER, answer));
    if let Some(label) = result.label.filter(|l| !l.trim().is_empty()) {
        items.push(text_item(CONTAINS, codes::LABEL, label));
    }
    match (result.task, result.answer_box, result.query_box) {
        (Task::Rec, Some(b), _) => items.push(region_item(codes::IMAGE_REGION, b, source, frame)),
        (Task::Reg, _, Some(b)) => items.push(region_item(codes::QUERY_REGION, b, source, frame)),
        _ => {}
    }
    items.push(image_item(
        CONTAINS,
        Some(codes::SOURCE_IMAGE),
        source,
        frame,
    ));
    items
}

/// The evidence the document was made from (SR Document General, PS3.3 C.17.2): the source image, in
/// its study and series.
fn evidence(source: &Source) -> InMemDicomObject {
    let sop = sop_reference(source);
    let series = InMemDicomObject::from_element_iter([
        text(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            source.series_instance_uid.clone(),
        ),
        seq(tags::REFERENCED_SOP_SEQUENCE, vec![sop]),
    ]);
    InMemDicomObject::from_element_iter([
        text(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            source.study_instance_uid.clone(),
        ),
        seq(tags::REFERENCED_SERIES_SEQUENCE, vec![series]),
    ])
}

/// This project's coding scheme, declared for readers of the document (PS3.3 C.12.1.1.5).
fn coding_scheme() -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            codes::PRIVATE_SCHEME,
        ),
        text(tags::CODING_SCHEME_NAME, VR::ST, codes::PRIVATE_SCHEME_NAME),
        text(
            tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
            VR::ST,
            codes::PRIVATE_SCHEME_ORGANIZATION,
        ),
    ])
}

/// SR Document General: unverified and preliminary (IHE AI Results: a machine result awaiting a reader).
const COMPLETION_FLAG: &str = "COMPLETE";
const VERIFICATION_FLAG: &str = "UNVERIFIED";
const PRELIMINARY_FLAG: &str = "PRELIMINARY";
const CONTINUITY: &str = "SEPARATE";
const SR_MODALITY: &str = "SR";

/// Builds the SR data set.
pub(crate) fn build(
    result: &DicomResult,
    algorithm: &Algorithm,
    source: &Source,
    frame: u32,
    uids: (&str, &str),
    stamp: &Stamp,
) -> InMemDicomObject {
    let (series_uid, sop_uid) = uids;
    let mut obj = dataset::base(
        source,
        algorithm,
        &NewObject {
            sop_class_uid: uids::COMPREHENSIVE_SR_STORAGE,
            series_instance_uid: series_uid,
            sop_instance_uid: sop_uid,
            modality: SR_MODALITY,
            series_description: format!(
                "AI result {} ({})",
                result.task.name(),
                dataset::NOT_FOR_DIAGNOSTIC_USE
            ),
        },
        stamp,
    );
    obj.put(seq(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        vec![coding_scheme()],
    ));
    // SR Document Series: the type 2 Referenced Performed Procedure Step Sequence, empty.
    obj.put(seq(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    // SR Document General.
    obj.put(text(tags::COMPLETION_FLAG, VR::CS, COMPLETION_FLAG));
    obj.put(text(tags::VERIFICATION_FLAG, VR::CS, VERIFICATION_FLAG));
    obj.put(text(tags::PRELIMINARY_FLAG, VR::CS, PRELIMINARY_FLAG));
    obj.put(text(tags::CONTENT_DATE, VR::DA, stamp.date.clone()));
    obj.put(text(tags::CONTENT_TIME, VR::TM, stamp.time.clone()));
    obj.put(seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    obj.put(seq(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![evidence(source)],
    ));
    // SR Document Content: the root container.
    obj.put(text(tags::VALUE_TYPE, VR::CS, CONTAINER));
    obj.put(code_seq(tags::CONCEPT_NAME_CODE_SEQUENCE, codes::AI_RESULT));
    obj.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, CONTINUITY));
    obj.put(seq(
        tags::CONTENT_SEQUENCE,
        content(result, algorithm, source, frame),
    ));
    obj
}
