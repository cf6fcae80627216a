//! Small builders shared by the SR and the presentation state: elements, sequences, code items, and the
//! modules every new object carries (Patient and General Study copied from the source, SOP Common,
//! General Equipment with the algorithm as Contributing Equipment).

use std::time::{SystemTime, UNIX_EPOCH};

use dicom_core::value::{DataSetSequence, C};
use dicom_core::{DataElement, Length, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::codes::{self, Code};
use super::source::Source;
use super::Algorithm;

/// UTF-8 (PS3.3 C.12.1.1.2): the answer is free text from the model, and copied names keep whatever
/// characters the source had (dicom-rs decoded them with the source's own character set).
pub(crate) const CHARSET_UTF8: &str = "ISO_IR 192";

/// The manufacturer written in General Equipment and Contributing Equipment.
pub(crate) const MANUFACTURER: &str = "unimed-edge";

/// The statement every object carries (IHE AI Results: results of an AI are marked as such and are not a
/// diagnosis). Short enough for an LO (64 characters).
pub(crate) const NOT_FOR_DIAGNOSTIC_USE: &str = "NOT FOR DIAGNOSTIC USE";

/// The longest value an LO attribute may hold (PS3.5 6.2).
pub(crate) const LO_MAX_CHARS: usize = 64;

/// Time zone of every date and time written: UTC, declared with Timezone Offset From UTC.
const UTC_OFFSET: &str = "+0000";

/// A string element.
pub(crate) fn text(tag: Tag, vr: VR, value: impl Into<String>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::Str(value.into()))
}

/// A string element with several values.
pub(crate) fn texts(tag: Tag, vr: VR, values: &[String]) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(values.iter().cloned().collect::<C<String>>()),
    )
}

/// An element without a value (a type 2 attribute that has nothing to say).
pub(crate) fn empty(tag: Tag, vr: VR) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

/// A sequence of `items` (an empty sequence for a type 2 sequence with no item).
pub(crate) fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

pub(crate) fn us(tag: Tag, values: &[u16]) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tag,
        VR::US,
        PrimitiveValue::U16(values.iter().copied().collect()),
    )
}

pub(crate) fn sl(tag: Tag, values: &[i32]) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tag,
        VR::SL,
        PrimitiveValue::I32(values.iter().copied().collect()),
    )
}

pub(crate) fn fl(tag: Tag, values: &[f32]) -> DataElement<InMemDicomObject> {
    DataElement::new(
        tag,
        VR::FL,
        PrimitiveValue::F32(values.iter().copied().collect()),
    )
}

/// An item of a code sequence (PS3.3 Table 8.8-1).
pub(crate) fn code_item(code: Code) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        text(tags::CODE_VALUE, VR::SH, code.value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, code.scheme),
        text(tags::CODE_MEANING, VR::LO, code.meaning),
    ])
}

/// A code sequence holding one code.
pub(crate) fn code_seq(tag: Tag, code: Code) -> DataElement<InMemDicomObject> {
    seq(tag, vec![code_item(code)])
}

/// `s` cut to at most `max` characters (on a character boundary).
pub(crate) fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Now, as DICOM DA and TM values in UTC.
pub(crate) struct Stamp {
    pub date: String,
    pub time: String,
}

/// Seconds in a day.
const DAY_SECONDS: u64 = 86_400;

impl Stamp {
    pub(crate) fn now() -> Self {
        let elapsed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let secs = elapsed.as_secs();
        let days = i64::try_from(secs / DAY_SECONDS).unwrap_or(0);
        let (y, m, d) = civil_from_days(days);
        let s = secs % DAY_SECONDS;
        Stamp {
            date: format!("{y:04}{m:02}{d:02}"),
            time: format!(
                "{:02}{:02}{:02}.{:06}",
                s / 3600,
                (s / 60) % 60,
                s % 60,
                elapsed.subsec_micros()
            ),
        }
    }
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's
/// `civil_from_days`), so the crate needs no calendar dependency for two timestamps.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The identity of a new object: its class, its new UIDs, its series' modality and description.
pub(crate) struct NewObject<'a> {
    pub sop_class_uid: &'a str,
    pub series_instance_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub modality: &'a str,
    pub series_description: String,
}

