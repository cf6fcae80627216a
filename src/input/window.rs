//! VOI windowing: stored values (after the modality LUT) → 8-bit display values.
//!
//! Formulas: DICOM PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT, SIGMOID), with output range 0..=255.
//! The continuous result is rounded half up (`floor(y + 0.5)`), the usual choice for display.

use std::fmt;
use std::str::FromStr;

/// Largest 8-bit output value of the VOI LUT (`y_max` in PS3.3 C.11.2.1.2; `y_min` is 0).
const Y_MAX: f64 = u8::MAX as f64;

/// Smallest width of a LINEAR window: its formula divides by (width - 1) (PS3.3 C.11.2.1.2).
pub(crate) const MIN_LINEAR_WIDTH: f64 = 1.0;

/// A VOI window in modality units (for CT: Hounsfield units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub center: f64,
    pub width: f64,
}

impl Window {
    pub fn new(center: f64, width: f64) -> Self {
        Self { center, width }
    }
}

impl FromStr for Window {
    type Err = String;

    /// Parses `"center,width"`, e.g. `"40,400"` or `"-600,1500"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (c, w) = s
            .split_once(',')
            .ok_or_else(|| format!("window {s:?}: expected \"center,width\", e.g. \"40,400\""))?;
        let parse = |part: &str, what: &str| {
            part.trim()
                .parse::<f64>()
                .map_err(|e| format!("window {s:?}: {what} {part:?} is not a number ({e})"))
        };
        let (center, width) = (parse(c, "center")?, parse(w, "width")?);
        // An explicit window is LINEAR: checked here so that a bad flag is a usage error before any decoding.
        if !(center.is_finite() && width.is_finite() && width >= MIN_LINEAR_WIDTH) {
            return Err(format!(
                "window {s:?}: the width must be at least {MIN_LINEAR_WIDTH} and both numbers finite"
            ));
        }
        Ok(Self::new(center, width))
    }
}

/// Named CT windows (center/width in HU). These are the conventional radiology teaching values
/// (e.g. Radiopaedia, "Windowing (CT)"; the same numbers appear in most PACS viewers' presets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowPreset {
    Lung,
    Mediastinum,
    Bone,
    Brain,
    SoftTissue,
}

impl WindowPreset {
    pub const ALL: [WindowPreset; 5] = [
        WindowPreset::Lung,
        WindowPreset::Mediastinum,
        WindowPreset::Bone,
        WindowPreset::Brain,
        WindowPreset::SoftTissue,
    ];

    pub fn window(self) -> Window {
        match self {
            WindowPreset::Lung => Window::new(-600.0, 1500.0),
            WindowPreset::Mediastinum => Window::new(50.0, 350.0),
            WindowPreset::Bone => Window::new(400.0, 1800.0),
            WindowPreset::Brain => Window::new(40.0, 80.0),
            WindowPreset::SoftTissue => Window::new(50.0, 400.0),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            WindowPreset::Lung => "lung",
            WindowPreset::Mediastinum => "mediastinum",
            WindowPreset::Bone => "bone",
            WindowPreset::Brain => "brain",
            WindowPreset::SoftTissue => "soft-tissue",
        }
    }
}

impl fmt::Display for WindowPreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WindowPreset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        Self::ALL
            .into_iter()
            .find(|p| p.name() == key || (key == "softtissue" && *p == WindowPreset::SoftTissue))
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown window preset {s:?}; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// VOI LUT Function (0028,1056). Absent means LINEAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

impl VoiFunction {
    /// Parses the DICOM code string; `None` for a value the standard does not define.
    pub fn from_dicom(code: &str) -> Option<Self> {
        match code.trim().trim_end_matches('\0') {
            "LINEAR" => Some(VoiFunction::Linear),
            "LINEAR_EXACT" => Some(VoiFunction::LinearExact),
            "SIGMOID" => Some(VoiFunction::Sigmoid),
            _ => None,
        }
    }
}

/// Where the window that was applied came from (reported in `SourceKind::Dicom`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowSource {
    /// `InputOptions::window`.
    Explicit,
    /// `InputOptions::preset`.
    Preset(WindowPreset),
    /// The file's first WindowCenter/WindowWidth value.
    File,
    /// No window anywhere: the frame's minimum and maximum map to 0 and 255.
    MinMax,
}

