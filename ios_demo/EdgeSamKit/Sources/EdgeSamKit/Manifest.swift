import Foundation

/// A tensor dimension in the manifest: a size, or a dynamic axis name (`"B"`, `"N"`).
public enum Dim: Codable, Equatable, Hashable, Sendable, CustomStringConvertible {
    case fixed(Int)
    case dynamic(String)

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(Int.self) { self = .fixed(n) } else { self = .dynamic(try c.decode(String.self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .fixed(let n): try c.encode(n)
        case .dynamic(let s): try c.encode(s)
        }
    }

    public var description: String {
        switch self {
        case .fixed(let n): return "\(n)"
        case .dynamic(let s): return s
        }
    }
}

/// One graph input or output: `{"name", "shape", "dtype"}`.
public struct TensorInfo: Codable, Equatable, Hashable, Sendable {
    public var name: String
    public var shape: [Dim]
    public var dtype: String

    /// The shape with dynamic axes replaced by `sizes` (`["B": 1, "N": 3]`); unknown ones by 1.
    public func concreteShape(_ sizes: [String: Int]) -> [Int] {
        shape.map {
            switch $0 {
            case .fixed(let n): return n
            case .dynamic(let s): return sizes[s] ?? 1
            }
        }
    }
}

/// A graph's `extra` (the decoder's token selection and the encoder outputs it takes).
public struct GraphExtra: Codable, Equatable, Sendable {
    public var maskSelection: MaskSelection?
    public var fromEncoder: [String]?

    enum CodingKeys: String, CodingKey {
        case maskSelection = "mask_selection", fromEncoder = "from_encoder"
    }
}

/// A Core ML graph's export facts (`coreml` in the graph entry): the dynamic axes' ranges.
public struct CoreMLFacts: Codable, Equatable, Sendable {
    public var precision: String?
    public var deploymentTarget: String?
    public var compression: String?
    public var shapeRanges: [String: [Int]]?

    enum CodingKeys: String, CodingKey {
        case precision, compression, deploymentTarget = "deployment_target", shapeRanges = "shape_ranges"
    }
}

/// A data file a graph keeps its weights in (`data_files`).
public struct DataFile: Codable, Equatable, Sendable {
    public var file: String
    public var sha256: String
}

/// `manifest["graphs"][name]`: the graph file, its digest, inputs and outputs.
public struct GraphInfo: Codable, Equatable, Sendable {
    public var file: String
    public var sha256: String
    public var inputs: [TensorInfo]
    public var outputs: [TensorInfo]
    public var precision: String?
    public var extra: GraphExtra?
    public var coreml: CoreMLFacts?
    public var dataFiles: [DataFile]?

    enum CodingKeys: String, CodingKey {
        case file, sha256, inputs, outputs, precision, extra, coreml, dataFiles = "data_files"
    }

    public var inputNames: [String] { inputs.map(\.name) }
    public var outputNames: [String] { outputs.map(\.name) }
    public var maskSelection: MaskSelection { extra?.maskSelection ?? MaskSelection() }
}

/// A bundle's `manifest.json` (`edge_sam_sdk/bundle.py`); decode it with `Manifest.read(folder:)`.
public struct Manifest: Codable, Equatable, Sendable {
    public static let formatVersion = 1
    public static let fileName = "manifest.json"
    static let required = ["format_version", "variant", "decoder_kind", "target", "processing", "graphs"]

    public var formatVersion: Int
    public var sdkVersion: String?
    public var variant: String
    public var family: String?
    public var decoderKind: String
    public var target: String
    public var precision: String?
    public var processing: ProcessingSpec
    public var graphs: [String: GraphInfo]
    public var license: String?

    enum CodingKeys: String, CodingKey {
        case formatVersion = "format_version", sdkVersion = "sdk_version", variant, family,
             decoderKind = "decoder_kind", target, precision, processing, graphs, license
    }

    public var encoder: GraphInfo { graphs["encoder"]! }
    public var decoder: GraphInfo { graphs["decoder"]! }