/// What every new object starts with: SOP Common (class, instance, character set, creation time, the
/// algorithm as Contributing Equipment), the source's Patient and General Study attributes, the study's
/// UID, General Equipment, and the series (new UID, number, description).
pub(crate) fn base(
    source: &Source,
    algorithm: &Algorithm,
    new: &NewObject,
    stamp: &Stamp,
) -> InMemDicomObject {
    let NewObject {
        sop_class_uid,
        series_instance_uid,
        sop_instance_uid,
        modality,
        series_description,
    } = new;
    let mut obj = InMemDicomObject::new_empty();
    obj.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, CHARSET_UTF8));
    obj.put(text(tags::SOP_CLASS_UID, VR::UI, *sop_class_uid));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, *sop_instance_uid));
    obj.put(text(
        tags::INSTANCE_CREATION_DATE,
        VR::DA,
        stamp.date.clone(),
    ));
    obj.put(text(
        tags::INSTANCE_CREATION_TIME,
        VR::TM,
        stamp.time.clone(),
    ));
    obj.put(text(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, UTC_OFFSET));
    for element in source.identifying_elements() {
        obj.put(element);
    }
    obj.put(text(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        source.study_instance_uid.clone(),
    ));
    obj.put(text(tags::MODALITY, VR::CS, *modality));
    obj.put(text(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        *series_instance_uid,
    ));
    // One new series per object set; a PACS sorts series by number, so the results come after the
    // acquisitions (which usually use small numbers). Fixed, documented in docs/CLI.md.
    obj.put(text(tags::SERIES_NUMBER, VR::IS, SERIES_NUMBER));
    obj.put(text(tags::SERIES_DATE, VR::DA, stamp.date.clone()));
    obj.put(text(tags::SERIES_TIME, VR::TM, stamp.time.clone()));
    obj.put(text(
        tags::SERIES_DESCRIPTION,
        VR::LO,
        clip(series_description, LO_MAX_CHARS),
    ));
    obj.put(text(tags::INSTANCE_NUMBER, VR::IS, INSTANCE_NUMBER));
    obj.put(text(tags::MANUFACTURER, VR::LO, MANUFACTURER));
    obj.put(text(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        clip(&algorithm.model_name, LO_MAX_CHARS),
    ));
    obj.put(texts(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        &algorithm.software_versions(),
    ));
    obj.put(seq(
        tags::CONTRIBUTING_EQUIPMENT_SEQUENCE,
        vec![contributing_equipment(algorithm, stamp)],
    ));
    obj
}

/// Series Number of every new series (see `base`).
const SERIES_NUMBER: &str = "9901";
/// Each new series holds one instance.
const INSTANCE_NUMBER: &str = "1";

/// The algorithm as Contributing Equipment (PS3.3 C.12.1, IHE AI Results: model identity and the
/// "not for diagnostic use" statement travel with every object).
fn contributing_equipment(algorithm: &Algorithm, stamp: &Stamp) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        code_seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            codes::PROCESSING_EQUIPMENT,
        ),
        text(tags::MANUFACTURER, VR::LO, MANUFACTURER),
        text(
            tags::MANUFACTURER_MODEL_NAME,
            VR::LO,
            clip(&algorithm.model_name, LO_MAX_CHARS),
        ),
        texts(tags::SOFTWARE_VERSIONS, VR::LO, &algorithm.software_versions()),
        text(
            tags::CONTRIBUTION_DATE_TIME,
            VR::DT,
            format!("{}{}{UTC_OFFSET}", stamp.date, stamp.time),
        ),
        text(
            tags::CONTRIBUTION_DESCRIPTION,
            VR::ST,
            format!(
                "{NOT_FOR_DIAGNOSTIC_USE}. Generated by the AI model {} (bundle manifest sha256 {}) with \
                 unimed-edge {}; research use only, unverified by a physician.",
                algorithm.model_name, algorithm.bundle_sha256, algorithm.runtime_version
            ),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_426), (2025, 12, 4));
    }
}
