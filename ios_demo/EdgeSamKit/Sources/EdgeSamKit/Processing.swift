import Foundation

/// An `H x W` RGB image, row-major `h x w x 3` bytes (the SDK's `HxWx3` uint8).
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public let pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        guard width >= 1, height >= 1 else { throw EdgeSamError.input("image is empty: shape (\(height), \(width), 3)") }
        guard pixels.count == width * height * 3 else {
            throw EdgeSamError.input("image must have shape HxWx3 (RGB): \(pixels.count) bytes for \(height)x\(width)")
        }
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}

/// The decoder's prompt inputs for one prompt set: `point_coords` `N x 2` (row-major) and
/// `point_labels` `N`.
public struct DecoderPrompts: Sendable, Equatable {
    public let coords: [Float]
    public let labels: [Float]
    public var count: Int { labels.count }
}

/// A sparse row-major matrix (compressed rows): the nonzero taps of one mask upscaling axis.
public struct SparseRows: Sendable {
    public let start: [Int]
    public let col: [Int]
    public let value: [Double]

    init(dense: [Double], rows: Int, cols: Int) {
        var start = [0]
        var col: [Int] = []
        var value: [Double] = []
        for r in 0..<rows {
            for k in 0..<cols where dense[r * cols + k] != 0 {
                col.append(k)
                value.append(dense[r * cols + k])
            }
            start.append(col.count)
        }
        (self.start, self.col, self.value) = (start, col, value)
    }
}

/// The per-axis operators of the mask upscaling for one original size (`rows`: `H x L`,
/// `cols`: `W x L`); compute once per image with `Processing.maskOperators`.
public struct MaskOperators: Sendable {
    public let height: Int
    public let width: Int
    public let rows: SparseRows
    public let cols: SparseRows
}

/// Pre- and post-processing, mirroring `edge_sam_sdk/processing.py` step by step.
public enum Processing {
    /// `(h, w)` of an `H x W` image after resize `rule` to side `longSide`.
    public static func resizedShape(height h: Int, width w: Int, longSide: Int, rule: String) -> (h: Int, w: Int) {
        switch rule {
        case "stretch": return (longSide, longSide)
        case "longest_side_floor":
            let aspect = Double(w) / Double(h)
            return aspect >= 1 ? (Int(Double(longSide) / aspect), longSide) : (longSide, Int(Double(longSide) * aspect))
        default:
            let scale = Double(longSide) * 1.0 / Double(max(h, w))
            return (Int(Double(h) * scale + 0.5), Int(Double(w) * scale + 0.5))
        }
    }

    /// Largest image (pixels, `H * W`) the SDK takes (`MAX_IMAGE_PIXELS`, 134 MP).
    public static let maxImagePixels = 1 << 27

    /// `check_image`'s size limit and `check_geometry`: `EdgeSamError.input` (the SDK's
    /// messages) when the image is too large, or so elongated that a resized side (encoder
    /// input, prompt frame, NanoSAM's low-res crop) would be 0 pixels.
    public static func checkGeometry(height h: Int, width w: Int, _ spec: ProcessingSpec) throws {
        guard h >= 1, w >= 1 else { throw EdgeSamError.input("image is empty: shape (\(h), \(w), 3)") }
        if h * w > maxImagePixels {
            throw EdgeSamError.input("image is \(w)x\(h) pixels, over the SDK's limit of \(maxImagePixels) "
                + "(\(String(format: "%.0f", Double(maxImagePixels) / 1e6)) MP); downscale it first")
        }
        var sizes = [resizedShape(height: h, width: w, longSide: spec.inputSize, rule: spec.resize),
                     resizedShape(height: h, width: w, longSide: spec.promptFrame, rule: spec.resize)]
        if spec.postprocess == "crop_low_res" {
            let low = spec.lowResSize
            sizes.append(h >= w ? (low, Int(Double(low * w) / Double(h))) : (Int(Double(low * h) / Double(w)), low))
        }
        if sizes.contains(where: { min($0.h, $0.w) < 1 }) {
            let aspect = max(Double(w) / Double(h), Double(h) / Double(w))
            throw EdgeSamError.input("image \(w)x\(h) is too elongated for this variant (aspect over "
                + "\(String(format: "%.0f", aspect)):1): resized, one side would be 0 pixels; crop it first")
        }
    }

    /// The resized image (`h x w x 3`, 0..255; uint8 values for `pil_*` rules) and its size.
    public static func resized(_ image: RGBImage, _ spec: ProcessingSpec) throws -> (pixels: [Double], h: Int, w: Int) {
        try checkGeometry(height: image.height, width: image.width, spec)
        let size = resizedShape(height: image.height, width: image.width, longSide: spec.inputSize, rule: spec.resize)
        let pixels = try Resize.resizeImage(image, outHeight: size.h, outWidth: size.w, rule: spec.interpolation)
        return (pixels, size.h, size.w)
    }

