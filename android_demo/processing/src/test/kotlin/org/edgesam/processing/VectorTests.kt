package org.edgesam.processing

import java.io.File
import kotlin.math.abs
import kotlin.system.exitProcess

/**
 * Checks [Processing] against the test vectors written by `edgesam vectors --out DIR`
 * (format: `edge_sam_sdk/vectors.py`). Usage: `java -jar processing-tests.jar DIR`.
 * Prints one line per case and check; exits 0 only when every check passes.
 */
class Checker {
    var failures = 0
    var checks = 0

    fun check(case: String, what: String, ok: Boolean, detail: String) {
        checks++
        if (!ok) failures++
        println("${if (ok) "PASS" else "FAIL"} $case $what: $detail")
    }
}

fun maxAbs(a: FloatArray, b: FloatArray): Double {
    if (a.size != b.size) return Double.POSITIVE_INFINITY
    var m = 0.0
    for (i in a.indices) m = maxOf(m, abs(a[i].toDouble() - b[i].toDouble()))
    return m
}

fun runCase(dir: File, case: Map<String, Any?>, tol: Map<String, Any?>, out: Checker) {
    val name = case["name"] as String
    val spec = ProcessingSpec.fromJson(case["processing"].asMap())
    val size = case["original_size"].asList()
    val h = size[0].asInt()
    val w = size[1].asInt()
    val image = NpyArray.read(File(dir, case["image"] as String)).toInts()

    // 1. resize
    val (resized, rsize) = Processing.resized(image, h, w, spec)
    val expSize = case["resized_size"].asList().map { it.asInt() }
    out.check(name, "resized_size", rsize[0] == expSize[0] && rsize[1] == expSize[1], "${rsize.toList()} vs $expSize")
    val expResized = NpyArray.read(File(dir, case["resized"] as String))
    val diff = maxAbs(FloatArray(resized.size) { resized[it].toFloat() }, expResized.toFloats())
    val bound = if (expResized.dtype == "|u1") tol["resized_uint8_levels"].asDouble() else tol["resized_float_abs"].asDouble()
    out.check(name, "resized (${spec.interpolation})", diff <= bound, "max diff $diff (bound $bound)")

    // 2. model input
    val input = Processing.preprocess(image, h, w, spec)
    val expInput = NpyArray.read(File(dir, case["model_input"] as String)).toFloats()
    val dIn = maxAbs(input, expInput)
    out.check(name, "model_input", dIn <= tol["model_input_abs"].asDouble(), "max diff $dIn")

    // 3. prompts
    for (p in case["prompts"].asList()) {
        val pm = p.asMap()
        val pts = pm["points"]?.asList()?.flatMap { it.asList().map { v -> v.asDouble() } }?.toDoubleArray()
        val labels = pm["labels"]?.asDoubles()
        val box = pm["box"]?.asDoubles()
        val got = Processing.decoderPrompts(pts, labels, box, h, w, spec)
        val expC = pm["point_coords"].asList().flatMap { it.asList().map { v -> v.asDouble().toFloat() } }.toFloatArray()
        val expL = pm["point_labels"].asDoubles().map { it.toFloat() }.toFloatArray()
        val dC = maxAbs(got.coords, expC)
        out.check(name, "prompt ${pm["name"]}", dC <= tol["prompt_abs"].asDouble() && got.labels.contentEquals(expL),
            "coords max diff $dC, labels ${got.labels.toList()} vs ${expL.toList()}")
    }

    // 4. mask upscaling and threshold, every token
    val low = NpyArray.read(File(dir, case["low_res"] as String)).toFloats()
    val expLogits = NpyArray.read(File(dir, case["mask_logits"] as String)).toFloats()
    val expMasks = NpyArray.read(File(dir, case["masks"] as String)).toInts()
    val area = spec.lowResSize * spec.lowResSize
    val tokens = low.size / area
    val matrices = Processing.maskMatrices(h, w, spec)
    val logitTol = tol["mask_logits_abs"].asDouble()
    val ambiguity = tol["mask_ambiguity_abs"].asDouble()
    var worst = 0.0
    var maskDiff = 0
    var ambiguous = 0
    for (t in 0 until tokens) {
        val logits = Processing.postprocessMask(low, t * area, h, w, spec, matrices)
        for (i in logits.indices) {
            val e = expLogits[t * h * w + i]
            worst = maxOf(worst, abs(logits[i].toDouble() - e))
            if ((logits[i] > spec.maskThreshold) == (expMasks[t * h * w + i] != 0)) continue
            if (abs(e - spec.maskThreshold) <= ambiguity) ambiguous++ else maskDiff++
        }
    }
    out.check(name, "mask_logits (${spec.postprocess}, ${spec.maskInterpolation})", worst <= logitTol, "max diff $worst")
    out.check(name, "masks", maskDiff == 0 && ambiguous <= tol["mask_ambiguous_max"].asInt(),
        "$maskDiff pixels differ, $ambiguous more whose expected logit is within $ambiguity of the threshold")

    // 5. stability scores and token selection
    val stab = case["stability"].asDoubles()
    var dS = 0.0
    for (t in 0 until tokens) {
        dS = maxOf(dS, abs(Processing.stabilityScore(low, t * area, area, spec.maskThreshold, 1.0) - stab[t]))
    }
    out.check(name, "stability", dS <= tol["scores_abs"].asDouble(), "max diff $dS")
    val sel = case["mask_selection"].asMap()
    val iou = case["iou"].asDoubles().map { it.toFloat() }.toFloatArray()
    val multi = (sel["multimask"] ?: listOf(1.0, 2.0, 3.0)).asList().map { it.asInt() }.toIntArray()
    val single = (sel["single"] ?: listOf(0.0)).asList().map { it.asInt() }.toIntArray()
    @Suppress("UNCHECKED_CAST")
    val fallback = sel["single_fallback"] as Map<String, Any?>?
    val chosen = case["selection"].asMap()
    for ((mode, toks) in listOf(Pair("multimask", multi), Pair("single", single))) {
        val got = Processing.selectTokens(low, iou, toks, multi, fallback, spec)
        val exp = chosen[mode].asMap()["tokens"].asList().map { it.asInt() }
        out.check(name, "select $mode", got.toList() == exp, "${got.toList()} vs $exp")
    }
}

