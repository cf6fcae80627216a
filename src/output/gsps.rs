//! The Grayscale Softcopy Presentation State (PS3.3 A.33.1) that draws a box over the source image in a
//! PACS viewer: REC's answer box or REG's query box, as a closed polyline in the graphic layer "UNIMED",
//! with a short text label at its top left corner. It also carries the rendering the model saw: the
//! source's modality LUT, the VOI window the input stage used (`--window`, `--preset`, the file's, or
//! min/max), and the MONOCHROME1 inversion (Presentation LUT Shape INVERSE), so the viewer shows the
//! image as the model did.
//!
//! Grayscale only: a colour source (RGB, YBR) gets no presentation state (a Color Softcopy Presentation
//! State would need an ICC profile); the SR still carries the box.

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use super::dataset::{self, clip, fl, seq, sl, text, us, NewObject, Stamp};
use super::source::Source;
use super::sr::rectangle;
use super::{Algorithm, DicomResult};
use crate::input::Window;

const PR_MODALITY: &str = "PR";
/// The graphic layer of every annotation (CS: at most 16 characters).
const LAYER: &str = "UNIMED";
/// Layer order: the only layer.
const LAYER_ORDER: &str = "1";
/// Recommended grayscale of the layer: white (the P-value maximum, PS3.3 C.10.7.1).
const LAYER_GRAY: u16 = u16::MAX;
/// Graphic coordinates in image pixels, (0, 0) at the top left corner of the top left pixel.
const PIXEL_UNITS: &str = "PIXEL";
const POLYLINE: &str = "POLYLINE";
/// Graphic Dimensions: 2-D points.
const DIMENSIONS: u16 = 2;
/// The rectangle's five points (the first repeated closes it).
const RECTANGLE_POINTS: u16 = 5;
const NOT_FILLED: &str = "N";
const ANCHOR_NOT_VISIBLE: &str = "N";
/// Longest label drawn next to the box (the full answer is in the SR).
const LABEL_MAX_CHARS: usize = 64;
/// Displayed Area: the whole image, scaled to the viewer's window.
const SCALE_TO_FIT: &str = "SCALE TO FIT";
/// Square pixels when the source does not give a spacing.
const SQUARE: &str = "1";
const NO_ROTATION: u16 = 0;
const NO_FLIP: &str = "N";
/// Presentation LUT shapes (PS3.3 C.11.6): MONOCHROME1 stores "low is white", so it is inverted.
const IDENTITY: &str = "IDENTITY";
const INVERSE: &str = "INVERSE";
const MONOCHROME1: &str = "MONOCHROME1";
/// Rescale Type when the source has a modality LUT but no type: HU for CT, US ("unspecified") else.
const HOUNSFIELD: &str = "HU";
const UNSPECIFIED: &str = "US";
const CT: &str = "CT";

/// Whether a presentation state can be written for this source.
pub(crate) fn supports(source: &Source) -> bool {
    source.photometric.starts_with("MONOCHROME")
}

/// The content label of a task (CS: upper case, at most 16 characters).
fn content_label(result: &DicomResult) -> String {
    format!("UNIMED_{}", result.task.name().to_ascii_uppercase())
}

fn referenced_image(source: &Source, frame: u32) -> InMemDicomObject {
    super::sr::image_reference(source, frame)
}

