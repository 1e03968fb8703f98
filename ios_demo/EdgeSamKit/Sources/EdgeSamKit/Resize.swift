import Foundation

/// For each output pixel along one axis, the `count` input indices it reads (clamped to the
/// image) and their weights, row-major `outSize x count`.
public struct Taps: Sendable {
    public let outSize: Int
    public let count: Int
    public let index: [Int]
    public let weight: [Double]
}

/// Resampling rules, mirroring `edge_sam_sdk/resize.py`:
///
/// * `pil_bilinear`, `pil_bicubic`: Pillow's `Image.resize` on uint8, bit for bit
///   (antialiased when shrinking, fixed-point weights, two passes in Pillow's order);
/// * `torch_bilinear`, `torch_bicubic`: `F.interpolate(align_corners=False)` without
///   antialias (bicubic: A = -0.75, edge pixels repeated), on the float image;
/// * `torch_bilinear_aa`: the same with `antialias=True` (torchvision `Resize` on tensors).
public enum Resize {
    public static let rules = ["pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa", "torch_bicubic"]
    static let precisionBits = 32 - 8 - 2  // Pillow's fixed-point precision for 8-bit images

    static func triangle(_ x: Double) -> Double {
        let a = abs(x)
        return a < 1.0 ? 1.0 - a : 0.0
    }

    static func cubic(_ x: Double, _ a: Double) -> Double {
        let t = abs(x)
        if t < 1.0 { return ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0 }
        if t < 2.0 { return ((a * t - 5.0 * a) * t + 8.0 * a) * t - 4.0 * a }
        return 0.0
    }

    /// Pillow's (and torch's antialias) scheme: the filter stretched by the scale when
    /// shrinking, centred at `(i + 0.5) * scale`, renormalised over the taps inside the image.
    static func supportTaps(_ inSize: Int, _ outSize: Int, _ baseSupport: Double,
                            _ filter: (Double) -> Double) -> Taps {
        let scale = Double(inSize) / Double(outSize)
        let filterscale = max(scale, 1.0)
        let support = baseSupport * filterscale
        let n = Int(support.rounded(.up)) * 2 + 1
        var index = [Int](repeating: 0, count: outSize * n)
        var weight = [Double](repeating: 0, count: outSize * n)
        for o in 0..<outSize {
            let center = (Double(o) + 0.5) * scale
            let xmin = max(Int(center - support + 0.5), 0)  // Int() truncates, as np.trunc
            let xsize = min(Int(center + support + 0.5), inSize) - xmin
            var total = 0.0
            for j in 0..<n {
                let w = j < xsize ? filter((Double(j + xmin) - center + 0.5) / filterscale) : 0.0
                weight[o * n + j] = w
                total += w
                index[o * n + j] = min(xmin + j, inSize - 1)
            }
            for j in 0..<n { weight[o * n + j] = total != 0 ? weight[o * n + j] / total : 0.0 }
        }
        return Taps(outSize: outSize, count: n, index: index, weight: weight)
    }

    /// `F.interpolate(align_corners=False)` without antialiasing.
    static func torchTaps(_ inSize: Int, _ outSize: Int, bicubic: Bool) -> Taps {
        let scale = Double(inSize) / Double(outSize)
        let n = bicubic ? 4 : 2
        var index = [Int](repeating: 0, count: outSize * n)
        var weight = [Double](repeating: 0, count: outSize * n)
        for o in 0..<outSize {
            var src = (Double(o) + 0.5) * scale - 0.5
            if !bicubic {
                src = max(src, 0.0)
                let i0 = min(Int(src.rounded(.down)), inSize - 1)
                let frac = src - Double(i0)
                index[2 * o] = i0
                index[2 * o + 1] = min(i0 + 1, inSize - 1)
                weight[2 * o] = 1.0 - frac
                weight[2 * o + 1] = frac
            } else {
                let i0 = Int(src.rounded(.down))
                let t = src - Double(i0)
                for k in 0..<4 {
                    index[4 * o + k] = min(max(i0 + k - 1, 0), inSize - 1)
                    weight[4 * o + k] = cubic(t - Double(k - 1), -0.75)
                }
            }
        }
        return Taps(outSize: outSize, count: n, index: index, weight: weight)
    }

    /// Taps of `rule` from `inSize` to `outSize` pixels along one axis.
    public static func taps(_ inSize: Int, _ outSize: Int, _ rule: String) throws -> Taps {
        switch rule {
        case "pil_bilinear", "torch_bilinear_aa": return supportTaps(inSize, outSize, 1.0, triangle)
        case "pil_bicubic": return supportTaps(inSize, outSize, 2.0) { cubic($0, -0.5) }
        case "torch_bilinear": return torchTaps(inSize, outSize, bicubic: false)
        case "torch_bicubic": return torchTaps(inSize, outSize, bicubic: true)
        default:
            throw EdgeSamError.input("unknown resampling rule \(PyRepr.string(rule)); known: \(PyRepr.list(rules))")
        }
    }

