//! QR symbol rendering: the payload as a PNG or SVG image, with error correction level M
//! (what most scheme guidelines ask for on printed merchant codes).

use qrcode::{EcLevel, QrCode};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("payload does not fit in a QR symbol: {0}")]
    Symbol(#[from] qrcode::types::QrError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
}

/// Quiet zone around the symbol, in modules (ISO/IEC 18004 asks for 4).
const QUIET_ZONE_MODULES: usize = 4;

/// Renders `payload` as an SVG document.
pub fn render_svg(payload: &str, module_px: u32) -> Result<String, RenderError> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)?;
    Ok(code.render::<qrcode::render::svg::Color<'_>>().module_dimensions(module_px, module_px).quiet_zone(true).build())
}

/// Renders `payload` as an 8-bit greyscale PNG with `module_px` pixels per module.
pub fn render_png(payload: &str, module_px: u32) -> Result<Vec<u8>, RenderError> {
    let code = QrCode::with_error_correction_level(payload.as_bytes(), EcLevel::M)?;
    let modules = code.width();
    let module_px = module_px.clamp(1, 64) as usize;
    let side_modules = modules + 2 * QUIET_ZONE_MODULES;
    let side_px = side_modules * module_px;
    let colors = code.to_colors();
    let mut pixels = vec![255u8; side_px * side_px];
    for y in 0..modules {
        for x in 0..modules {
            if colors[y * modules + x] == qrcode::Color::Dark {
                let top = (y + QUIET_ZONE_MODULES) * module_px;
                let left = (x + QUIET_ZONE_MODULES) * module_px;
                for row in top..top + module_px {
                    pixels[row * side_px + left..row * side_px + left + module_px].fill(0);
                }
            }
        }
    }
    let mut png_bytes = Vec::new();
    {
        let side = u32::try_from(side_px).expect("QR images are small");
        let mut encoder = png::Encoder::new(&mut png_bytes, side, side);
        encoder.set_color(png::ColorType::Grayscale);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
    }
    Ok(png_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_png_and_svg() {
        let png = render_png("000201010211", 4).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let reader = decoder.read_info().unwrap();
        let (width, height) = reader.info().size();
        assert_eq!(width, height);
        // Version 1 symbol: 21 modules + 8 quiet-zone modules, 4 px each.
        assert_eq!(width, (21 + 8) * 4);
        let svg = render_svg("000201010211", 4).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg"));
    }
}