fn graphic_annotation(b: [f64; 4], label: &str) -> InMemDicomObject {
    let graphic = InMemDicomObject::from_element_iter([
        text(tags::GRAPHIC_ANNOTATION_UNITS, VR::CS, PIXEL_UNITS),
        us(tags::GRAPHIC_DIMENSIONS, &[DIMENSIONS]),
        us(tags::NUMBER_OF_GRAPHIC_POINTS, &[RECTANGLE_POINTS]),
        fl(tags::GRAPHIC_DATA, &rectangle(b)),
        text(tags::GRAPHIC_TYPE, VR::CS, POLYLINE),
        text(tags::GRAPHIC_FILLED, VR::CS, NOT_FILLED),
    ]);
    let text_object = InMemDicomObject::from_element_iter([
        text(tags::UNFORMATTED_TEXT_VALUE, VR::ST, label),
        text(tags::ANCHOR_POINT_ANNOTATION_UNITS, VR::CS, PIXEL_UNITS),
        fl(tags::ANCHOR_POINT, &[b[0] as f32, b[1] as f32]),
        text(tags::ANCHOR_POINT_VISIBILITY, VR::CS, ANCHOR_NOT_VISIBLE),
    ]);
    InMemDicomObject::from_element_iter([
        text(tags::GRAPHIC_LAYER, VR::CS, LAYER),
        seq(tags::TEXT_OBJECT_SEQUENCE, vec![text_object]),
        seq(tags::GRAPHIC_OBJECT_SEQUENCE, vec![graphic]),
    ])
}

