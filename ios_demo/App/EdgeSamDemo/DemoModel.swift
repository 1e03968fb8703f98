import EdgeSamCoreML
import EdgeSamKit
import Foundation
import Observation
import PhotosUI
import SwiftUI
import UIKit

/// What a touch on the photo does.
enum PromptMode: String, CaseIterable, Identifiable {
    case positive = "+ point"
    case negative = "− point"
    case box = "box"

    var id: String { rawValue }
}

/// A click in image pixels.
struct Click: Identifiable, Equatable {
    let id = UUID()
    let x: Double
    let y: Double
    let positive: Bool
}

/// The app's state: the loaded bundle, the photo, the prompts and the latest masks.
@MainActor
@Observable
final class DemoModel {
    /// Photos are drawn upright and scaled to at most this many pixels on the long side before
    /// segmenting (the SDK's processing then runs on that image, as it would in Python).
    static let maxSide: CGFloat = 1600
    /// Where an imported bundle is copied (its Files location may not stay readable).
    static let importedBundle = URL.applicationSupportDirectory.appending(path: "Bundles/imported", directoryHint: .isDirectory)

    var status = "Load a bundle (Files), or add one to the app's EdgeSamBundle resource folder"
    var session: SamSession?
    var photo: UIImage?
    var image: RGBImage?
    var clicks: [Click] = []
    var box: CGRect?
    var mode: PromptMode = .positive
    var multimask = false
    var prediction: Prediction?
    var chosen = 0
    var overlay: CGImage?
    var bundleTimings: [Timing] = []
    var imageTimings: [Timing] = []
    var promptTimings: [Timing] = []
    var busy = false
    private var generation = 0

    /// On launch: the last imported bundle, else the one in the app's resources.
    func loadInitialBundle() async {
        if FileManager.default.fileExists(atPath: Self.importedBundle.appending(path: Manifest.fileName).path) {
            await load(Self.importedBundle)
        } else if let resource = Bundle.main.url(forResource: "EdgeSamBundle", withExtension: nil),
                  FileManager.default.fileExists(atPath: resource.appending(path: Manifest.fileName).path) {
            await load(resource)
        }
    }

    /// A bundle folder picked with `fileImporter`: copied into Application Support, then loaded.
    func importBundle(_ picked: URL) async {
        do {
            let scoped = picked.startAccessingSecurityScopedResource()
            defer { if scoped { picked.stopAccessingSecurityScopedResource() } }
            _ = try Manifest.read(folder: picked)  // refuse a folder that is not a bundle before copying
            let fm = FileManager.default
            try fm.createDirectory(at: Self.importedBundle.deletingLastPathComponent(), withIntermediateDirectories: true)
            if fm.fileExists(atPath: Self.importedBundle.path) { try fm.removeItem(at: Self.importedBundle) }
            try fm.copyItem(at: picked, to: Self.importedBundle)
        } catch {
            status = "Import failed: \(error.localizedDescription)"
            return
        }
        await load(Self.importedBundle)
    }

    func load(_ folder: URL) async {
        busy = true
        defer { busy = false }
        status = "Compiling and loading \(folder.lastPathComponent) (the first run compiles the models)…"
        do {
            let loaded = try await SamSession.load(bundle: folder)
            session = loaded
            bundleTimings = loaded.loadTimings
            status = loaded.summary
            if let image { await encode(image) }
        } catch {
            status = "Could not load the bundle: \(error.localizedDescription)"
        }
    }

    /// A photo from the PhotosPicker: upright, scaled, converted to RGB, encoded.
    func setPhoto(_ item: PhotosPickerItem?) async {
        guard let item else { return }
        do {
            guard let data = try await item.loadTransferable(type: Data.self), let picked = UIImage(data: data) else {
                status = "Could not read that photo"
                return
            }
            let upright = Self.upright(picked, maxSide: Self.maxSide)
            guard let cg = upright.cgImage else { return }
            let rgb = try RGBImage(cgImage: cg)
            photo = upright
            image = rgb
            clear()
            await encode(rgb)
        } catch {
            status = "Could not read that photo: \(error.localizedDescription)"
        }
    }

    private func encode(_ rgb: RGBImage) async {
        guard let session else {
            status = "Photo loaded (\(rgb.width)x\(rgb.height)); load a bundle to segment it"
            return
        }
        busy = true
        defer { busy = false }
        do {
            imageTimings = try await Task.detached { try session.setImage(rgb) }.value
            status = "\(session.summary) · photo \(rgb.width)x\(rgb.height): tap or drag a box"
            if !clicks.isEmpty || box != nil { await predict() }
        } catch {
            status = "Encoder failed: \(error.localizedDescription)"
        }
    }

    /// A touch at `point` (image pixels) in point mode.
    func tap(_ point: CGPoint) {
        clicks.append(Click(x: point.x, y: point.y, positive: mode == .positive))
        Task { await predict() }
    }

    /// A dragged box (image pixels).
    func setBox(_ rect: CGRect) {
        box = rect
        Task { await predict() }
    }

    func clear() {
        clicks = []
        box = nil
        prediction = nil
        overlay = nil
        promptTimings = []
    }

    func setMultimask(_ on: Bool) {
        multimask = on
        Task { await predict() }
    }

    func choose(_ index: Int) {
        chosen = index
        drawOverlay()
    }

    func predict() async {
        guard let session, image != nil, !clicks.isEmpty || box != nil else { return }
        generation += 1
        let mine = generation
        let points: [Double]? = clicks.isEmpty ? nil : clicks.flatMap { [$0.x, $0.y] }
        let labels: [Double]? = clicks.isEmpty ? nil : clicks.map { $0.positive ? 1 : 0 }
        let xyxy: [Double]? = box.map { [Double($0.minX), Double($0.minY), Double($0.maxX), Double($0.maxY)] }
        let multimask = self.multimask
        do {
            let result = try await Task.detached {
                try session.predict(points: points, labels: labels, box: xyxy, multimask: multimask)
            }.value
            guard mine == generation else { return }  // a newer prompt is on its way
            prediction = result
            promptTimings = result.timings
            chosen = result.scores.indices.max { result.scores[$0] < result.scores[$1] } ?? 0
            drawOverlay()
        } catch {
            status = "Decoder failed: \(error.localizedDescription)"
        }
    }

    private func drawOverlay() {
        guard let p = prediction, p.masks.indices.contains(chosen) else { overlay = nil; return }
        overlay = maskOverlay(p.masks[chosen], width: p.width, height: p.height)
    }

    /// `image` drawn upright (its EXIF orientation applied) in sRGB at scale 1, long side <= `maxSide`.
    static func upright(_ image: UIImage, maxSide: CGFloat) -> UIImage {
        let pixels = CGSize(width: image.size.width * image.scale, height: image.size.height * image.scale)
        let scale = min(1, maxSide / max(pixels.width, pixels.height))
        let size = CGSize(width: (pixels.width * scale).rounded(), height: (pixels.height * scale).rounded())
        let format = UIGraphicsImageRendererFormat()
        format.scale = 1
        format.opaque = true
        format.preferredRange = .standard
        return UIGraphicsImageRenderer(size: size, format: format).image { _ in
            image.draw(in: CGRect(origin: .zero, size: size))
        }
    }
}
