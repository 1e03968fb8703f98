import EdgeSamKit
import Foundation
import XCTest

/// Checks EdgeSamKit against the test vectors written by `edgesam vectors --out DIR` (format:
/// `edge_sam_sdk/vectors.py`), the ones android_demo's Kotlin port reads. The folder comes
/// from the environment variable `EDGESAM_VECTORS` (ios_demo/test_processing.sh sets it);
/// unset, the test is skipped; set, a folder without vectors is a failure.
/// Prints `PASS`/`FAIL <case> <check>: <detail>` per check and `SUMMARY <passed>/<total> checks passed`.
final class VectorTests: XCTestCase {
    struct Index: Decodable {
        let format: String
        let version: Int
        let tolerances: [String: Double]
        let cases: [Case]
    }

    struct Selected: Decodable { let tokens: [Int] }

    struct Prompt: Decodable {
        let name: String
        let points: [[Double]]?
        let labels: [Double]?
        let box: [Double]?
        let point_coords: [[Double]]
        let point_labels: [Double]
    }

    struct Case: Decodable {
        let name: String
        let variant: String
        let processing: ProcessingSpec
        let mask_selection: MaskSelection
        let original_size: [Int]
        let resized_size: [Int]
        let image, resized, model_input, low_res, mask_logits, masks: String
        let iou: [Double]
        let stability: [Double]
        let selection: [String: Selected]
        let prompts: [Prompt]
    }

    final class Checker {
        var checks = 0
        var failures: [String] = []

        func check(_ name: String, _ what: String, _ ok: Bool, _ detail: String) {
            checks += 1
            let line = "\(ok ? "PASS" : "FAIL") \(name) \(what): \(detail)"
            if !ok { failures.append(line) }
            print(line)
        }
    }

    static func maxAbs(_ a: [Float], _ b: [Float]) -> Double {
        guard a.count == b.count else { return .infinity }
        var m = 0.0
        for i in a.indices { m = max(m, abs(Double(a[i]) - Double(b[i]))) }
        return m
    }

    func testEveryVector() throws {
        guard let path = ProcessInfo.processInfo.environment["EDGESAM_VECTORS"], !path.isEmpty else {
            throw XCTSkip("EDGESAM_VECTORS is not set: run ios_demo/test_processing.sh (or set it to a folder "
                + "written by `edgesam vectors --out DIR`)")
        }
        let dir = URL(fileURLWithPath: path)
        let indexURL = dir.appendingPathComponent("index.json")
        guard FileManager.default.fileExists(atPath: indexURL.path) else {
            return XCTFail("EDGESAM_VECTORS=\(path) has no index.json: no vectors to check")
        }
        let index = try JSONDecoder().decode(Index.self, from: Data(contentsOf: indexURL))
        XCTAssertEqual(index.format, "edgesam-vectors")
        XCTAssertEqual(index.version, 1)
        XCTAssertFalse(index.cases.isEmpty, "index.json lists no cases")
        let out = Checker()
        for c in index.cases { try runCase(dir, c, index.tolerances, out) }
        print("SUMMARY \(out.checks - out.failures.count)/\(out.checks) checks passed in \(index.cases.count) cases")
        XCTAssertGreaterThan(out.checks, 0)
        XCTAssertTrue(out.failures.isEmpty, out.failures.prefix(20).joined(separator: "\n"))
    }

    func runCase(_ dir: URL, _ c: Case, _ tol: [String: Double], _ out: Checker) throws {
        let spec = c.processing
        let (h, w) = (c.original_size[0], c.original_size[1])
        let load = { (file: String) in try NpyArray.read(dir.appendingPathComponent(file)) }
        let imageArray = try load(c.image)
        let image = try RGBImage(width: w, height: h, pixels: try imageArray.ints().map { UInt8($0) })

        // 1. resize
        let (resized, rh, rw) = try Processing.resized(image, spec)
        out.check(c.name, "resized_size", [rh, rw] == c.resized_size, "\([rh, rw]) vs \(c.resized_size)")
        let expResized = try load(c.resized)
        let diff = Self.maxAbs(resized.map { Float($0) }, try expResized.floats())
        let bound = expResized.dtype == "|u1" ? tol["resized_uint8_levels"]! : tol["resized_float_abs"]!
        out.check(c.name, "resized (\(spec.interpolation))", diff <= bound, "max diff \(diff) (bound \(bound))")

        // 2. model input
        let input = try Processing.preprocess(image, spec)
        let dIn = Self.maxAbs(input, try load(c.model_input).floats())
        out.check(c.name, "model_input", dIn <= tol["model_input_abs"]!, "max diff \(dIn)")

        // 3. prompts
        for p in c.prompts {
            let got = try Processing.decoderPrompts(points: p.points?.flatMap { $0 }, labels: p.labels, box: p.box,
                                                    height: h, width: w, spec)
            let expC = p.point_coords.flatMap { $0 }.map { Float($0) }
            let expL = p.point_labels.map { Float($0) }
            let dC = Self.maxAbs(got.coords, expC)
            out.check(c.name, "prompt \(p.name)", dC <= tol["prompt_abs"]! && got.labels == expL,
                      "coords max diff \(dC), labels \(got.labels) vs \(expL)")
        }

        // 4. mask upscaling and threshold, every token
        let low = try load(c.low_res).floats()
        let expLogits = try load(c.mask_logits).floats()
        let expMasks = try load(c.masks).ints()
        let area = spec.lowResSize * spec.lowResSize
        let tokens = low.count / area
        let ops = try Processing.maskOperators(height: h, width: w, spec)
        let ambiguity = tol["mask_ambiguity_abs"]!
        var worst = 0.0
        var maskDiff = 0
        var ambiguous = 0
        for t in 0..<tokens {
            let logits = Processing.postprocessMask(low, offset: t * area, ops, spec)
            let masks = Processing.threshold(logits, spec)
            for i in logits.indices {
                let e = Double(expLogits[t * h * w + i])
                worst = max(worst, abs(Double(logits[i]) - e))
                if masks[i] == (expMasks[t * h * w + i] != 0) { continue }
                if abs(e - spec.maskThreshold) <= ambiguity { ambiguous += 1 } else { maskDiff += 1 }
            }
        }
        out.check(c.name, "mask_logits (\(spec.postprocess), \(spec.maskInterpolation))",
                  worst <= tol["mask_logits_abs"]!, "max diff \(worst)")
        out.check(c.name, "masks", maskDiff == 0 && Double(ambiguous) <= tol["mask_ambiguous_max"]!,
                  "\(maskDiff) pixels differ, \(ambiguous) more whose expected logit is within \(ambiguity) of the threshold")

        // 5. stability scores and token selection
        var dS = 0.0
        for t in 0..<tokens {
            let s = Processing.stabilityScore(low, from: t * area, count: area, threshold: spec.maskThreshold, offset: 1.0)
            dS = max(dS, abs(Double(s) - c.stability[t]))
        }
        out.check(c.name, "stability", dS <= tol["scores_abs"]!, "max diff \(dS)")
        let iou = c.iou.map { Float($0) }
        let sel = c.mask_selection
        for (mode, toks) in [("multimask", sel.multimask), ("single", sel.single)] {
            let got = Processing.selectTokens(lowRes: low, scores: iou, tokens: toks, candidates: sel.multimask,
                                              fallback: sel.singleFallback, spec)
            let exp = c.selection[mode]?.tokens ?? []
            out.check(c.name, "select \(mode)", got == exp, "\(got) vs \(exp)")
        }
    }
}