/// Builds the presentation state for box `b` on frame `frame` (0-based) of the source.
#[allow(clippy::too_many_arguments)]
pub(crate) fn build(
    result: &DicomResult,
    algorithm: &Algorithm,
    source: &Source,
    frame: u32,
    b: [f64; 4],
    window: Option<Window>,
    uids: (&str, &str),
    stamp: &Stamp,
) -> InMemDicomObject {
    let (series_uid, sop_uid) = uids;
    let task = result.task.name();
    let mut obj = dataset::base(
        source,
        algorithm,
        &NewObject {
            sop_class_uid: uids::GRAYSCALE_SOFTCOPY_PRESENTATION_STATE_STORAGE,
            series_instance_uid: series_uid,
            sop_instance_uid: sop_uid,
            modality: PR_MODALITY,
            series_description: format!("AI {task} box ({})", dataset::NOT_FOR_DIAGNOSTIC_USE),
        },
        stamp,
    );
    // General Series: Laterality is type 2C (required for paired body parts); dciodvfy cannot tell the
    // body part, so it is always written: the source's value, or empty.
    obj.put(match &source.laterality {
        Some(l) => text(tags::LATERALITY, VR::CS, l.clone()),
        None => dataset::empty(tags::LATERALITY, VR::CS),
    });
    // Presentation State Identification.
    obj.put(text(tags::CONTENT_LABEL, VR::CS, content_label(result)));
    obj.put(text(
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        clip(
            &format!("AI {task} box, {}", dataset::NOT_FOR_DIAGNOSTIC_USE),
            dataset::LO_MAX_CHARS,
        ),
    ));
    obj.put(dataset::empty(tags::CONTENT_CREATOR_NAME, VR::PN));
    obj.put(text(
        tags::PRESENTATION_CREATION_DATE,
        VR::DA,
        stamp.date.clone(),
    ));
    obj.put(text(
        tags::PRESENTATION_CREATION_TIME,
        VR::TM,
        stamp.time.clone(),
    ));
    // Presentation State Relationship: the one image (frame) the box belongs to.
    obj.put(seq(
        tags::REFERENCED_SERIES_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([
            text(
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                source.series_instance_uid.clone(),
            ),
            seq(
                tags::REFERENCED_IMAGE_SEQUENCE,
                vec![referenced_image(source, frame)],
            ),
        ])],
    ));
    // Displayed Area: the whole image.
    let mut area = InMemDicomObject::from_element_iter([
        sl(tags::DISPLAYED_AREA_TOP_LEFT_HAND_CORNER, &[1, 1]),
        sl(
            tags::DISPLAYED_AREA_BOTTOM_RIGHT_HAND_CORNER,
            &[
                i32::try_from(source.columns).unwrap_or(i32::MAX),
                i32::try_from(source.rows).unwrap_or(i32::MAX),
            ],
        ),
        text(tags::PRESENTATION_SIZE_MODE, VR::CS, SCALE_TO_FIT),
    ]);
    match &source.pixel_spacing {
        Some(spacing) => {
            // The source's Pixel Spacing (row\\column, mm) as the presented spacing: the same values.
            area.put(dicom_core::DataElement::new(
                tags::PRESENTATION_PIXEL_SPACING,
                VR::DS,
                spacing.value().clone(),
            ));
        }
        None => {
            area.put(dataset::texts(
                tags::PRESENTATION_PIXEL_ASPECT_RATIO,
                VR::IS,
                &[SQUARE.to_string(), SQUARE.to_string()],
            ));
        }
    }
    obj.put(seq(tags::DISPLAYED_AREA_SELECTION_SEQUENCE, vec![area]));
    // Graphic Annotation and Graphic Layer.
    let label = clip(
        &format!("AI {task}: {}", result.label_text()),
        LABEL_MAX_CHARS,
    );
    obj.put(seq(
        tags::GRAPHIC_ANNOTATION_SEQUENCE,
        vec![graphic_annotation(b, &label)],
    ));
    obj.put(seq(
        tags::GRAPHIC_LAYER_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([
            text(tags::GRAPHIC_LAYER, VR::CS, LAYER),
            text(tags::GRAPHIC_LAYER_ORDER, VR::IS, LAYER_ORDER),
            us(
                tags::GRAPHIC_LAYER_RECOMMENDED_DISPLAY_GRAYSCALE_VALUE,
                &[LAYER_GRAY],
            ),
            text(
                tags::GRAPHIC_LAYER_DESCRIPTION,
                VR::LO,
                clip(
                    &format!("unimed AI result, {}", dataset::NOT_FOR_DIAGNOSTIC_USE),
                    dataset::LO_MAX_CHARS,
                ),
            ),
        ])],
    ));
    // Spatial Transformation: none.
    obj.put(us(tags::IMAGE_ROTATION, &[NO_ROTATION]));
    obj.put(text(tags::IMAGE_HORIZONTAL_FLIP, VR::CS, NO_FLIP));
    // Modality LUT: the source's, when it has one.
    if let Some(r) = &source.rescale {
        obj.put(r.intercept.clone());
        obj.put(r.slope.clone());
        let kind = r.kind.clone().unwrap_or_else(|| {
            if source.modality.as_deref() == Some(CT) {
                HOUNSFIELD.to_string()
            } else {
                UNSPECIFIED.to_string()
            }
        });
        obj.put(text(tags::RESCALE_TYPE, VR::LO, kind));
    }
    // Softcopy VOI LUT: the window the model's input was rendered with.
    if let Some(w) = window {
        obj.put(seq(
            tags::SOFTCOPY_VOILUT_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::WINDOW_CENTER, VR::DS, ds(w.center)),
                text(tags::WINDOW_WIDTH, VR::DS, ds(w.width)),
            ])],
        ));
    }
    // Softcopy Presentation LUT.
    let shape = if source.photometric == MONOCHROME1 {
        INVERSE
    } else {
        IDENTITY
    };
    obj.put(text(tags::PRESENTATION_LUT_SHAPE, VR::CS, shape));
    obj
}

/// Longest DS value (PS3.5 6.2: 16 bytes).
const DS_MAX_CHARS: usize = 16;

/// A decimal string of at most 16 characters for `v` (PS3.5 6.2 DS).
fn ds(v: f64) -> String {
    // Up to 6 decimals, trailing zeros dropped; fewer decimals when the integer part is long.
    for decimals in (0..=6).rev() {
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        if s.len() <= DS_MAX_CHARS {
            return s;
        }
    }
    format!("{v:.0e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit() {
        assert_eq!(ds(40.0), "40");
        assert_eq!(ds(-600.5), "-600.5");
        assert_eq!(ds(1.0 / 3.0), "0.333333");
        assert!(ds(123_456_789_012.123_45).len() <= DS_MAX_CHARS);
    }
}
