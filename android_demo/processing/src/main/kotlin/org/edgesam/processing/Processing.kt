package org.edgesam.processing

import kotlin.math.max

/**
 * The bundle manifest's `processing` object (see `edge_sam_sdk.processing.ProcessingSpec`,
 * whose docstring defines every field).
 */
class ProcessingSpec(
    val inputSize: Int = 1024,
    val resize: String = "longest_side",
    val interpolation: String = "pil_bilinear",
    val pixelMean: DoubleArray = doubleArrayOf(123.675, 116.28, 103.53),
    val pixelStd: DoubleArray = doubleArrayOf(58.395, 57.12, 57.375),
    val promptFrame: Int = 1024,
    val lowResSize: Int = 256,
    val maskThreshold: Double = 0.0,
    val padPoint: String = "no_box",
    val boxFirst: Boolean = false,
    val maxPoints: Int = 0,
    val padCoord: Double = 0.0,
    val postprocess: String = "sam",
    val maskInterpolation: String = "torch_bilinear",
    val lowResClamp: Double = 0.0
) {
    companion object {
        /** From the manifest's `processing` object (a missing field takes SAM's default). */
        fun fromJson(m: Map<String, Any?>): ProcessingSpec {
            val d = ProcessingSpec()
            val pad = m["pad_point"]
            return ProcessingSpec(
                inputSize = m["input_size"]?.asInt() ?: d.inputSize,
                resize = m["resize"] as String? ?: d.resize,
                interpolation = m["interpolation"] as String? ?: d.interpolation,
                pixelMean = m["pixel_mean"]?.asDoubles() ?: d.pixelMean,
                pixelStd = m["pixel_std"]?.asDoubles() ?: d.pixelStd,
                promptFrame = m["prompt_frame"]?.asInt() ?: d.promptFrame,
                lowResSize = m["low_res_size"]?.asInt() ?: d.lowResSize,
                maskThreshold = m["mask_threshold"]?.asDouble() ?: d.maskThreshold,
                padPoint = when (pad) { true -> "no_box"; false -> "never"; null -> d.padPoint; else -> pad as String },
                boxFirst = m["box_first"] as Boolean? ?: d.boxFirst,
                maxPoints = m["max_points"]?.asInt() ?: d.maxPoints,
                padCoord = m["pad_coord"]?.asDouble() ?: d.padCoord,
                postprocess = m["postprocess"] as String? ?: d.postprocess,
                maskInterpolation = m["mask_interpolation"] as String? ?: d.maskInterpolation,
                lowResClamp = m["low_res_clamp"]?.asDouble() ?: d.lowResClamp
            )
        }
    }
}

/** The decoder's prompt inputs for one prompt set: `point_coords` `Nx2` (row-major) and labels `N`. */
class DecoderPrompts(val coords: FloatArray, val labels: FloatArray) {
    val count: Int get() = labels.size
}

/** Pre- and post-processing, mirroring `edge_sam_sdk/processing.py` step by step. */
object Processing {
    /** `(h, w)` of an `H x W` image after [rule] to side [longSide]. */
    fun resizedShape(h: Int, w: Int, longSide: Int, rule: String): IntArray = when (rule) {
        "stretch" -> intArrayOf(longSide, longSide)
        "longest_side_floor" -> {
            val aspect = w.toDouble() / h
            if (aspect >= 1) intArrayOf((longSide / aspect).toInt(), longSide)
            else intArrayOf(longSide, (longSide * aspect).toInt())
        }
        else -> {
            val scale = longSide * 1.0 / max(h, w)
            intArrayOf((h * scale + 0.5).toInt(), (w * scale + 0.5).toInt())
        }
    }

    /** Largest image (pixels, `H * W`) the SDK takes (`MAX_IMAGE_PIXELS`, 134 MP). */
    const val MAX_IMAGE_PIXELS: Long = 1L shl 27

    /**
     * `check_image`'s size limit and `check_geometry`: [IllegalArgumentException] with the SDK's
     * messages when the image is empty, too large, or so elongated that a resized side (encoder
     * input, prompt frame, NanoSAM's low-res crop) would be 0 pixels.
     */
    fun checkGeometry(h: Int, w: Int, spec: ProcessingSpec) {
        require(h >= 1 && w >= 1) { "image is empty: shape ($h, $w, 3)" }
        require(h.toLong() * w <= MAX_IMAGE_PIXELS) {
            "image is ${w}x$h pixels, over the SDK's limit of $MAX_IMAGE_PIXELS " +
                "(${"%.0f".format(MAX_IMAGE_PIXELS / 1e6)} MP); downscale it first"
        }
        val sizes = mutableListOf(resizedShape(h, w, spec.inputSize, spec.resize),
                                  resizedShape(h, w, spec.promptFrame, spec.resize))
        if (spec.postprocess == "crop_low_res") {
            val low = spec.lowResSize
            sizes.add(if (h >= w) intArrayOf(low, (low * w.toDouble() / h).toInt())
                      else intArrayOf((low * h.toDouble() / w).toInt(), low))
        }
        require(sizes.all { minOf(it[0], it[1]) >= 1 }) {
            val aspect = maxOf(w.toDouble() / h, h.toDouble() / w)
            "image ${w}x$h is too elongated for this variant (aspect over ${"%.0f".format(aspect)}:1): " +
                "resized, one side would be 0 pixels; crop it first"
        }
    }

