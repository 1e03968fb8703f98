package org.edgesam.demo

import android.content.Context
import android.graphics.Bitmap
import android.graphics.Canvas
import android.graphics.Color
import android.graphics.Matrix
import android.graphics.Paint
import android.graphics.RectF
import android.util.AttributeSet
import android.view.MotionEvent
import android.view.View

/**
 * Shows the photo scaled to fit, the mask overlay, the clicked points and the box, and turns
 * touches into prompts in the photo's pixel coordinates (what the SDK's processing expects).
 */
class MaskView(context: Context, attrs: AttributeSet?) : View(context, attrs) {
    enum class Mode { POSITIVE, NEGATIVE, BOX }

    var mode = Mode.POSITIVE
    var onPrompt: (() -> Unit)? = null

    var photo: Bitmap? = null
        set(value) { field = value; overlay = null; clearPrompts(); invalidate() }
    var overlay: Bitmap? = null
        set(value) { field = value; invalidate() }

    /** Clicks `(x, y, label)` in photo pixels; label 1 foreground, 0 background. */
    val points = ArrayList<FloatArray>()
    /** XYXY box in photo pixels, or null. */
    var box: FloatArray? = null
        private set

    private var dragStart: FloatArray? = null
    private val toView = Matrix()
    private val toPhoto = Matrix()
    private val paintPos = Paint(Paint.ANTI_ALIAS_FLAG).apply { color = Color.GREEN }
    private val paintNeg = Paint(Paint.ANTI_ALIAS_FLAG).apply { color = Color.RED }
    private val paintBox = Paint(Paint.ANTI_ALIAS_FLAG).apply {
        color = Color.YELLOW; style = Paint.Style.STROKE; strokeWidth = 4f
    }

    fun clearPrompts() {
        points.clear()
        box = null
        overlay = null
        invalidate()
    }

    override fun onDraw(canvas: Canvas) {
        val bmp = photo ?: return
        toView.setRectToRect(RectF(0f, 0f, bmp.width.toFloat(), bmp.height.toFloat()),
            RectF(0f, 0f, width.toFloat(), height.toFloat()), Matrix.ScaleToFit.CENTER)
        toView.invert(toPhoto)
        canvas.drawBitmap(bmp, toView, null)
        overlay?.let { canvas.drawBitmap(it, toView, null) }
        val pt = FloatArray(2)
        for (p in points) {
            pt[0] = p[0]; pt[1] = p[1]
            toView.mapPoints(pt)
            canvas.drawCircle(pt[0], pt[1], 12f, if (p[2] > 0.5f) paintPos else paintNeg)
        }
        box?.let {
            val r = RectF(it[0], it[1], it[2], it[3])
            toView.mapRect(r)
            canvas.drawRect(r, paintBox)
        }
    }

    override fun onTouchEvent(event: MotionEvent): Boolean {
        val bmp = photo ?: return false
        val p = floatArrayOf(event.x, event.y)
        toPhoto.mapPoints(p)
        p[0] = p[0].coerceIn(0f, bmp.width.toFloat())
        p[1] = p[1].coerceIn(0f, bmp.height.toFloat())
        when (mode) {
            Mode.BOX -> when (event.action) {
                MotionEvent.ACTION_DOWN -> dragStart = p
                MotionEvent.ACTION_MOVE, MotionEvent.ACTION_UP -> dragStart?.let { s ->
                    box = floatArrayOf(minOf(s[0], p[0]), minOf(s[1], p[1]), maxOf(s[0], p[0]), maxOf(s[1], p[1]))
                    invalidate()
                    if (event.action == MotionEvent.ACTION_UP) { dragStart = null; onPrompt?.invoke() }
                }
            }
            else -> if (event.action == MotionEvent.ACTION_UP) {
                points.add(floatArrayOf(p[0], p[1], if (mode == Mode.POSITIVE) 1f else 0f))
                invalidate()
                onPrompt?.invoke()
            }
        }
        return true
    }
}
