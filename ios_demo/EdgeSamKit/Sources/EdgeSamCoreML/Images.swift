// CGImage <-> EdgeSamKit: RGB pixels for the encoder and mask overlays for display. Written
// against the documented Core Graphics API; NOT compiled on our machines (Linux has no
// Core Graphics, so this file is empty there).
#if canImport(CoreGraphics)
import CoreGraphics
import EdgeSamKit
import Foundation

extension RGBImage {
    /// The image's RGB pixels (sRGB, alpha dropped), drawn at its pixel size. The CGImage is
    /// taken as it is: draw a `UIImage` upright first (its `imageOrientation` is not applied here).
    public init(cgImage: CGImage) throws {
        let (w, h) = (cgImage.width, cgImage.height)
        var rgbx = [UInt8](repeating: 0, count: w * h * 4)
        let drawn: Bool = rgbx.withUnsafeMutableBytes { buffer in
            guard let space = CGColorSpace(name: CGColorSpace.sRGB),
                  let context = CGContext(data: buffer.baseAddress, width: w, height: h, bitsPerComponent: 8,
                                          bytesPerRow: 4 * w, space: space,
                                          bitmapInfo: CGImageAlphaInfo.noneSkipLast.rawValue) else { return false }
            context.draw(cgImage, in: CGRect(x: 0, y: 0, width: w, height: h))
            return true
        }
        guard drawn else { throw EdgeSamError.input("could not draw the image into an RGB bitmap") }
        var rgb = [UInt8](repeating: 0, count: w * h * 3)
        for i in 0..<(w * h) {
            rgb[3 * i] = rgbx[4 * i]
            rgb[3 * i + 1] = rgbx[4 * i + 1]
            rgb[3 * i + 2] = rgbx[4 * i + 2]
        }
        try self.init(width: w, height: h, pixels: rgb)
    }
}

/// A `width x height` RGBA overlay: `color` (0...255 RGB, `alpha` 0...1) where `mask` is
/// true, transparent elsewhere.
public func maskOverlay(_ mask: [Bool], width: Int, height: Int, color: (UInt8, UInt8, UInt8) = (30, 144, 255),
                        alpha: Double = 0.5) -> CGImage? {
    guard mask.count == width * height else { return nil }
    let a = UInt8(max(0, min(255, alpha * 255)))
    // Premultiplied RGBA, as Core Graphics wants it.
    let (r, g, b) = (UInt8(Int(color.0) * Int(a) / 255), UInt8(Int(color.1) * Int(a) / 255),
                     UInt8(Int(color.2) * Int(a) / 255))
    var rgba = [UInt8](repeating: 0, count: width * height * 4)
    for i in 0..<(width * height) where mask[i] {
        rgba[4 * i] = r
        rgba[4 * i + 1] = g
        rgba[4 * i + 2] = b
        rgba[4 * i + 3] = a
    }
    guard let space = CGColorSpace(name: CGColorSpace.sRGB),
          let provider = CGDataProvider(data: Data(rgba) as CFData) else { return nil }
    return CGImage(width: width, height: height, bitsPerComponent: 8, bitsPerPixel: 32, bytesPerRow: 4 * width,
                   space: space, bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.premultipliedLast.rawValue),
                   provider: provider, decode: nil, shouldInterpolate: false, intent: .defaultIntent)
}
#endif