    /// Read and validate `folder/manifest.json` as `read_manifest` does, then decode it: the
    /// structural checks of `edge_sam_sdk/manifest_schema.py` with its messages (JSON object,
    /// format version, required keys, rule names, files inside the bundle); other type and
    /// range problems are reported with the decoder's description of them.
    public static func read(folder: URL) throws -> Manifest {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw EdgeSamError.bundle("bundle folder not found: \(folder.path)")
        }
        let file = folder.appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw EdgeSamError.bundle("\(folder.path) is not a bundle: \(fileName) is missing")
        }
        return try decode(try Data(contentsOf: file), path: file.path)
    }

    /// Validate and decode manifest bytes; `path` names the file in messages.
    public static func decode(_ data: Data, path: String = fileName) throws -> Manifest {
        let raw: JSONValue
        do {
            raw = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw EdgeSamError.bundle("\(path) is corrupt: \(describe(error))")
        }
        guard case .object(let top) = raw else {
            throw EdgeSamError.bundle("\(path) is corrupt: expected a JSON object, got \(raw.pyType)")
        }
        if let version = top["format_version"], version != .int(formatVersion) {
            throw EdgeSamError.bundle("\(path): unknown bundle format version \(version.pyRepr) "
                + "(this SDK reads version \(formatVersion)); re-export the bundle")
        }
        // The schema's required keys (edge_sam_sdk/manifest_schema.py), first problem named.
        var missing = required.filter { top[$0] == nil }
        for name in ["encoder", "decoder"] {
            if case .object(let entry)? = top["graphs"]?[name] {
                missing += ["file", "sha256", "inputs", "outputs"].filter { entry[$0] == nil }.map { "graphs.\(name).\($0)" }
            } else if top["graphs"] != nil {
                missing.append("graphs.\(name)")
            }
        }
        if let first = missing.first {
            let more = missing.count > 1 ? " (and \(missing.count - 1) more problem\(missing.count > 2 ? "s" : ""))" : ""
            throw EdgeSamError.bundle("\(path) is invalid: \(first): required key is missing\(more)")
        }
        if case .object(let processing)? = top["processing"] {
            let rules: [(String, [String])] = [
                ("resize", ProcessingSpec.resizeRules), ("interpolation", ProcessingSpec.interpolations),
                ("pad_point", ProcessingSpec.padPointRules), ("postprocess", ProcessingSpec.postprocessRules),
                ("mask_interpolation", ProcessingSpec.maskRules)]
            for (key, known) in rules {
                if case .string(let value)? = processing[key], !known.contains(value) {
                    let choices = known.dropLast().map(PyRepr.string).joined(separator: ", ") + " or "
                        + PyRepr.string(known.last!)
                    throw EdgeSamError.bundle("\(path) is invalid: processing.\(key): Input should be \(choices)")
                }
            }
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch EdgeSamError.input(let message) {
            throw EdgeSamError.bundle("\(path) is invalid: processing: \(message)")
        } catch {
            throw EdgeSamError.bundle("\(path) is invalid: \(describe(error))")
        }
        for name in manifest.graphs.keys.sorted() {
            let g = manifest.graphs[name]!
            for (key, file) in [("file", g.file)] + (g.dataFiles ?? []).enumerated().map({ ("data_files.\($0).file", $1.file) }) {
                if let problem = relativePathProblem(file) {
                    throw EdgeSamError.bundle("\(path) is invalid: graphs.\(name).\(key): \(problem)")
                }
            }
        }
        return manifest
    }

    /// Files a manifest names must be plain relative POSIX paths inside the bundle (the
    /// SDK's manifest schema): nil when `file` is one, else what is wrong.
    static func relativePathProblem(_ file: String) -> String? {
        if file.isEmpty || file.contains("\0") || file.contains("\\") || file.hasPrefix("/") || file.contains(":") {
            return "must be a relative path inside the bundle (no '/', '\\', ':' or NUL prefix)"
        }
        if file.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) {
            return "must be a plain relative path inside the bundle (no '.', '..' or empty segments)"
        }
        return nil
    }

    /// `verify_files`: every graph file (and data file) exists with the recorded sha256
    /// (folders such as `.mlpackage` hashed as `sha256_tree` does).
    public static func verifyFiles(folder: URL, manifest: Manifest) throws {
        for name in ["encoder", "decoder"] + manifest.graphs.keys.sorted().filter({ $0 != "encoder" && $0 != "decoder" }) {
            let g = manifest.graphs[name]!
            let entries = [(g.file, g.sha256)] + (g.dataFiles ?? []).map { ($0.file, $0.sha256) }
            for (file, digest) in entries {
                let url = folder.appendingPathComponent(file)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw EdgeSamError.bundle("bundle \(folder.path): \(name) file \(PyRepr.string(file)) is missing")
                }
                let actual = try SHA256.tree(url)
                if actual != digest {
                    throw EdgeSamError.bundle("bundle \(folder.path): \(PyRepr.string(file)) has sha256 "
                        + "\(actual.prefix(12))..., the manifest records \(digest.prefix(12))...; "
                        + "the file is corrupt or was replaced")
                }
            }
        }
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.dataCorrupted(let c): return c.debugDescription
        case DecodingError.keyNotFound(let k, let c):
            return "missing \(PyRepr.string(k.stringValue)) at \(codingPath(c.codingPath))"
        case DecodingError.typeMismatch(let t, let c): return "expected \(t) at \(codingPath(c.codingPath))"
        case DecodingError.valueNotFound(let t, let c): return "expected \(t) at \(codingPath(c.codingPath))"
        default: return "\(error)"
        }
    }

    static func codingPath(_ path: [CodingKey]) -> String {
        path.isEmpty ? "the top level" : path.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}