    /** Resized image (`hxwx3`, values 0..255; uint8 values for `pil_*` rules) and its size. */
    fun resized(image: IntArray, h: Int, w: Int, spec: ProcessingSpec): Pair<DoubleArray, IntArray> {
        checkGeometry(h, w, spec)
        val size = resizedShape(h, w, spec.inputSize, spec.resize)
        return Pair(Resize.resizeImage(image, h, w, size[0], size[1], spec.interpolation), size)
    }

    /**
     * Image `HxWx3` (RGB, row-major, 0..255) -> encoder input `1x3xSxS` float32 (NCHW), the
     * resized image normalized with pixel mean/std in float32 and zero padded bottom/right.
     */
    fun preprocess(image: IntArray, h: Int, w: Int, spec: ProcessingSpec): FloatArray {
        val (pixels, size) = resized(image, h, w, spec)
        val s = spec.inputSize
        val out = FloatArray(3 * s * s)
        for (c in 0 until 3) {
            val mean = spec.pixelMean[c].toFloat()
            val std = spec.pixelStd[c].toFloat()
            for (y in 0 until size[0]) for (x in 0 until size[1]) {
                out[(c * s + y) * s + x] = (pixels[(y * size[1] + x) * 3 + c].toFloat() - mean) / std
            }
        }
        return out
    }

    /** Pixel `(x, y)` pairs (flat, row-major) of an `H x W` image -> the prompt frame. */
    fun transformCoords(xy: DoubleArray, h: Int, w: Int, spec: ProcessingSpec): FloatArray {
        val out = FloatArray(xy.size)
        if (spec.resize == "longest_side_floor") {
            val f = spec.promptFrame.toDouble() / max(h, w)
            for (i in xy.indices) out[i] = (xy[i] * f).toFloat()
            return out
        }
        val size = resizedShape(h, w, spec.promptFrame, spec.resize)
        val fx = size[1].toDouble() / w
        val fy = size[0].toDouble() / h
        for (i in 0 until xy.size / 2) {
            out[2 * i] = (xy[2 * i] * fx).toFloat()
            out[2 * i + 1] = (xy[2 * i + 1] * fy).toFloat()
        }
        return out
    }

    /**
     * Clicks (`points` flat `x, y` pixels with `labels` 1/0) and/or a `box` (XYXY pixels) ->
     * the decoder's points and labels (box corners labelled 2 and 3, padding per the spec).
     */
    fun decoderPrompts(points: DoubleArray?, labels: DoubleArray?, box: DoubleArray?, h: Int, w: Int,
                       spec: ProcessingSpec): DecoderPrompts {
        val coords = ArrayList<Float>()
        val labs = ArrayList<Float>()
        if (points != null && labels != null) {
            transformCoords(points, h, w, spec).forEach { coords.add(it) }
            labels.forEach { labs.add(it.toFloat()) }
        }
        if (box != null) {
            val corners = transformCoords(box, h, w, spec).toList()
            val at = if (spec.boxFirst) 0 else labs.size
            coords.addAll(2 * at, corners)
            labs.addAll(at, listOf(2f, 3f))
        }
        val any = labs.isNotEmpty()
        val n = labs.size
        val extra = if (spec.maxPoints > 0) {
            if (n > spec.maxPoints) {
                throw IllegalArgumentException("this variant's decoder takes at most ${spec.maxPoints} prompt points " +
                    "(a box counts as 2), got $n")
            }
            spec.maxPoints - n
        } else {
            val pad = when (spec.padPoint) {
                "always" -> any
                "no_box" -> points != null && box == null
                else -> false
            }
            if (pad) 1 else 0
        }
        for (i in 0 until extra) { coords.add(spec.padCoord.toFloat()); coords.add(spec.padCoord.toFloat()); labs.add(-1f) }
        return DecoderPrompts(coords.toFloatArray(), labs.toFloatArray())
    }

