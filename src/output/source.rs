//! The source DICOM, read again at write time: what the new objects reference (SOP Class/Instance,
//! Series, frames, the pixel geometry a presentation state needs) and the identifying modules they copy
//! (Patient, General Study).
//!
//! Privacy: this is the one place the runtime reads a source's identifying attributes, and it reads them
//! only to copy them, element by element, into the DICOM output. `Source`'s `Debug` leaves them out and
//! no error message carries a value, so they cannot reach a log, a JSON record or a file name.

use std::fmt;
use std::path::Path;

use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::mem::InMemElement;
use dicom_object::DefaultDicomObject;

use super::error::OutputError;

/// An attribute the output copies from the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copied {
    pub tag: Tag,
    pub vr: VR,
    /// Type 2 attributes are written empty when the source lacks them; type 3 are left out.
    pub required: bool,
}

const fn type2(tag: Tag, vr: VR) -> Copied {
    Copied {
        tag,
        vr,
        required: true,
    }
}

const fn type3(tag: Tag, vr: VR) -> Copied {
    Copied {
        tag,
        vr,
        required: false,
    }
}

/// Patient module (PS3.3 C.7.1.1) and General Study module (C.7.2.1) attributes copied into every
/// object, so a PACS files the results with the patient and the study. Study Instance UID is handled
/// apart (type 1: required, never empty).
pub(crate) const IDENTIFYING: [Copied; 11] = [
    type2(tags::PATIENT_NAME, VR::PN),
    type2(tags::PATIENT_ID, VR::LO),
    type3(tags::ISSUER_OF_PATIENT_ID, VR::LO),
    type2(tags::PATIENT_BIRTH_DATE, VR::DA),
    type2(tags::PATIENT_SEX, VR::CS),
    type2(tags::STUDY_DATE, VR::DA),
    type2(tags::STUDY_TIME, VR::TM),
    type2(tags::REFERRING_PHYSICIAN_NAME, VR::PN),
    type2(tags::STUDY_ID, VR::SH),
    type2(tags::ACCESSION_NUMBER, VR::SH),
    type3(tags::STUDY_DESCRIPTION, VR::LO),
];

/// The modality LUT of the source (PS3.3 C.11.1), which a presentation state must repeat.
#[derive(Debug, Clone)]
pub(crate) struct Rescale {
    pub slope: InMemElement,
    pub intercept: InMemElement,
    pub kind: Option<String>,
}

/// The source as the new objects need it.
pub(crate) struct Source {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub modality: Option<String>,
    /// Laterality (0020,0060) of the source's series, repeated by the presentation state's series.
    pub laterality: Option<String>,
    /// Whether the source holds a Number of Frames attribute: then references name the frame.
    pub multi_frame: bool,
    pub rows: u32,
    pub columns: u32,
    pub photometric: String,
    pub rescale: Option<Rescale>,
    pub pixel_spacing: Option<InMemElement>,
    /// The identifying attributes (`IDENTIFYING`) the source has, verbatim.
    identifying: Vec<InMemElement>,
    /// `IDENTIFYING` entries the source lacks (type 2: written empty).
    missing: Vec<Copied>,
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("sop_class_uid", &self.sop_class_uid)
            .field("multi_frame", &self.multi_frame)
            .field("rows", &self.rows)
            .field("columns", &self.columns)
            .field("photometric", &self.photometric)
            .field("identifying", &"(not shown)")
            .finish_non_exhaustive()
    }
}

struct Needed {
    tag: Tag,
    text: &'static str,
    keyword: &'static str,
    expected: &'static str,
}

fn string(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let s = obj.get(tag)?.to_str().ok()?;
    let s = s.trim().trim_end_matches('\0').trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn needed(obj: &DefaultDicomObject, path: &Path, n: &Needed) -> Result<String, OutputError> {
    string(obj, n.tag).ok_or_else(|| OutputError::SourceAttribute {
        path: path.to_path_buf(),
        tag: n.text,
        keyword: n.keyword,
        expected: n.expected,
    })
}

const UID_EXPECTED: &str = "a UID (the new objects reference it)";

impl Source {
    /// Opens `path` (up to its pixel data) and reads what the new objects need.
    pub(crate) fn read(path: &Path) -> Result<Self, OutputError> {
        let obj = crate::input::open_dicom_header(path)?;
        let uid = |tag, text, keyword| {
            needed(
                &obj,
                path,
                &Needed {
                    tag,
                    text,
                    keyword,
                    expected: UID_EXPECTED,
                },
            )
        };
        let sop_class_uid = uid(tags::SOP_CLASS_UID, "(0008,0016)", "SOPClassUID")?;
        let sop_instance_uid = uid(tags::SOP_INSTANCE_UID, "(0008,0018)", "SOPInstanceUID")?;
        let study_instance_uid = uid(tags::STUDY_INSTANCE_UID, "(0020,000D)", "StudyInstanceUID")?;
        let series_instance_uid = uid(
            tags::SERIES_INSTANCE_UID,
            "(0020,000E)",
            "SeriesInstanceUID",
        )?;
        let number = |tag, text, keyword| -> Result<u32, OutputError> {
            obj.get(tag)
                .and_then(|e| e.to_int::<u32>().ok())
                .filter(|v| *v > 0)
                .ok_or_else(|| OutputError::SourceAttribute {
                    path: path.to_path_buf(),
                    tag: text,
                    keyword,
                    expected: "a positive integer",
                })
        };
        let rows = number(tags::ROWS, "(0028,0010)", "Rows")?;
        let columns = number(tags::COLUMNS, "(0028,0011)", "Columns")?;
        let photometric = needed(
            &obj,
            path,
            &Needed {
                tag: tags::PHOTOMETRIC_INTERPRETATION,
                text: "(0028,0004)",
                keyword: "PhotometricInterpretation",
                expected: "MONOCHROME1, MONOCHROME2 or a colour interpretation",
            },
        )?;
        let rescale = match (
            obj.get(tags::RESCALE_SLOPE),
            obj.get(tags::RESCALE_INTERCEPT),
        ) {
            (Some(slope), Some(intercept)) => Some(Rescale {
                slope: slope.clone(),
                intercept: intercept.clone(),
                kind: string(&obj, tags::RESCALE_TYPE),
            }),
            _ => None,
        };
        let mut identifying = Vec::new();
        let mut missing = Vec::new();
        for c in IDENTIFYING {
            match obj.get(c.tag) {
                Some(e) => identifying.push(e.clone()),
                None if c.required => missing.push(c),
                None => {}
            }
        }
        Ok(Source {
            sop_class_uid,
            sop_instance_uid,
            study_instance_uid,
            series_instance_uid,
            modality: string(&obj, tags::MODALITY),
            laterality: string(&obj, tags::LATERALITY),
            multi_frame: obj.get(tags::NUMBER_OF_FRAMES).is_some(),
            rows,
            columns,
            photometric,
            rescale,
            pixel_spacing: obj.get(tags::PIXEL_SPACING).cloned(),
            identifying,
            missing,
        })
    }

    /// The Patient and General Study attributes for a new object: the source's own elements, and empty
    /// ones for the type 2 attributes it lacks.
    pub(crate) fn identifying_elements(&self) -> impl Iterator<Item = InMemElement> + '_ {
        self.identifying.iter().cloned().chain(
            self.missing
                .iter()
                .map(|c| InMemElement::new(c.tag, c.vr, PrimitiveValue::Empty)),
        )
    }
}
