//! Options that had no effect on an image, or that were applied where they make little sense, said to the
//! user instead of dropped silently: a window on a PNG or a colour DICOM, `--frame` on a raster file, a
//! CT preset (Hounsfield units) on an MR image.

use super::{InputOptions, LoadedImage, SourceKind};

/// The DICOM modality whose units (HU) the window presets are defined in.
const PRESET_MODALITY: &str = "CT";

/// One sentence per option that was ignored or is doubtful for this image (empty when all is well).
pub fn option_notes(image: &LoadedImage, opts: &InputOptions) -> Vec<String> {
    let window = match (opts.window, opts.preset) {
        (Some(_), _) => Some("--window".to_string()),
        (None, Some(p)) => Some(format!("--preset {}", p.name())),
        (None, None) => None,
    };
    let mut notes = Vec::new();
    match &image.kind {
        SourceKind::Raster(format) => {
            if let Some(w) = &window {
                notes.push(format!(
                    "{w} was ignored: windows apply to grayscale DICOM, this image is {}",
                    format.name()
                ));
            }
            if let Some(f) = opts.frame {
                notes.push(format!(
                    "--frame {f} was ignored: frames apply to DICOM, this image is {}",
                    format.name()
                ));
            }
        }
        SourceKind::Dicom(d) => {
            if let (Some(w), None) = (&window, d.window) {
                notes.push(format!(
                    "{w} was ignored: windows apply to grayscale DICOM, this one is {}",
                    d.photometric_interpretation
                ));
            }
            let modality = d.modality.as_deref().unwrap_or("unknown");
            if let (Some(p), None, true) = (opts.preset, opts.window, d.window.is_some()) {
                if modality != PRESET_MODALITY {
                    notes.push(format!(
                        "--preset {} is a CT window in Hounsfield units, but this image's modality is {modality}",
                        p.name()
                    ));
                }
            }
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{DicomInfo, RasterFormat, Window, WindowPreset, WindowSource};

    fn dicom(modality: &str, window: bool) -> LoadedImage {
        LoadedImage {
            rgb: ::image::RgbImage::new(2, 2),
            kind: SourceKind::Dicom(DicomInfo {
                modality: Some(modality.into()),
                rows: 2,
                columns: 2,
                frames: 1,
                frame: 0,
                photometric_interpretation: if window { "MONOCHROME2" } else { "RGB" }.into(),
                bits_allocated: 16,
                bits_stored: 12,
                transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
                transfer_syntax_name: "Explicit VR Little Endian".into(),
                window: window.then_some((
                    Window {
                        center: 40.0,
                        width: 400.0,
                    },
                    WindowSource::Preset(WindowPreset::Lung),
                )),
            }),
        }
    }

    #[test]
    fn notes_name_the_ignored_option() {
        let png = LoadedImage {
            rgb: ::image::RgbImage::new(2, 2),
            kind: SourceKind::Raster(RasterFormat::Png),
        };
        let lung = InputOptions {
            preset: Some(WindowPreset::Lung),
            frame: Some(2),
            ..InputOptions::default()
        };
        let notes = option_notes(&png, &lung);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("--preset lung was ignored"),
            "{notes:?}"
        );
        assert!(notes[1].starts_with("--frame 2 was ignored"), "{notes:?}");
        assert!(option_notes(&png, &InputOptions::default()).is_empty());

        let rgb = option_notes(&dicom("US", false), &lung);
        assert!(rgb[0].contains("this one is RGB"), "{rgb:?}");
        let mr = option_notes(&dicom("MR", true), &lung);
        assert!(mr[0].contains("modality is MR"), "{mr:?}");
        assert!(option_notes(&dicom("CT", true), &lung).is_empty());
    }
}