    /// Image -> encoder input `1x3xSxS` float32 (NCHW): the resized image normalized with
    /// `pixel_mean`/`pixel_std` in float32, zero padded bottom/right.
    public static func preprocess(_ image: RGBImage, _ spec: ProcessingSpec) throws -> [Float] {
        let (pixels, h, w) = try resized(image, spec)
        let s = spec.inputSize
        var out = [Float](repeating: 0, count: 3 * s * s)
        for c in 0..<3 {
            let mean = Float(spec.pixelMean[c])
            let std = Float(spec.pixelStd[c])
            for y in 0..<h {
                for x in 0..<w { out[(c * s + y) * s + x] = (Float(pixels[(y * w + x) * 3 + c]) - mean) / std }
            }
        }
        return out
    }

    /// Pixel `(x, y)` pairs (flat) of an `H x W` image -> the decoder's prompt frame.
    public static func transformCoords(_ xy: [Double], height h: Int, width w: Int, _ spec: ProcessingSpec) -> [Float] {
        if spec.resize == "longest_side_floor" {
            let f = Double(spec.promptFrame) / Double(max(h, w))
            return xy.map { Float($0 * f) }
        }
        let size = resizedShape(height: h, width: w, longSide: spec.promptFrame, rule: spec.resize)
        let fx = Double(size.w) / Double(w)
        let fy = Double(size.h) / Double(h)
        return xy.enumerated().map { i, v in Float(v * (i % 2 == 0 ? fx : fy)) }
    }

    /// Clicks (`points` flat `x, y` pixels, `labels` 1 foreground / 0 background) and/or a
    /// `box` (XYXY pixels) -> the decoder's points and labels: box corners labelled 2 and 3
    /// after the clicks (before them with `box_first`), padding per `pad_point`/`max_points`.
    public static func decoderPrompts(points: [Double]?, labels: [Double]?, box: [Double]?,
                                      height h: Int, width w: Int, _ spec: ProcessingSpec) throws -> DecoderPrompts {
        var coords: [Float] = []
        var labs: [Float] = []
        if let points, let labels {
            guard points.count == 2 * labels.count else {
                throw EdgeSamError.input("\(points.count / 2) points but \(labels.count) labels")
            }
            coords += transformCoords(points, height: h, width: w, spec)
            labs += labels.map { Float($0) }
        }
        if let box {
            guard box.count == 4 else { throw EdgeSamError.input("a box is 4 numbers (x0, y0, x1, y1), got \(box.count)") }
            let corners = transformCoords(box, height: h, width: w, spec)
            let at = spec.boxFirst ? 0 : labs.count
            coords.insert(contentsOf: corners, at: 2 * at)
            labs.insert(contentsOf: [2, 3], at: at)
        }
        let n = labs.count
        let extra: Int
        if spec.maxPoints > 0 {
            if n > spec.maxPoints {
                throw EdgeSamError.input("this variant's decoder takes at most \(spec.maxPoints) prompt points "
                    + "(a box counts as 2), got \(n)")
            }
            extra = spec.maxPoints - n
        } else {
            let pad: Bool
            switch spec.padPoint {
            case "always": pad = n > 0
            case "no_box": pad = points != nil && box == nil
            default: pad = false
            }
            extra = pad ? 1 : 0
        }
        for _ in 0..<extra {
            coords += [Float(spec.padCoord), Float(spec.padCoord)]
            labs.append(-1)
        }
        return DecoderPrompts(coords: coords, labels: labs)
    }

    /// The mask upscaling operators for an `H x W` original (see `postprocess_masks`):
    /// `"sam"` upscale to the prompt frame, crop the resized image, resize to the original;
    /// `"crop_low_res"` crop the low-res logits to the image's share, one resize;
    /// `"resize"` one resize of the whole map. Composed in float64.
    public static func maskOperators(height h: Int, width w: Int, _ spec: ProcessingSpec) throws -> MaskOperators {
        try checkGeometry(height: h, width: w, spec)
        let size = spec.lowResSize
        let rule = spec.maskInterpolation
        let ry: [Double], rx: [Double]
        switch spec.postprocess {
        case "resize":
            ry = try Resize.matrix(size, h, rule)
            rx = try Resize.matrix(size, w, rule)
        case "crop_low_res":
            let limH = h >= w ? size : Int(Double(size) * Double(h) / Double(w))
            let limW = h >= w ? Int(Double(size) * Double(w) / Double(h)) : size
            ry = embed(try Resize.matrix(limH, h, rule), rows: h, cols: limH, into: size)
            rx = embed(try Resize.matrix(limW, w, rule), rows: w, cols: limW, into: size)
        default:
            let frame = spec.promptFrame
            let rs = resizedShape(height: h, width: w, longSide: frame, rule: spec.resize)
            let up = try Resize.matrix(size, frame, rule)
            ry = matmul(try Resize.matrix(rs.h, h, rule), up, n: h, k: rs.h, m: size)
            rx = matmul(try Resize.matrix(rs.w, w, rule), up, n: w, k: rs.w, m: size)
        }
        return MaskOperators(height: h, width: w, rows: SparseRows(dense: ry, rows: h, cols: size),
                             cols: SparseRows(dense: rx, rows: w, cols: size))
    }

