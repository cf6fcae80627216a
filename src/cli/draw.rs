//! `--draw PNG`: the image the model was given (for DICOM: the windowed 8-bit rendering, at the original
//! size) with the REC answer's box or the REG input box outlined. Without a box (other tasks, or a REC
//! answer that is not a box) the image is written as it is, which also shows what windowing produced.

use std::io::BufWriter;
use std::path::Path;

use anyhow::Result;
use image::{ImageFormat, Rgb, RgbImage};

use super::atomic;

/// Outline colour: pure red stands out on grayscale studies, which are most of them.
pub const BOX_COLOR: Rgb<u8> = Rgb([255, 0, 0]);
/// Line thickness is the smaller image side divided by this (at least one pixel), so the outline stays
/// visible on a 2048² radiograph and does not swallow a 64² MR.
const THICKNESS_DIVISOR: u32 = 200;

/// Outline thickness in pixels for an image of this size.
pub fn thickness(width: u32, height: u32) -> u32 {
    (width.min(height) / THICKNESS_DIVISOR).max(1)
}

/// Draws the outline of `bbox` (`[x1, y1, x2, y2]` in pixels, either corner order) clipped to the image.
/// The outline lies inside the box: its outer edge is on the box's pixels.
pub fn draw_box(image: &mut RgbImage, bbox: [f64; 4]) {
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 || bbox.iter().any(|v| !v.is_finite()) {
        return;
    }
    let clamp_x = |v: f64| v.round().clamp(0.0, f64::from(w - 1)) as u32;
    let clamp_y = |v: f64| v.round().clamp(0.0, f64::from(h - 1)) as u32;
    let (x1, x2) = (clamp_x(bbox[0].min(bbox[2])), clamp_x(bbox[0].max(bbox[2])));
    let (y1, y2) = (clamp_y(bbox[1].min(bbox[3])), clamp_y(bbox[1].max(bbox[3])));
    let t = thickness(w, h);
    for y in y1..=y2 {
        for x in x1..=x2 {
            let on_edge = x < x1 + t || x + t > x2 || y < y1 + t || y + t > y2;
            if on_edge {
                image.put_pixel(x, y, BOX_COLOR);
            }
        }
    }
}

/// Writes `image` with `bbox` (if any) outlined to `path` as PNG, atomically.
pub fn write(path: &Path, image: &RgbImage, bbox: Option<[f64; 4]>) -> Result<()> {
    let mut canvas = image.clone();
    if let Some(b) = bbox {
        draw_box(&mut canvas, b);
    }
    atomic::write_with(path, |file| {
        canvas
            .write_to(&mut BufWriter::new(file), ImageFormat::Png)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outline_is_on_the_box_edges_only() {
        let mut img = RgbImage::new(20, 10);
        draw_box(&mut img, [2.0, 3.0, 8.0, 7.0]);
        assert_eq!(*img.get_pixel(2, 3), BOX_COLOR);
        assert_eq!(*img.get_pixel(8, 7), BOX_COLOR);
        assert_eq!(*img.get_pixel(5, 3), BOX_COLOR);
        assert_eq!(
            *img.get_pixel(5, 5),
            Rgb([0, 0, 0]),
            "inside stays untouched"
        );
        assert_eq!(
            *img.get_pixel(9, 5),
            Rgb([0, 0, 0]),
            "outside stays untouched"
        );
    }

    #[test]
    fn boxes_outside_the_image_are_clipped() {
        let mut img = RgbImage::new(4, 4);
        draw_box(&mut img, [-10.0, -10.0, 100.0, 100.0]);
        assert_eq!(*img.get_pixel(0, 0), BOX_COLOR);
        assert_eq!(*img.get_pixel(3, 3), BOX_COLOR);
        draw_box(&mut img, [f64::NAN, 0.0, 1.0, 1.0]);
    }
}
