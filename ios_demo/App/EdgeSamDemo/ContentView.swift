import EdgeSamCoreML
import PhotosUI
import SwiftUI
import UniformTypeIdentifiers

/// Pick a bundle and a photo, tap points or drag a box, pick among the masks, read the timings.
struct ContentView: View {
    @State private var model = DemoModel()
    @State private var photoItem: PhotosPickerItem?
    @State private var importing = false

    var body: some View {
        VStack(spacing: 8) {
            HStack {
                Button("Bundle…") { importing = true }
                PhotosPicker("Photo…", selection: $photoItem, matching: .images)
                Spacer()
                if model.busy { ProgressView() }
                Button("Clear") { model.clear() }
                    .disabled(model.clicks.isEmpty && model.box == nil)
            }
            Text(model.status)
                .font(.footnote)
                .frame(maxWidth: .infinity, alignment: .leading)
            canvas
            Picker("Prompt", selection: $model.mode) {
                ForEach(PromptMode.allCases) { Text($0.rawValue).tag($0) }
            }
            .pickerStyle(.segmented)
            Toggle("3 masks (multimask)", isOn: Binding(get: { model.multimask }, set: { model.setMultimask($0) }))
            if let p = model.prediction, p.masks.count > 1 {
                Picker("Mask", selection: Binding(get: { model.chosen }, set: { model.choose($0) })) {
                    ForEach(p.scores.indices, id: \.self) { i in
                        Text("token \(p.tokens[i]) · \(p.scores[i], specifier: "%.2f")").tag(i)
                    }
                }
                .pickerStyle(.segmented)
            }
            timings
        }
        .padding()
        .task { await model.loadInitialBundle() }
        .onChange(of: photoItem) { _, item in Task { await model.setPhoto(item) } }
        .fileImporter(isPresented: $importing, allowedContentTypes: [.folder]) { result in
            switch result {
            case .success(let folder): Task { await model.importBundle(folder) }
            case .failure(let error): model.status = "Import failed: \(error.localizedDescription)"
            }
        }
    }

    @ViewBuilder private var canvas: some View {
        if let photo = model.photo, let image = model.image {
            PhotoCanvas(photo: photo, pixelWidth: image.width, pixelHeight: image.height, overlay: model.overlay,
                        clicks: model.clicks, box: model.box, mode: model.mode,
                        onTap: { model.tap($0) }, onBox: { model.setBox($0) })
        } else {
            ContentUnavailableView("No photo", systemImage: "photo",
                                   description: Text("Pick a photo, then tap points or drag a box."))
        }
    }

    private var timings: some View {
        VStack(alignment: .leading, spacing: 2) {
            let rows = [("bundle", model.bundleTimings), ("image", model.imageTimings), ("prompt", model.promptTimings)]
            ForEach(rows.indices, id: \.self) { i in
                if !rows[i].1.isEmpty {
                    Text("\(rows[i].0): " + rows[i].1.map { "\($0.step) \(String(format: "%.1f", $0.milliseconds)) ms" }
                        .joined(separator: " · "))
                }
            }
        }
        .font(.caption.monospacedDigit())
        .frame(maxWidth: .infinity, alignment: .leading)
    }
}