    /** Per-axis `outSize x L` matrices of the spec's mask upscaling (see `postprocess_masks`). */
    fun maskMatrices(h: Int, w: Int, spec: ProcessingSpec): Pair<SparseRows, SparseRows> {
        val size = spec.lowResSize
        val rule = spec.maskInterpolation
        return when (spec.postprocess) {
            "resize" -> Pair(SparseRows.of(Resize.matrix(size, h, rule), h, size),
                             SparseRows.of(Resize.matrix(size, w, rule), w, size))
            "crop_low_res" -> {
                val limH = if (h >= w) size else (size.toDouble() * h / w).toInt()
                val limW = if (h >= w) (size.toDouble() * w / h).toInt() else size
                Pair(SparseRows.of(Resize.matrix(limH, h, rule), h, limH), SparseRows.of(Resize.matrix(limW, w, rule), w, limW))
            }
            else -> {
                val frame = spec.promptFrame
                val rs = resizedShape(h, w, frame, spec.resize)
                val up = Resize.matrix(size, frame, rule)
                Pair(SparseRows.of(matmul(Resize.matrix(rs[0], h, rule), up, h, rs[0], size), h, size),
                     SparseRows.of(matmul(Resize.matrix(rs[1], w, rule), up, w, rs[1], size), w, size))
            }
        }
    }

    /** `a` (`n x k`) times the first `k` rows of `b` (`? x m`), row-major. */
    private fun matmul(a: DoubleArray, b: DoubleArray, n: Int, k: Int, m: Int): DoubleArray {
        val out = DoubleArray(n * m)
        for (i in 0 until n) for (j in 0 until k) {
            val v = a[i * k + j]
            if (v != 0.0) for (c in 0 until m) out[i * m + c] += v * b[j * m + c]
        }
        return out
    }

    /** Low-res logits `LxL` (one mask) -> logits `H x W` at the original size. */
    fun postprocessMask(lowRes: FloatArray, offset: Int, h: Int, w: Int, spec: ProcessingSpec,
                        matrices: Pair<SparseRows, SparseRows> = maskMatrices(h, w, spec)): FloatArray {
        val size = spec.lowResSize
        val (ry, rx) = matrices
        val tmp = DoubleArray(h * size)  // ry @ low
        for (y in 0 until h) for (e in ry.start[y] until ry.start[y + 1]) {
            val r = ry.col[e]
            val v = ry.value[e]
            for (c in 0 until size) tmp[y * size + c] += v * lowRes[offset + r * size + c]
        }
        val out = FloatArray(h * w)
        for (y in 0 until h) for (x in 0 until w) {
            var acc = 0.0
            for (e in rx.start[x] until rx.start[x + 1]) acc += tmp[y * size + rx.col[e]] * rx.value[e]
            out[y * w + x] = acc.toFloat()
        }
        return out
    }

    /** `#(logits > t + offset) / #(logits > t - offset)`; 1 when nothing exceeds the lower bound. */
    fun stabilityScore(logits: FloatArray, from: Int, count: Int, threshold: Double, offset: Double): Float {
        var hi = 0L
        var lo = 0L
        // numpy compares float32 logits with a Python float in float32.
        val upper = (threshold + offset).toFloat()
        val lower = (threshold - offset).toFloat()
        for (i in from until from + count) {
            if (logits[i] > upper) hi++
            if (logits[i] > lower) lo++
        }
        return if (lo > 0) (hi.toDouble() / lo).toFloat() else 1.0f
    }

    /**
     * Tokens to return for one prompt set from the decoder's `M x L x L` logits and `M`
     * scores: [tokens], or with SAM 2's fallback (one token asked for, its stability score
     * with offset `stabilityDelta` below `stabilityThresh`) the best-scoring candidate.
     */
    fun selectTokens(lowRes: FloatArray, scores: FloatArray, tokens: IntArray, candidates: IntArray,
                     fallback: Map<String, Any?>?, spec: ProcessingSpec): IntArray {
        if (fallback == null || tokens.size != 1 || candidates.isEmpty()) return tokens
        val area = spec.lowResSize * spec.lowResSize
        val stability = stabilityScore(lowRes, tokens[0] * area, area, spec.maskThreshold,
            fallback["stability_delta"].asDouble())
        if (stability >= fallback["stability_thresh"].asDouble().toFloat()) return tokens
        var best = candidates[0]
        for (c in candidates) if (scores[c] > scores[best]) best = c
        return intArrayOf(best)
    }
}

/** A sparse row-major matrix (compressed rows): the nonzero taps of a mask upscaling axis. */
class SparseRows(val start: IntArray, val col: IntArray, val value: DoubleArray) {
    companion object {
        fun of(dense: DoubleArray, rows: Int, cols: Int): SparseRows {
            val start = IntArray(rows + 1)
            val c = ArrayList<Int>()
            val v = ArrayList<Double>()
            for (r in 0 until rows) {
                for (k in 0 until cols) if (dense[r * cols + k] != 0.0) { c.add(k); v.add(dense[r * cols + k]) }
                start[r + 1] = c.size
            }
            return SparseRows(start, c.toIntArray(), v.toDoubleArray())
        }
    }
}
