// A Core ML runner for `edgesam export --target coreml` bundles. Written against the
// documented Core ML API (iOS 17 / macOS 14); NOT compiled or run on our machines (Linux:
// this file is inside `#if canImport(CoreML)`, so there it only has to parse).
#if canImport(CoreML)
import CoreML
import EdgeSamKit
import Foundation

/// One step's wall time.
public struct Timing: Sendable, Hashable {
    public let step: String
    public let milliseconds: Double
}

/// The masks for one prompt set: the selected tokens' masks (`height x width`, row-major),
/// their predicted IoU, the tokens, their low-res logits (clamped as the spec says, to feed
/// back as `mask_input`) and the step times.
public struct Prediction: Sendable {
    public let width: Int
    public let height: Int
    public let tokens: [Int]
    public let masks: [[Bool]]
    public let scores: [Float]
    public let lowRes: [[Float]]
    /// SAM 2's `object_score_logits` (> 0: an object is present); nil for other decoders.
    public let objectScore: Float?
    public let timings: [Timing]
}

/// A loaded bundle: `encoder.mlpackage` and `decoder.mlpackage` compiled (once, cached by
/// their manifest sha256) and loaded, run with the manifest's names and EdgeSamKit's processing.
/// The encoder runs once per image (`setImage`), the decoder once per prompt (`predict`).
/// Calls are serialized by a lock; run them off the main thread.
public final class SamSession: @unchecked Sendable {
    public let manifest: Manifest
    public let spec: ProcessingSpec
    public let folder: URL
    /// Compile and load times of the two graphs.
    public let loadTimings: [Timing]

    private let encoder: MLModel
    private let decoder: MLModel
    private let lock = NSLock()
    private var features: [String: MLMultiArray] = [:]
    private var operators: MaskOperators?

    /// Load the bundle in `folder` (`manifest.json`, `encoder.mlpackage`, `decoder.mlpackage`).
    /// `verify` checks every file's sha256 first (slow for large encoders); `cache` is where
    /// compiled models are kept (default: Caches/EdgeSam).
    public static func load(bundle folder: URL, computeUnits: MLComputeUnits = .all, verify: Bool = false,
                            cache: URL? = nil) async throws -> SamSession {
        let manifest = try Manifest.read(folder: folder)
        guard manifest.target == "coreml" else {
            throw EdgeSamError.bundle("\(folder.path) is a '\(manifest.target)' bundle; this runner takes "
                + "'coreml' bundles (edgesam export --target coreml)")
        }
        if verify { try Manifest.verifyFiles(folder: folder, manifest: manifest) }
        let cacheDir = try cache ?? defaultCache()
        let clock = ContinuousClock()
        var timings: [Timing] = []
        var models: [MLModel] = []
        for name in ["encoder", "decoder"] {
            let graph = manifest.graphs[name]!
            let t0 = clock.now
            let compiled = try await compiled(folder.appendingPathComponent(graph.file), name: name,
                                              digest: graph.sha256, cache: cacheDir)
            let t1 = clock.now
            let config = MLModelConfiguration()
            config.computeUnits = computeUnits
            let model = try MLModel(contentsOf: compiled, configuration: config)
            timings += [Timing(step: "\(name) compile", milliseconds: ms(t1 - t0)),
                        Timing(step: "\(name) load", milliseconds: ms(clock.now - t1))]
            let declared = Set(model.modelDescription.inputDescriptionsByName.keys)
            if declared != Set(graph.inputNames) {
                throw EdgeSamError.bundle("bundle \(folder.path): \(name) graph inputs \(declared.sorted()) differ "
                    + "from the manifest's \(graph.inputNames)")
            }
            models.append(model)
        }
        return SamSession(manifest: manifest, folder: folder, encoder: models[0], decoder: models[1], timings: timings)
    }

    private init(manifest: Manifest, folder: URL, encoder: MLModel, decoder: MLModel, timings: [Timing]) {
        self.manifest = manifest
        self.spec = manifest.processing
        self.folder = folder
        self.encoder = encoder
        self.decoder = decoder
        self.loadTimings = timings
    }