/// Maps one modality value to 8 bits with the given window and function.
pub fn voi_to_u8(x: f64, window: Window, function: VoiFunction) -> u8 {
    let Window {
        center: c,
        width: w,
    } = window;
    let y = match function {
        VoiFunction::Linear => {
            // PS3.3 C.11.2.1.2.1: the -0.5 / (w-1) form keeps integer inputs on exact steps.
            if x <= c - 0.5 - (w - 1.0) / 2.0 {
                0.0
            } else if x > c - 0.5 + (w - 1.0) / 2.0 {
                Y_MAX
            } else {
                ((x - (c - 0.5)) / (w - 1.0) + 0.5) * Y_MAX
            }
        }
        VoiFunction::LinearExact => {
            if x <= c - w / 2.0 {
                0.0
            } else if x > c + w / 2.0 {
                Y_MAX
            } else {
                ((x - c) / w + 0.5) * Y_MAX
            }
        }
        VoiFunction::Sigmoid => Y_MAX / (1.0 + (-4.0 * (x - c) / w).exp()),
    };
    // Width 1 makes LINEAR a step; the ratio above is then never evaluated (the two branches meet).
    (y + 0.5).floor().clamp(0.0, Y_MAX) as u8
}

/// Min/max normalisation used when no window is known: `round((x - min) / (max - min) * 255)`;
/// a constant frame maps to 0.
pub fn minmax_to_u8(x: f64, min: f64, max: f64) -> u8 {
    if max > min {
        ((x - min) / (max - min) * Y_MAX + 0.5)
            .floor()
            .clamp(0.0, Y_MAX) as u8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_matches_standard_endpoints() {
        let w = Window::new(40.0, 400.0);
        // Bottom edge: c - 0.5 - (w-1)/2 = -160 → 0; top edge: > 239 → 255.
        assert_eq!(voi_to_u8(-160.0, w, VoiFunction::Linear), 0);
        assert_eq!(voi_to_u8(240.0, w, VoiFunction::Linear), 255);
        // Center: ((40 - 39.5)/399 + 0.5) * 255 = 127.82 → 128.
        assert_eq!(voi_to_u8(40.0, w, VoiFunction::Linear), 128);
        assert_eq!(voi_to_u8(-159.0, w, VoiFunction::Linear), 1);
    }

    #[test]
    fn linear_exact_and_sigmoid() {
        let w = Window::new(0.0, 100.0);
        assert_eq!(voi_to_u8(0.0, w, VoiFunction::LinearExact), 128);
        assert_eq!(voi_to_u8(-50.0, w, VoiFunction::LinearExact), 0);
        assert_eq!(voi_to_u8(25.0, w, VoiFunction::LinearExact), 191);
        assert_eq!(voi_to_u8(0.0, w, VoiFunction::Sigmoid), 128);
        // 255 / (1 + e^-4) = 250.33
        assert_eq!(voi_to_u8(100.0, w, VoiFunction::Sigmoid), 250);
    }

    #[test]
    fn parse_window_and_preset() {
        assert_eq!(
            "-600, 1500".parse::<Window>(),
            Ok(Window::new(-600.0, 1500.0))
        );
        assert!("40".parse::<Window>().is_err());
        assert_eq!(
            "Soft_Tissue".parse::<WindowPreset>(),
            Ok(WindowPreset::SoftTissue)
        );
        assert_eq!("lung".parse::<WindowPreset>(), Ok(WindowPreset::Lung));
        let err = "liver".parse::<WindowPreset>().unwrap_err();
        assert!(err.contains("mediastinum"), "{err}");
    }

    #[test]
    fn minmax() {
        assert_eq!(minmax_to_u8(5.0, 5.0, 15.0), 0);
        assert_eq!(minmax_to_u8(15.0, 5.0, 15.0), 255);
        assert_eq!(minmax_to_u8(10.0, 5.0, 15.0), 128);
        assert_eq!(minmax_to_u8(7.0, 7.0, 7.0), 0);
    }
}
