import Foundation

/// A `.npy` array (format versions 1-3, C order, little-endian or byte types): `shape`, the
/// numpy `dtype` string (`|u1`, `|b1`, `<f4`, `<f8`, `<i4`, `<i8`) and the raw bytes.
/// Enough to read the SDK's test vectors and to save debugging dumps numpy can load.
public struct NpyArray: Sendable {
    public let shape: [Int]
    public let dtype: String
    public let data: Data

    public var count: Int { shape.reduce(1, *) }

    public static func read(_ url: URL) throws -> NpyArray {
        try parse(try Data(contentsOf: url), name: url.lastPathComponent)
    }

    public static func parse(_ bytes: Data, name: String = "array") throws -> NpyArray {
        let b = [UInt8](bytes.prefix(12))
        guard b.count >= 10, b[0] == 0x93, String(decoding: b[1..<6], as: UTF8.self) == "NUMPY" else {
            throw EdgeSamError.input("\(name) is not a .npy file")
        }
        let major = b[6]
        let headerLen = major == 1 ? Int(b[8]) | Int(b[9]) << 8
            : Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
        let start = major == 1 ? 10 : 12
        guard bytes.count >= start + headerLen else { throw EdgeSamError.input("\(name): truncated header") }
        let header = String(decoding: bytes[bytes.startIndex + start ..< bytes.startIndex + start + headerLen],
                            as: UTF8.self)
        guard let descr = field(header, "descr"), let shapeText = field(header, "shape") else {
            throw EdgeSamError.input("\(name): unreadable header \(header)")
        }
        if field(header, "fortran_order") == "True" { throw EdgeSamError.input("\(name): Fortran order") }
        let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let body = bytes.subdata(in: bytes.startIndex + start + headerLen ..< bytes.endIndex)
        let array = NpyArray(shape: shape, dtype: descr, data: body)
        guard body.count >= array.count * array.itemSize else {
            throw EdgeSamError.input("\(name): \(body.count) bytes of data for shape \(shape) \(descr)")
        }
        return array
    }

    /// The value of `'key': ...` in a header dict (quotes and parentheses stripped).
    static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        var rest = header[r.upperBound...].drop { $0 == " " }
        if rest.first == "'" {
            rest = rest.dropFirst()
            return rest.firstIndex(of: "'").map { String(rest[..<$0]) }
        }
        if rest.first == "(" {
            rest = rest.dropFirst()
            return rest.firstIndex(of: ")").map { String(rest[..<$0]) }
        }
        return String(rest.prefix { $0 != "," && $0 != "}" }).trimmingCharacters(in: .whitespaces)
    }

    var itemSize: Int {
        switch dtype {
        case "|u1", "|b1", "|i1": return 1
        case "<f4", "<i4": return 4
        default: return 8
        }
    }

    private func scalars<T>(_ type: T.Type) -> [T] {
        [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            _ = data.copyBytes(to: UnsafeMutableRawBufferPointer(buffer), count: count * MemoryLayout<T>.size)
            initialized = count
        }
    }

    /// The values as Float (`<f4`, `<f8`, and integer types converted).
    public func floats() throws -> [Float] {
        switch dtype {
        case "<f4": return scalars(Float.self)
        case "<f8": return scalars(Double.self).map { Float($0) }
        default: return try ints().map { Float($0) }
        }
    }

    /// The values as Double (`<f4` widened exactly).
    public func doubles() throws -> [Double] {
        switch dtype {
        case "<f8": return scalars(Double.self)
        case "<f4": return scalars(Float.self).map { Double($0) }
        default: return try ints().map { Double($0) }
        }
    }

    /// The values as Int (`|u1`, `|b1`, `|i1`, `<i4`, `<i8`).
    public func ints() throws -> [Int] {
        switch dtype {
        case "|u1", "|b1": return scalars(UInt8.self).map { Int($0) }
        case "|i1": return scalars(Int8.self).map { Int($0) }
        case "<i4": return scalars(Int32.self).map { Int($0) }
        case "<i8": return scalars(Int64.self).map { Int($0) }
        default: throw EdgeSamError.input("cannot read dtype \(dtype) as integers")
        }
    }

    /// A `.npy` (version 1.0) holding `values` (`<f4`) with `shape`.
    public static func encode(_ values: [Float], shape: [Int]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        out.append(contentsOf: [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)])
        out.append(contentsOf: Array(header.utf8))
        values.withUnsafeBufferPointer { out.append(Data(buffer: $0)) }
        return out
    }
}
