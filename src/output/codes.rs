//! The coded concepts of the DICOM output, named once. DCM codes are from PS3.16 Annex D (their Code
//! Meaning must be the standard's text, which dciodvfy checks); the `99UNIMED` codes are this
//! project's own (PS3.16 8.2: a private coding scheme designator starts with "99"), for concepts the
//! standard has no code for (the question, the answer, the task). Each SR declares `99UNIMED` in its
//! Coding Scheme Identification Sequence; docs/CLI.md "DICOM output" lists them.

/// A coded concept: Code Value, Coding Scheme Designator, Code Meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub value: &'static str,
    pub scheme: &'static str,
    pub meaning: &'static str,
}

const fn dcm(value: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme: DCM,
        meaning,
    }
}

const fn own(value: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme: PRIVATE_SCHEME,
        meaning,
    }
}

/// DICOM Controlled Terminology (PS3.16 Annex D).
pub const DCM: &str = "DCM";

/// This project's private coding scheme (declared in each SR's Coding Scheme Identification Sequence).
pub const PRIVATE_SCHEME: &str = "99UNIMED";
pub const PRIVATE_SCHEME_NAME: &str = "unimed-edge AI result concepts";
pub const PRIVATE_SCHEME_ORGANIZATION: &str = "unimed-edge project";

/// Root of the SR content tree: one model result.
pub const AI_RESULT: Code = own("AIR-RESULT", "Uni-Med AI result");
/// The task the model was asked (qa, vqa, report, rec, reg, cls).
pub const TASK: Code = own("AIR-TASK", "Task");
/// The request's text: the question, the object name (rec) or the label question (cls).
pub const QUESTION: Code = own("AIR-QUESTION", "Question");
/// The model's cleaned answer text.
pub const ANSWER: Code = own("AIR-ANSWER", "Answer");
/// Classification: the label the answer matched.
pub const LABEL: Code = own("AIR-LABEL", "Label");
/// The image the model looked at (the source of every coordinate).
pub const SOURCE_IMAGE: Code = own("AIR-SOURCE-IMAGE", "Source image");
/// REG: the region the model was asked to name (the request's box).
pub const QUERY_REGION: Code = own("AIR-QUERY-REGION", "Region asked about");

/// REC: the answer's region (PS3.16 Annex D: "Image Region").
pub const IMAGE_REGION: Code = dcm("111030", "Image Region");
/// TID 4019 Algorithm Identification.
pub const ALGORITHM_NAME: Code = dcm("111001", "Algorithm Name");
pub const ALGORITHM_VERSION: Code = dcm("111003", "Algorithm Version");
pub const ALGORITHM_PARAMETERS: Code = dcm("111002", "Algorithm Parameters");
/// Free-text remark: the "not for diagnostic use" statement.
pub const COMMENT: Code = dcm("121106", "Comment");
/// TID 1002 / TID 1004 observer context: the observer is a device (the algorithm).
pub const OBSERVER_TYPE: Code = dcm("121005", "Observer Type");
pub const DEVICE: Code = dcm("121007", "Device");
pub const DEVICE_OBSERVER_UID: Code = dcm("121012", "Device Observer UID");
pub const DEVICE_OBSERVER_NAME: Code = dcm("121013", "Device Observer Name");
pub const DEVICE_OBSERVER_MANUFACTURER: Code = dcm("121014", "Device Observer Manufacturer");
pub const DEVICE_OBSERVER_MODEL_NAME: Code = dcm("121015", "Device Observer Model Name");
/// Contributing Equipment Sequence: Purpose of Reference (CID 7005) of the algorithm.
pub const PROCESSING_EQUIPMENT: Code = dcm("109102", "Processing Equipment");
