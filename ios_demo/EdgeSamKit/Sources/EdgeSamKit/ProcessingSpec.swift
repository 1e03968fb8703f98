import Foundation

/// The bundle manifest's `processing` object: `edge_sam_sdk.processing.ProcessingSpec`, whose
/// docstring defines every field. Decoded with the SDK's rules: a missing field takes SAM's
/// default, unknown fields are ignored, the old boolean `pad_point` reads as `"no_box"` /
/// `"never"`, and an unknown rule name is an `EdgeSamError.input` with the SDK's message.
public struct ProcessingSpec: Codable, Equatable, Hashable, Sendable {
    public static let resizeRules = ["longest_side", "longest_side_floor", "stretch"]
    public static let interpolations = ["pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa"]
    public static let postprocessRules = ["sam", "crop_low_res", "resize"]
    public static let padPointRules = ["no_box", "always", "never"]
    public static let maskRules = ["torch_bilinear", "torch_bicubic"]

    public var inputSize: Int = 1024
    public var resize: String = "longest_side"
    public var interpolation: String = "pil_bilinear"
    public var pixelMean: [Double] = [123.675, 116.28, 103.53]
    public var pixelStd: [Double] = [58.395, 57.12, 57.375]
    public var promptFrame: Int = 1024
    public var lowResSize: Int = 256
    public var maskThreshold: Double = 0.0
    public var padPoint: String = "no_box"
    public var boxFirst: Bool = false
    public var maxPoints: Int = 0
    public var padCoord: Double = 0.0
    public var postprocess: String = "sam"
    public var maskInterpolation: String = "torch_bilinear"
    public var lowResClamp: Double = 0.0

    enum CodingKeys: String, CodingKey {
        case inputSize = "input_size", resize, interpolation, pixelMean = "pixel_mean",
             pixelStd = "pixel_std", promptFrame = "prompt_frame", lowResSize = "low_res_size",
             maskThreshold = "mask_threshold", padPoint = "pad_point", boxFirst = "box_first",
             maxPoints = "max_points", padCoord = "pad_coord", postprocess,
             maskInterpolation = "mask_interpolation", lowResClamp = "low_res_clamp"
    }

    /// SAM's processing (the SDK's defaults); pass fields to change, then `validate()`.
    public init() {}

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func get<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        inputSize = try get(.inputSize, inputSize)
        resize = try get(.resize, resize)
        interpolation = try get(.interpolation, interpolation)
        pixelMean = try get(.pixelMean, pixelMean)
        pixelStd = try get(.pixelStd, pixelStd)
        promptFrame = try get(.promptFrame, promptFrame)
        lowResSize = try get(.lowResSize, lowResSize)
        maskThreshold = try get(.maskThreshold, maskThreshold)
        if let flag = try? c.decodeIfPresent(Bool.self, forKey: .padPoint) {
            padPoint = flag ? "no_box" : "never"  // earlier manifests stored a flag
        } else {
            padPoint = try get(.padPoint, padPoint)
        }
        boxFirst = try get(.boxFirst, boxFirst)
        maxPoints = try get(.maxPoints, maxPoints)
        padCoord = try get(.padCoord, padCoord)
        postprocess = try get(.postprocess, postprocess)
        maskInterpolation = try get(.maskInterpolation, maskInterpolation)
        lowResClamp = try get(.lowResClamp, lowResClamp)
        try validate()
    }

    /// The SDK's `__post_init__` checks (same messages).
    public func validate() throws {
        let checks: [(String, String, [String])] = [
            ("resize", resize, Self.resizeRules), ("interpolation", interpolation, Self.interpolations),
            ("postprocess", postprocess, Self.postprocessRules), ("pad_point", padPoint, Self.padPointRules),
            ("mask_interpolation", maskInterpolation, Self.maskRules),
        ]
        for (name, value, known) in checks where !known.contains(value) {
            throw EdgeSamError.input("unknown \(name) \(PyRepr.string(value)); known: \(PyRepr.list(known.sorted()))")
        }
        if pixelMean.count != 3 || pixelStd.count != 3 {
            throw EdgeSamError.input("pixel_mean and pixel_std need 3 values (RGB)")
        }
        if resize == "stretch" && postprocess == "sam" {
            throw EdgeSamError.input("resize 'stretch' needs postprocess 'resize' (nothing to crop)")
        }
    }
}

/// SAM 2's dynamic multimask: `{"stability_delta", "stability_thresh"}`.
public struct StabilityFallback: Codable, Equatable, Hashable, Sendable {
    public var stabilityDelta: Double
    public var stabilityThresh: Double

    public init(stabilityDelta: Double, stabilityThresh: Double) {
        self.stabilityDelta = stabilityDelta
        self.stabilityThresh = stabilityThresh
    }

    enum CodingKeys: String, CodingKey {
        case stabilityDelta = "stability_delta", stabilityThresh = "stability_thresh"
    }
}

/// The decoder's `extra.mask_selection`: which mask tokens to return (the host selects).
public struct MaskSelection: Codable, Equatable, Hashable, Sendable {
    public var multimask: [Int]
    public var single: [Int]
    public var singleFallback: StabilityFallback?

    public init(multimask: [Int] = [1, 2, 3], single: [Int] = [0], singleFallback: StabilityFallback? = nil) {
        self.multimask = multimask
        self.single = single
        self.singleFallback = singleFallback
    }

    enum CodingKeys: String, CodingKey {
        case multimask, single, singleFallback = "single_fallback"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        multimask = try c.decodeIfPresent([Int].self, forKey: .multimask) ?? [1, 2, 3]
        single = try c.decodeIfPresent([Int].self, forKey: .single) ?? [0]
        singleFallback = try c.decodeIfPresent(StabilityFallback.self, forKey: .singleFallback)
    }
}
