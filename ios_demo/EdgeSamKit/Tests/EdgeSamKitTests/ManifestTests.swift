import EdgeSamKit
import Foundation
import XCTest

/// The manifest schema and errors of `edge_sam_sdk/bundle.py`, on a real manifest written by
/// `edgesam export --variant mobile_sam --checkpoint synthetic:0 --target coreml`.
final class ManifestTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    func coremlManifest() throws -> Data {
        try Data(contentsOf: Self.fixtures.appendingPathComponent("coreml_manifest.json"))
    }

    func object(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func edited(_ change: (inout [String: Any]) -> Void) throws -> Data {
        var m = try object(try coremlManifest())
        change(&m)
        return try JSONSerialization.data(withJSONObject: m)
    }

    func assertBundleError(_ data: Data, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try Manifest.decode(data, path: "b/manifest.json"), file: file, line: line) {
            XCTAssertEqual($0 as? EdgeSamError, .bundle(message), file: file, line: line)
        }
    }

    func testCoreMLManifestNames() throws {
        let m = try Manifest.decode(try coremlManifest())
        XCTAssertEqual(m.target, "coreml")
        XCTAssertEqual(m.variant, "mobile_sam")
        XCTAssertEqual(m.processing, ProcessingSpec())
        XCTAssertEqual(m.encoder.file, "encoder.mlpackage")
        XCTAssertEqual(m.decoder.file, "decoder.mlpackage")
        XCTAssertEqual(m.encoder.inputNames, ["image"])
        XCTAssertEqual(m.encoder.outputNames, ["image_embeddings", "layer0_image_keys", "layer0_image_values",
                                               "layer0_image_queries"])
        XCTAssertEqual(m.decoder.inputNames, ["image_embeddings", "layer0_image_keys", "layer0_image_values",
                                              "layer0_image_queries", "point_coords", "point_labels", "mask_input",
                                              "has_mask_input"])
        XCTAssertEqual(m.decoder.outputNames, ["low_res_masks", "iou_predictions"])
        XCTAssertEqual(m.decoder.inputs[4].shape, [.dynamic("B"), .dynamic("N"), .fixed(2)])
        XCTAssertEqual(m.decoder.inputs[4].concreteShape(["B": 1, "N": 3]), [1, 3, 2])
        XCTAssertEqual(m.decoder.maskSelection, MaskSelection(multimask: [1, 2, 3], single: [0]))
        XCTAssertEqual(m.decoder.extra?.fromEncoder, Array(m.encoder.outputNames))
        XCTAssertEqual(m.decoder.coreml?.shapeRanges?["N"], [1, 16])
        XCTAssertEqual(m.decoder.coreml?.shapeRanges?["B"], [1, 64])
    }

    func testSchemaErrors() throws {
        assertBundleErrorPrefix(Data("{".utf8), "b/manifest.json is corrupt: ")
        assertBundleError(Data("[1]".utf8), "b/manifest.json is corrupt: expected a JSON object, got list")
        assertBundleError(try edited { $0["graphs"] = nil; $0["target"] = nil },
                          "b/manifest.json is invalid: target: required key is missing (and 1 more problem)")
        assertBundleError(try edited { $0["target"] = nil }, "b/manifest.json is invalid: target: required key is missing")
        assertBundleError(try edited { $0["format_version"] = 2 },
                          "b/manifest.json: unknown bundle format version 2 (this SDK reads version 1); re-export the bundle")
        assertBundleError(try edited { $0["format_version"] = "1" },
                          "b/manifest.json: unknown bundle format version '1' (this SDK reads version 1); re-export the bundle")
        assertBundleError(try edited {
            var graphs = $0["graphs"] as! [String: Any]
            var decoder = graphs["decoder"] as! [String: Any]
            decoder["sha256"] = nil
            graphs["decoder"] = decoder
            $0["graphs"] = graphs
        }, "b/manifest.json is invalid: graphs.decoder.sha256: required key is missing")
    }

    func testFilesStayInsideTheBundle() throws {
        for file in ["../encoder.mlpackage", "/etc/passwd", "a//b", "./x"] {
            let data = try edited {
                var graphs = $0["graphs"] as! [String: Any]
                var encoder = graphs["encoder"] as! [String: Any]
                encoder["file"] = file
                graphs["encoder"] = encoder
                $0["graphs"] = graphs
            }
            XCTAssertThrowsError(try Manifest.decode(data, path: "b/manifest.json"), file) {
                guard case .bundle(let m)? = $0 as? EdgeSamError else { return XCTFail("\($0)") }
                XCTAssertTrue(m.hasPrefix("b/manifest.json is invalid: graphs.encoder.file: must be a"), m)
            }
        }
    }

    func assertBundleErrorPrefix(_ data: Data, _ prefix: String) {
        XCTAssertThrowsError(try Manifest.decode(data, path: "b/manifest.json")) {
            guard case .bundle(let m)? = $0 as? EdgeSamError else { return XCTFail("\($0)") }
            XCTAssertTrue(m.hasPrefix(prefix), m)
        }
    }

    func testProcessingRules() throws {
        let decode = { (json: String) in try JSONDecoder().decode(ProcessingSpec.self, from: Data(json.utf8)) }
        XCTAssertEqual(try decode("{}"), ProcessingSpec())
        XCTAssertEqual(try decode(#"{"pad_point": false, "unknown_field": 1}"#).padPoint, "never")
        XCTAssertEqual(try decode(#"{"pad_point": true}"#).padPoint, "no_box")
        XCTAssertThrowsError(try decode(#"{"resize": "crop"}"#)) {
            XCTAssertEqual($0 as? EdgeSamError,
                           .input("unknown resize 'crop'; known: ['longest_side', 'longest_side_floor', 'stretch']"))
        }
        XCTAssertThrowsError(try decode(#"{"interpolation": "nearest"}"#)) {
            XCTAssertEqual($0 as? EdgeSamError, .input("unknown interpolation 'nearest'; known: ['pil_bicubic', "
                + "'pil_bilinear', 'torch_bilinear', 'torch_bilinear_aa']"))
        }
        XCTAssertThrowsError(try decode(#"{"resize": "stretch"}"#)) {
            XCTAssertEqual($0 as? EdgeSamError, .input("resize 'stretch' needs postprocess 'resize' (nothing to crop)"))
        }
        // Inside a manifest, rule errors are the schema's (bundle errors naming the key).
        XCTAssertThrowsError(try Manifest.decode(try edited { $0["processing"] = ["postprocess": "blur"] })) {
            XCTAssertEqual($0 as? EdgeSamError, .bundle("manifest.json is invalid: processing.postprocess: Input should "
                + "be 'sam', 'crop_low_res' or 'resize'"))
        }
        XCTAssertThrowsError(try Manifest.decode(try edited { $0["processing"] = ["resize": "stretch"] })) {
            XCTAssertEqual($0 as? EdgeSamError, .bundle("manifest.json is invalid: processing: resize 'stretch' needs "
                + "postprocess 'resize' (nothing to crop)"))
        }
    }

    func testReadFolder() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("edgesam-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        XCTAssertThrowsError(try Manifest.read(folder: tmp)) {
            XCTAssertEqual($0 as? EdgeSamError, .bundle("bundle folder not found: \(tmp.path)"))
        }
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        XCTAssertThrowsError(try Manifest.read(folder: tmp)) {
            XCTAssertEqual($0 as? EdgeSamError, .bundle("\(tmp.path) is not a bundle: manifest.json is missing"))
        }
        try coremlManifest().write(to: tmp.appendingPathComponent("manifest.json"))
        let m = try Manifest.read(folder: tmp)
        XCTAssertThrowsError(try Manifest.verifyFiles(folder: tmp, manifest: m)) {
            XCTAssertEqual($0 as? EdgeSamError, .bundle("bundle \(tmp.path): encoder file 'encoder.mlpackage' is missing"))
        }
    }
}