/** The SDK's image limits, with its messages (the Swift port's SupportTests check the same). */
fun checkLimits(out: Checker) {
    fun message(h: Int, w: Int, spec: ProcessingSpec): String? =
        try { Processing.checkGeometry(h, w, spec); null } catch (e: IllegalArgumentException) { e.message }
    val sam = ProcessingSpec()
    out.check("limits", "elongated", message(1, 3000, sam) == "image 3000x1 is too elongated for this variant " +
        "(aspect over 3000:1): resized, one side would be 0 pixels; crop it first", "${message(1, 3000, sam)}")
    out.check("limits", "too large", message(20000, 7000, sam) == "image is 7000x20000 pixels, over the SDK's " +
        "limit of 134217728 (134 MP); downscale it first", "${message(20000, 7000, sam)}")
    out.check("limits", "ordinary", message(900, 1200, sam) == null, "${message(900, 1200, sam)}")
}

fun main(args: Array<String>) {
    if (args.size != 1) {
        System.err.println("usage: processing-tests VECTORS_DIR (written by: edgesam vectors --out DIR)")
        exitProcess(2)
    }
    val dir = File(args[0])
    val index = Json.parse(File(dir, "index.json").readText()).asMap()
    if (index["format"] != "edgesam-vectors" || index["version"].asInt() != 1) {
        System.err.println("unsupported vectors: format ${index["format"]} version ${index["version"]}")
        exitProcess(2)
    }
    val tol = index["tolerances"].asMap()
    val out = Checker()
    for (case in index["cases"].asList()) runCase(dir, case.asMap(), tol, out)
    checkLimits(out)
    println("${out.checks - out.failures}/${out.checks} checks passed")
    exitProcess(if (out.failures == 0) 0 else 1)
}