    /// `folder/<file>` compiled to `.mlmodelc` under `cache` (reused while the digest matches).
    static func compiled(_ package: URL, name: String, digest: String, cache: URL) async throws -> URL {
        let target = cache.appendingPathComponent("\(name)-\(digest.prefix(16)).mlmodelc")
        if FileManager.default.fileExists(atPath: target.path) { return target }
        let temporary = try await MLModel.compileModel(at: package)
        try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: target.path) { try FileManager.default.removeItem(at: target) }
        try FileManager.default.moveItem(at: temporary, to: target)
        return target
    }

    static func defaultCache() throws -> URL {
        let caches = try FileManager.default.url(for: .cachesDirectory, in: .userDomainMask,
                                                 appropriateFor: nil, create: true)
        return caches.appendingPathComponent("EdgeSam", isDirectory: true)
    }

    /// One line about the bundle, for the UI.
    public var summary: String {
        "\(manifest.variant) (\(manifest.precision ?? "?")), input \(spec.inputSize), decoder \(manifest.decoderKind)"
    }

    /// Run the encoder on `image`; keeps its outputs for `predict`. Returns the step times.
    @discardableResult
    public func setImage(_ image: RGBImage) throws -> [Timing] {
        lock.lock()
        defer { lock.unlock() }
        let clock = ContinuousClock()
        let t0 = clock.now
        let input = try Processing.preprocess(image, spec)
        let ops = try Processing.maskOperators(height: image.height, width: image.width, spec)
        let s = spec.inputSize
        let feed = try MLDictionaryFeatureProvider(dictionary: ["image": array(input, [1, 3, s, s])])
        let t1 = clock.now
        let out = try encoder.prediction(from: feed)
        var kept: [String: MLMultiArray] = [:]
        for name in manifest.encoder.outputNames {
            guard let value = out.featureValue(for: name)?.multiArrayValue else {
                throw EdgeSamError.bundle("the encoder did not return '\(name)', which the manifest lists")
            }
            kept[name] = value
        }
        features = kept
        operators = ops
        return [Timing(step: "preprocess", milliseconds: ms(t1 - t0)),
                Timing(step: "encoder", milliseconds: ms(clock.now - t1))]
    }

    /// Masks for clicks (`points` flat `x, y` image pixels, `labels` 1 / 0) and/or a `box`
    /// (XYXY pixels): the manifest's `mask_selection` tokens (multimask or single, SAM 2's
    /// stability fallback included), upscaled to the image and thresholded.
    public func predict(points: [Double]?, labels: [Double]?, box: [Double]?, multimask: Bool) throws -> Prediction {
        lock.lock()
        defer { lock.unlock() }
        guard let ops = operators, !features.isEmpty else { throw EdgeSamError.input("set an image first") }
        let clock = ContinuousClock()
        let t0 = clock.now
        let prompts = try Processing.decoderPrompts(points: points, labels: labels, box: box,
                                                    height: ops.height, width: ops.width, spec)
        let n = prompts.count
        try checkPointCount(n)
        let low = spec.lowResSize
        var feed: [String: Any] = [:]
        for input in manifest.decoder.inputs {
            switch input.name {
            case "point_coords": feed[input.name] = try array(prompts.coords, [1, n, 2])
            case "point_labels": feed[input.name] = try array(prompts.labels, [1, n])
            case "mask_input": feed[input.name] = try array([Float](repeating: 0, count: low * low), [1, 1, low, low])
            case "has_mask_input": feed[input.name] = try array([0], [1])
            default:
                guard let value = features[input.name] else {
                    throw EdgeSamError.bundle("the encoder did not produce '\(input.name)', which the decoder takes")
                }
                feed[input.name] = value
            }
        }
        let provider = try MLDictionaryFeatureProvider(dictionary: feed)
        let t1 = clock.now
        let out = try decoder.prediction(from: provider)
        let t2 = clock.now
        let lowRes = try scalars(out, "low_res_masks")
        let iou = try scalars(out, "iou_predictions")
        let objectScore = try manifest.decoder.outputNames.contains("object_score_logits")
            ? scalars(out, "object_score_logits").first : nil
        let selection = manifest.decoder.maskSelection
        let tokens = Processing.selectTokens(lowRes: lowRes, scores: iou,
                                             tokens: multimask ? selection.multimask : selection.single,
                                             candidates: selection.multimask, fallback: selection.singleFallback, spec)
        let area = low * low
        var masks: [[Bool]] = []
        var lows: [[Float]] = []
        for t in tokens {
            masks.append(Processing.threshold(Processing.postprocessMask(lowRes, offset: t * area, ops, spec), spec))
            lows.append(Processing.clampLowRes(Array(lowRes[(t * area)..<((t + 1) * area)]), spec))
        }
        let timings = [Timing(step: "prompt", milliseconds: ms(t1 - t0)),
                       Timing(step: "decoder", milliseconds: ms(t2 - t1)),
                       Timing(step: "postprocess", milliseconds: ms(clock.now - t2))]
        return Prediction(width: ops.width, height: ops.height, tokens: tokens, masks: masks,
                          scores: tokens.map { iou[$0] }, lowRes: lows, objectScore: objectScore, timings: timings)
    }

    /// The decoder's `N`: fixed (EfficientSAM: 6) or within the exported range (`--max-points`).
    private func checkPointCount(_ n: Int) throws {
        guard let coords = manifest.decoder.inputs.first(where: { $0.name == "point_coords" }),
              coords.shape.count == 3 else { return }
        switch coords.shape[1] {
        case .fixed(let fixed) where fixed != n:
            throw EdgeSamError.input("this decoder takes exactly \(fixed) prompt points, got \(n)")
        case .dynamic(let axis):
            let range = manifest.decoder.coreml?.shapeRanges?[axis] ?? [1, Int.max]
            if n < range[0] || n > range[1] {
                throw EdgeSamError.input("this decoder takes \(range[0])...\(range[1]) prompt points (clicks, box "
                    + "corners and padding), got \(n); re-export with a larger --max-points for more")
            }
        default: break
        }
    }

    private func array(_ values: [Float], _ shape: [Int]) throws -> MLMultiArray {
        MLMultiArray(MLShapedArray<Float>(scalars: values, shape: shape))
    }

    private func scalars(_ out: MLFeatureProvider, _ name: String) throws -> [Float] {
        guard let value = out.featureValue(for: name)?.multiArrayValue else {
            throw EdgeSamError.bundle("the decoder did not return '\(name)'")
        }
        return MLShapedArray<Float>(value).scalars
    }
}

func ms(_ d: Duration) -> Double {
    Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15
}
#endif
