package org.edgesam.demo

import android.content.res.AssetManager
import org.edgesam.processing.Json
import org.edgesam.processing.Processing
import org.edgesam.processing.ProcessingSpec
import org.edgesam.processing.asInt
import org.edgesam.processing.asList
import org.edgesam.processing.asMap
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.Closeable
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.FloatBuffer
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** Masks for one prompt set: selected tokens' masks (`H*W` each), their scores, step times (ms). */
class Prediction(val masks: List<BooleanArray>, val scores: FloatArray, val timings: Map<String, Double>)

/**
 * A TFLite bundle (`encoder.tflite`, `decoder.tflite`, `manifest.json` in the app's assets)
 * run with the LiteRT Interpreter, with the SDK's processing from `:processing`.
 *
 * The bundle's graphs have named signatures (`edgesam export --target tflite`): the encoder's
 * `encoder`, the decoder's `points_<N>`, one per prompt point count `N` after padding, batch
 * 1, all sharing one copy of the weights. Tensor names are the manifest's.
 */
class SamSession(assets: AssetManager, useGpu: Boolean = false, threads: Int = 4) : Closeable {
    val manifest: Map<String, Any?> = Json.parse(assets.open("manifest.json").bufferedReader().readText()).asMap()
    val spec = ProcessingSpec.fromJson(manifest["processing"].asMap())
    private val encoderInfo = manifest["graphs"].asMap()["encoder"].asMap()
    private val decoderInfo = manifest["graphs"].asMap()["decoder"].asMap()
    private val gpu: GpuDelegate? = if (useGpu) GpuDelegate() else null
    private val encoder: Interpreter
    private val decoder: Interpreter
    private var features: Map<String, FloatBuffer> = emptyMap()
    private var height = 0
    private var width = 0

    init {
        if (manifest["target"] != "tflite") {
            throw IllegalArgumentException("the bundle in assets/ is a '${manifest["target"]}' bundle; this app runs tflite bundles")
        }
        val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)
        gpu?.let { options.addDelegate(it) }
        encoder = Interpreter(map(assets, encoderInfo["file"] as String), options)
        decoder = Interpreter(map(assets, decoderInfo["file"] as String), options)
    }

    fun describe(): String =
        "${manifest["variant"]} (${manifest["precision"]}), input ${spec.inputSize}, decoder signatures " +
            decoder.signatureKeys.joinToString(",") + if (gpu != null) ", GPU delegate" else ", CPU (XNNPACK)"

    /** Run the encoder on an `HxWx3` RGB image (row-major, 0..255). Returns step times. */
    fun setImage(rgb: IntArray, h: Int, w: Int): Map<String, Double> {
        val t0 = System.nanoTime()
        val input = Processing.preprocess(rgb, h, w, spec)
        val t1 = System.nanoTime()
        val outputs = HashMap<String, Any>()
        val buffers = HashMap<String, FloatBuffer>()
        for (o in encoderInfo["outputs"].asList()) {
            val name = o.asMap()["name"] as String
            val buf = floats(elements(o.asMap()["shape"].asList(), 1, 0))
            buffers[name] = buf
            outputs[name] = buf
        }
        encoder.runSignature(mapOf("image" to FloatBuffer.wrap(input)), outputs, "encoder")
        val t2 = System.nanoTime()
        features = buffers
        height = h
        width = w
        return linkedMapOf("preprocess" to ms(t0, t1), "encoder" to ms(t1, t2))
    }

    /**
     * Masks for clicks (`points` flat `x, y` pixels, `labels` 1/0) and/or a `box` (XYXY
     * pixels), the selected tokens per the manifest's `mask_selection` (SAM 2's fallback too).
     */
    fun predict(points: DoubleArray?, labels: DoubleArray?, box: DoubleArray?, multimask: Boolean): Prediction {
        check(features.isNotEmpty()) { "set an image first" }
        val t0 = System.nanoTime()
        val prompts = Processing.decoderPrompts(points, labels, box, height, width, spec)
        val n = prompts.count
        val signature = "points_$n"
        if (signature !in decoder.signatureKeys) {
            throw IllegalArgumentException("this bundle's decoder takes ${decoder.signatureKeys.joinToString()} " +
                "(prompt points after padding); this prompt needs $n")
        }
        val inputs = HashMap<String, Any>()
        val low = spec.lowResSize
        for (i in decoderInfo["inputs"].asList()) {
            val name = i.asMap()["name"] as String
            inputs[name] = when (name) {
                "point_coords" -> FloatBuffer.wrap(prompts.coords)
                "point_labels" -> FloatBuffer.wrap(prompts.labels)
                "mask_input" -> floats(low * low)
                "has_mask_input" -> floats(1)
                else -> features[name]?.also { it.rewind() }
                    ?: throw IllegalArgumentException("the encoder did not produce '$name', which the decoder takes")
            }
        }
        val outputs = HashMap<String, Any>()
        for (o in decoderInfo["outputs"].asList()) {
            val name = o.asMap()["name"] as String
            outputs[name] = floats(elements(o.asMap()["shape"].asList(), 1, n))
        }
        val t1 = System.nanoTime()
        decoder.runSignature(inputs, outputs, signature)
        val t2 = System.nanoTime()
        val lowRes = array(outputs["low_res_masks"] as FloatBuffer)
        val iou = array(outputs["iou_predictions"] as FloatBuffer)
        val selection = (decoderInfo["extra"] as Map<*, *>?)?.get("mask_selection")?.asMap() ?: emptyMap()
        val multi = (selection["multimask"] ?: listOf(1, 2, 3)).asList().map { it.asInt() }.toIntArray()
        val single = (selection["single"] ?: listOf(0)).asList().map { it.asInt() }.toIntArray()
        @Suppress("UNCHECKED_CAST")
        val fallback = selection["single_fallback"] as Map<String, Any?>?
        val tokens = Processing.selectTokens(lowRes, iou, if (multimask) multi else single, multi, fallback, spec)
        val matrices = Processing.maskMatrices(height, width, spec)
        val masks = tokens.map { t ->
            val logits = Processing.postprocessMask(lowRes, t * low * low, height, width, spec, matrices)
            BooleanArray(logits.size) { logits[it] > spec.maskThreshold }
        }
        val t3 = System.nanoTime()
        val timings = linkedMapOf("prompt" to ms(t0, t1), "decoder" to ms(t1, t2), "postprocess" to ms(t2, t3))
        return Prediction(masks, FloatArray(tokens.size) { iou[tokens[it]] }, timings)
    }

    override fun close() {
        encoder.close()
        decoder.close()
        gpu?.close()
    }

    private fun ms(a: Long, b: Long) = (b - a) / 1e6

    private fun elements(shape: List<Any?>, batch: Int, points: Int): Int = shape.fold(1) { acc, d ->
        acc * when (d) { "B" -> batch; "N" -> points; is Number -> d.toInt(); else -> 1 }
    }

    private fun floats(n: Int): FloatBuffer =
        ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asFloatBuffer()

    private fun array(buf: FloatBuffer): FloatArray {
        buf.rewind()
        return FloatArray(buf.remaining()).also { buf.get(it) }
    }

    private fun map(assets: AssetManager, file: String): MappedByteBuffer {
        val fd = assets.openFd(file)
        return FileInputStream(fd.fileDescriptor).channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
    }
}
