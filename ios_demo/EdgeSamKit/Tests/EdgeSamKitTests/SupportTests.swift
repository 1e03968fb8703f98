import EdgeSamKit
import Foundation
import XCTest

/// The .npy reader, SHA-256 (files and `.mlpackage` folders, as the manifest records them)
/// and the prompt rules' errors.
final class SupportTests: XCTestCase {
    func testNpyRoundTrip() throws {
        let values: [Float] = [0, 1.5, -2.25, 3e-7, 1e6, -0.0]
        let a = try NpyArray.parse(NpyArray.encode(values, shape: [2, 3]))
        XCTAssertEqual(a.shape, [2, 3])
        XCTAssertEqual(a.dtype, "<f4")
        XCTAssertEqual(try a.floats(), values)
        XCTAssertThrowsError(try NpyArray.parse(Data("not numpy".utf8)))
        let one = try NpyArray.parse(NpyArray.encode([7], shape: [1]))
        XCTAssertEqual(one.shape, [1])
    }

    func testSHA256() throws {
        XCTAssertEqual(SHA256.hex(Data()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex(Data("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex(Data(repeating: UInt8(ascii: "a"), count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }

    func testSHA256TreeMatchesTheSDK() throws {
        // The digest edge_sam_sdk.bundle.sha256_tree gives this folder; "a/b" sorts before
        // "a.txt" (Python sorts paths by component), unlike a plain string sort.
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("edgesam-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let files = ["a.txt": "hello", "a/b": "weights\n", "Data/empty": "", "big.txt": String(repeating: "x", count: 1000)]
        for (path, text) in files {
            let url = tmp.appendingPathComponent(path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        XCTAssertEqual(try SHA256.tree(tmp), "e6e6b8d7ecc735d020864857e62ac5212af506d13a1244bfaf4b03f34431dde9")
        XCTAssertEqual(try SHA256.tree(tmp.appendingPathComponent("a.txt")), SHA256.hex(Data("hello".utf8)))
    }

    func testPromptRules() throws {
        var spec = ProcessingSpec()
        spec.resize = "stretch"
        spec.postprocess = "resize"
        spec.maxPoints = 6
        spec.padCoord = -1
        spec.padPoint = "never"
        let two = try Processing.decoderPrompts(points: [10, 20], labels: [1], box: [0, 0, 50, 50],
                                                height: 100, width: 200, spec)
        XCTAssertEqual(two.labels, [1, 2, 3, -1, -1, -1])
        XCTAssertEqual(Array(two.coords.suffix(2)), [-1, -1])
        XCTAssertThrowsError(try Processing.decoderPrompts(points: Array(repeating: 5, count: 10),
                                                           labels: Array(repeating: 1, count: 5), box: [0, 0, 1, 1],
                                                           height: 100, width: 200, spec)) {
            XCTAssertEqual($0 as? EdgeSamError, .input("this variant's decoder takes at most 6 prompt points "
                + "(a box counts as 2), got 7"))
        }
        let none = try Processing.decoderPrompts(points: nil, labels: nil, box: nil, height: 10, width: 10, ProcessingSpec())
        XCTAssertEqual(none.count, 0)
        var sam2 = ProcessingSpec()
        sam2.padPoint = "always"
        sam2.boxFirst = true
        let p = try Processing.decoderPrompts(points: [1, 1], labels: [0], box: [0, 0, 2, 2], height: 1024, width: 1024, sam2)
        XCTAssertEqual(p.labels, [2, 3, 0, -1])
        let thin = try RGBImage(width: 3000, height: 1, pixels: [UInt8](repeating: 0, count: 9000))
        XCTAssertThrowsError(try Processing.preprocess(thin, ProcessingSpec())) {
            XCTAssertEqual($0 as? EdgeSamError, .input("image 3000x1 is too elongated for this variant (aspect over "
                + "3000:1): resized, one side would be 0 pixels; crop it first"))
        }
        XCTAssertThrowsError(try Processing.checkGeometry(height: 20000, width: 7000, ProcessingSpec())) {
            XCTAssertEqual($0 as? EdgeSamError, .input("image is 7000x20000 pixels, over the SDK's limit of 134217728 "
                + "(134 MP); downscale it first"))
        }
        var clamp = ProcessingSpec()
        clamp.lowResClamp = 32
        XCTAssertEqual(Processing.clampLowRes([-40, 3, 40], clamp), [-32, 3, 32])
    }
}