    /// `a` (`rows x cols`) as the left columns of a `rows x width` matrix.
    static func embed(_ a: [Double], rows: Int, cols: Int, into width: Int) -> [Double] {
        var out = [Double](repeating: 0, count: rows * width)
        for r in 0..<rows {
            for c in 0..<cols { out[r * width + c] = a[r * cols + c] }
        }
        return out
    }

    /// `a` (`n x k`) times the first `k` rows of `b` (`? x m`), row-major.
    static func matmul(_ a: [Double], _ b: [Double], n: Int, k: Int, m: Int) -> [Double] {
        var out = [Double](repeating: 0, count: n * m)
        for i in 0..<n {
            for j in 0..<k where a[i * k + j] != 0 {
                let v = a[i * k + j]
                for c in 0..<m { out[i * m + c] += v * b[j * m + c] }
            }
        }
        return out
    }

    /// One mask's low-res logits (`L x L` starting at `offset` in `lowRes`) -> logits `H x W`
    /// at the original size.
    public static func postprocessMask(_ lowRes: [Float], offset: Int = 0, _ ops: MaskOperators,
                                       _ spec: ProcessingSpec) -> [Float] {
        let size = spec.lowResSize
        let (h, w) = (ops.height, ops.width)
        var tmp = [Double](repeating: 0, count: h * size)  // rows @ low
        var out = [Float](repeating: 0, count: h * w)
        lowRes.withUnsafeBufferPointer { low in
            tmp.withUnsafeMutableBufferPointer { t in
                let ry = ops.rows
                for y in 0..<h {
                    for e in ry.start[y]..<ry.start[y + 1] {
                        let base = offset + ry.col[e] * size
                        let v = ry.value[e]
                        for c in 0..<size { t[y * size + c] += v * Double(low[base + c]) }
                    }
                }
            }
        }
        tmp.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                let rx = ops.cols
                for y in 0..<h {
                    for x in 0..<w {
                        var acc = 0.0
                        for e in rx.start[x]..<rx.start[x + 1] { acc += t[y * size + rx.col[e]] * rx.value[e] }
                        o[y * w + x] = Float(acc)
                    }
                }
            }
        }
        return out
    }

    /// Foreground masks: `logits > mask_threshold`.
    public static func threshold(_ logits: [Float], _ spec: ProcessingSpec) -> [Bool] {
        let t = Float(spec.maskThreshold)
        return logits.map { $0 > t }
    }

    /// `#(logits > t + offset) / #(logits > t - offset)` over `count` logits from `from`;
    /// 1 when nothing exceeds the lower threshold (SAM 2's definition).
    public static func stabilityScore(_ logits: [Float], from: Int, count: Int, threshold: Double,
                                      offset: Double) -> Float {
        var hi = 0
        var lo = 0
        // numpy compares float32 logits with a Python float in float32.
        let (upper, lower) = (Float(threshold + offset), Float(threshold - offset))
        for i in from..<(from + count) {
            if logits[i] > upper { hi += 1 }
            if logits[i] > lower { lo += 1 }
        }
        return lo > 0 ? Float(Double(hi) / Double(lo)) : 1.0
    }

    /// The tokens to return for one prompt set from the decoder's `M x L x L` logits and `M`
    /// scores: `tokens`, or with SAM 2's `fallback` (one token asked for whose stability score,
    /// offset `stability_delta`, is below `stability_thresh`) the best-scoring candidate.
    public static func selectTokens(lowRes: [Float], scores: [Float], tokens: [Int], candidates: [Int],
                                    fallback: StabilityFallback?, _ spec: ProcessingSpec) -> [Int] {
        guard let fallback, tokens.count == 1, let first = candidates.first else { return tokens }
        let area = spec.lowResSize * spec.lowResSize
        let stability = stabilityScore(lowRes, from: tokens[0] * area, count: area,
                                       threshold: spec.maskThreshold, offset: fallback.stabilityDelta)
        if stability >= Float(fallback.stabilityThresh) { return tokens }
        var best = first
        for c in candidates where scores[c] > scores[best] { best = c }
        return [best]
    }

    /// Low-res logits clamped to `[-low_res_clamp, low_res_clamp]` when the spec says so
    /// (SAM 2: 32), as the SDK returns them (masks are computed before clamping).
    public static func clampLowRes(_ lowRes: [Float], _ spec: ProcessingSpec) -> [Float] {
        guard spec.lowResClamp > 0 else { return lowRes }
        let c = Float(spec.lowResClamp)
        return lowRes.map { min(max($0, -c), c) }
    }
}