    /// The `outSize x inSize` matrix of `rule`, row-major (repeated indices summed).
    public static func matrix(_ inSize: Int, _ outSize: Int, _ rule: String) throws -> [Double] {
        let t = try taps(inSize, outSize, rule)
        var m = [Double](repeating: 0, count: outSize * inSize)
        for o in 0..<outSize {
            for j in 0..<t.count { m[o * inSize + t.index[o * t.count + j]] += t.weight[o * t.count + j] }
        }
        return m
    }

    /// Resize an RGB image to `outHeight x outWidth` with `rule`: `pil_*` rules give uint8
    /// values exactly as Pillow; `torch_*` rules the float pixel values torch computes (0..255
    /// scale, not rounded). Row-major `h x w x 3`.
    public static func resizeImage(_ image: RGBImage, outHeight: Int, outWidth: Int, rule: String) throws -> [Double] {
        guard rules.contains(rule) else {
            throw EdgeSamError.input("unknown interpolation \(PyRepr.string(rule)); known: \(PyRepr.list(rules))")
        }
        let (h, w) = (image.height, image.width)
        if rule.hasPrefix("pil_") {
            // Pillow (>= 10 ImagingResampleInner) runs the vertical pass first only when the
            // height shrinks by more than twice as many pixels as the width does.
            let verticalFirst = (h - outHeight) > 0 && (h - outHeight) > (w - outWidth) * 2
            var cur = image.pixels.map { Int32($0) }
            var (ch, cw) = (h, w)
            for axis in verticalFirst ? [0, 1] : [1, 0] {
                if axis == 0 && ch != outHeight {
                    cur = try pilAxis(cur, ch, cw, outHeight, axis: 0, rule)
                    ch = outHeight
                } else if axis == 1 && cw != outWidth {
                    cur = try pilAxis(cur, ch, cw, outWidth, axis: 1, rule)
                    cw = outWidth
                }
            }
            return cur.map { Double($0) }
        }
        var cur = image.pixels.map { Double($0) }
        var ch = h
        if ch != outHeight {
            cur = try floatAxis(cur, ch, w, outHeight, axis: 0, rule)
            ch = outHeight
        }
        if w != outWidth { cur = try floatAxis(cur, ch, w, outWidth, axis: 1, rule) }
        return cur
    }

    static func pilAxis(_ img: [Int32], _ h: Int, _ w: Int, _ outSize: Int, axis: Int, _ rule: String) throws -> [Int32] {
        let t = try taps(axis == 0 ? h : w, outSize, rule)
        let one = Double(1 << precisionBits)
        let fixed = t.weight.map { Int64(($0 * one + ($0 < 0 ? -0.5 : 0.5)).rounded(.towardZero)) }
        let (oh, ow) = axis == 0 ? (outSize, w) : (h, outSize)
        var out = [Int32](repeating: 0, count: oh * ow * 3)
        let half = Int64(1) << Int64(precisionBits - 1)
        img.withUnsafeBufferPointer { src in
            t.index.withUnsafeBufferPointer { index in
                fixed.withUnsafeBufferPointer { fx in
                    out.withUnsafeMutableBufferPointer { dst in
                        for y in 0..<oh {
                            for x in 0..<ow {
                                let o = axis == 0 ? y : x
                                for c in 0..<3 {
                                    var acc = half
                                    for j in 0..<t.count {
                                        let i = index[o * t.count + j]
                                        let s = axis == 0 ? src[(i * w + x) * 3 + c] : src[(y * w + i) * 3 + c]
                                        acc += Int64(s) * fx[o * t.count + j]
                                    }
                                    dst[(y * ow + x) * 3 + c] = Int32(min(max(acc >> Int64(precisionBits), 0), 255))
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    static func floatAxis(_ img: [Double], _ h: Int, _ w: Int, _ outSize: Int, axis: Int, _ rule: String) throws -> [Double] {
        let t = try taps(axis == 0 ? h : w, outSize, rule)
        let (oh, ow) = axis == 0 ? (outSize, w) : (h, outSize)
        var out = [Double](repeating: 0, count: oh * ow * 3)
        img.withUnsafeBufferPointer { src in
            t.index.withUnsafeBufferPointer { index in
                t.weight.withUnsafeBufferPointer { wt in
                    out.withUnsafeMutableBufferPointer { dst in
                        for y in 0..<oh {
                            for x in 0..<ow {
                                let o = axis == 0 ? y : x
                                for c in 0..<3 {
                                    var acc = 0.0
                                    for j in 0..<t.count {
                                        let i = index[o * t.count + j]
                                        acc += (axis == 0 ? src[(i * w + x) * 3 + c] : src[(y * w + i) * 3 + c])
                                            * wt[o * t.count + j]
                                    }
                                    dst[(y * ow + x) * 3 + c] = acc
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }
}
