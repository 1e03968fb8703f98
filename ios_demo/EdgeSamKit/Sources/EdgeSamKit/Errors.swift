import Foundation

/// The SDK's errors (`edge_sam_sdk/errors.py`), with the same messages.
///
/// `bundle`: `BundleError` (a bundle folder or manifest is missing, corrupt or of another
/// format version); `input`: `InputError` (a bad processing rule or prompt).
public enum EdgeSamError: Error, Equatable, Sendable, CustomStringConvertible, LocalizedError {
    case bundle(String)
    case input(String)

    public var message: String {
        switch self {
        case .bundle(let m), .input(let m): return m
        }
    }

    public var description: String {
        switch self {
        case .bundle(let m): return "BundleError: \(m)"
        case .input(let m): return "InputError: \(m)"
        }
    }

    public var errorDescription: String? { message }
}

/// A JSON value, for the manifest's structural checks and Python-style messages.
public enum JSONValue: Decodable, Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null; return }
        if let b = try? c.decode(Bool.self) { self = .bool(b); return }
        if let i = try? c.decode(Int.self) { self = .int(i); return }
        if let d = try? c.decode(Double.self) { self = .double(d); return }
        if let s = try? c.decode(String.self) { self = .string(s); return }
        if let a = try? c.decode([JSONValue].self) { self = .array(a); return }
        self = .object(try c.decode([String: JSONValue].self))
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    /// The Python type name of the value as `json.loads` gives it.
    public var pyType: String {
        switch self {
        case .null: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .array: return "list"
        case .object: return "dict"
        }
    }

    /// Python's `repr` of the value as `json.loads` gives it (`'text'`, `2`, `True`, `None`).
    public var pyRepr: String {
        switch self {
        case .null: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return "\(i)"
        case .double(let d): return "\(d)"
        case .string(let s): return PyRepr.string(s)
        case .array(let a): return "[" + a.map(\.pyRepr).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { "\(PyRepr.string($0)): \(o[$0]!.pyRepr)" }.joined(separator: ", ") + "}"
        }
    }
}

/// Python's `repr` of strings and string lists, as the SDK's messages quote them.
enum PyRepr {
    static func string(_ s: String) -> String { "'\(s)'" }

    static func list(_ items: [String]) -> String { "[" + items.map(string).joined(separator: ", ") + "]" }
}
