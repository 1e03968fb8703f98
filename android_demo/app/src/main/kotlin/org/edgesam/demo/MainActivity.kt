package org.edgesam.demo

import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.Color
import android.net.Uri
import android.os.Bundle
import android.widget.AdapterView
import android.widget.ArrayAdapter
import android.widget.Button
import android.widget.CheckBox
import android.widget.Spinner
import android.widget.TextView
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.lifecycle.lifecycleScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Pick a photo (the encoder runs once), then tap points or drag a box: the decoder runs per
 * prompt and the mask is drawn over the photo, with per-step timings at the bottom.
 */
class MainActivity : AppCompatActivity() {
    private lateinit var view: MaskView
    private lateinit var status: TextView
    private lateinit var multimask: CheckBox
    private var session: SamSession? = null
    private var imageSet = false
    private var busy = false

    private val pick = registerForActivityResult(ActivityResultContracts.GetContent()) { uri: Uri? ->
        uri?.let { loadPhoto(it) }
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        view = findViewById(R.id.canvas)
        status = findViewById(R.id.status)
        multimask = findViewById(R.id.multimask)
        val gpu = findViewById<CheckBox>(R.id.gpu)
        findViewById<Button>(R.id.pick).setOnClickListener { pick.launch("image/*") }
        findViewById<Button>(R.id.clear).setOnClickListener { view.clearPrompts() }
        val modes = findViewById<Spinner>(R.id.mode)
        modes.adapter = ArrayAdapter(this, android.R.layout.simple_spinner_dropdown_item,
            listOf(getString(R.string.mode_point), getString(R.string.mode_negative), getString(R.string.mode_box)))
        modes.onItemSelectedListener = object : AdapterView.OnItemSelectedListener {
            override fun onItemSelected(p: AdapterView<*>?, v: android.view.View?, pos: Int, id: Long) {
                view.mode = MaskView.Mode.values()[pos]
            }
            override fun onNothingSelected(p: AdapterView<*>?) {}
        }
        multimask.setOnCheckedChangeListener { _, _ -> runDecoder() }
        gpu.setOnCheckedChangeListener { _, on -> openSession(on) }
        view.onPrompt = { runDecoder() }
        openSession(false)
    }

    private fun openSession(useGpu: Boolean) {
        session?.close()
        session = try {
            SamSession(assets, useGpu = useGpu).also { status.text = it.describe() }
        } catch (e: Exception) {
            status.text = "cannot load the bundle from assets/: ${e.message}"
            null
        }
        imageSet = false
        view.photo?.let { setImage(it) }
    }

    private fun loadPhoto(uri: Uri) {
        val bmp = contentResolver.openInputStream(uri).use { BitmapFactory.decodeStream(it) } ?: return
        view.photo = bmp.copy(Bitmap.Config.ARGB_8888, false)
        setImage(view.photo!!)
    }

    private fun setImage(bmp: Bitmap) {
        val s = session ?: return
        busy = true
        status.text = "encoding ${bmp.width}x${bmp.height}…"
        lifecycleScope.launch {
            val timings = withContext(Dispatchers.Default) {
                val px = IntArray(bmp.width * bmp.height)
                bmp.getPixels(px, 0, bmp.width, 0, 0, bmp.width, bmp.height)
                val rgb = IntArray(px.size * 3)
                for (i in px.indices) {
                    rgb[3 * i] = Color.red(px[i]); rgb[3 * i + 1] = Color.green(px[i]); rgb[3 * i + 2] = Color.blue(px[i])
                }
                s.setImage(rgb, bmp.height, bmp.width)
            }
            imageSet = true
            busy = false
            status.text = format(timings)
            runDecoder()
        }
    }

    private fun runDecoder() {
        val s = session ?: return
        val bmp = view.photo ?: return
        if (!imageSet || busy || (view.points.isEmpty() && view.box == null)) return
        busy = true
        val points = view.points.map { it.copyOf() }
        val box = view.box?.copyOf()
        val multi = multimask.isChecked
        lifecycleScope.launch {
            val result = withContext(Dispatchers.Default) {
                try {
                    val xy = if (points.isEmpty()) null else DoubleArray(points.size * 2) { points[it / 2][it % 2].toDouble() }
                    val labels = if (points.isEmpty()) null else DoubleArray(points.size) { points[it][2].toDouble() }
                    val p = s.predict(xy, labels, box?.let { b -> DoubleArray(4) { b[it].toDouble() } }, multi)
                    val best = p.scores.indices.maxByOrNull { p.scores[it] } ?: 0
                    Pair(p, maskBitmap(p.masks[best], bmp.width, bmp.height))
                } catch (e: IllegalArgumentException) {
                    null.also { withContext(Dispatchers.Main) { status.text = e.message } }
                }
            }
            busy = false
            result?.let { (p, overlay) ->
                view.overlay = overlay
                status.text = format(p.timings) + "\nscores " + p.scores.joinToString { "%.3f".format(it) }
            }
        }
    }

    private fun maskBitmap(mask: BooleanArray, w: Int, h: Int): Bitmap {
        val colors = IntArray(w * h) { if (mask[it]) Color.argb(110, 30, 144, 255) else Color.TRANSPARENT }
        return Bitmap.createBitmap(colors, w, h, Bitmap.Config.ARGB_8888)
    }

    private fun format(t: Map<String, Double>): String =
        t.entries.joinToString("  ") { "${it.key} ${"%.1f".format(it.value)} ms" }

    override fun onDestroy() {
        session?.close()
        super.onDestroy()
    }
}
