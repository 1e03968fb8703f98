"""``SamPredictor`` over a bundle, with segment-anything's API and semantics.

    predictor = SamPredictor(load_bundle("bundles/mobile_sam"))
    predictor.set_image(image)                       # HxWx3 uint8 RGB, runs the encoder once
    masks, scores, logits = predictor.predict(point_coords=np.array([[500, 375]]),
                                              point_labels=np.array([1]))
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import processing as P
from .bundle import Bundle
from .errors import GraphOutputError, InputError

_VALID_LABELS = (-1.0, 0.0, 1.0, 2.0, 3.0)
#: Prompt coordinates farther than this many image sides from the origin are refused.
COORD_LIMIT_SIDES = 8
#: Mask-input logits beyond +-this are refused (the sigmoid saturates long before).
MASK_INPUT_LIMIT = 1e4
#: Prompts per decoder run in :meth:`SamPredictor.predict_batch` (fewer where the bundle's
#: engine or package takes fewer: ``tensorrt.max_prompts``, ``coreml.max_prompts``).
PROMPT_CHUNK = 16
#: Largest result :meth:`SamPredictor.predict_batch` allocates (masks at the image size).
MAX_RESULT_BYTES = 4 << 30


def check_outputs(graph: str, out: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> None:
    """``GraphOutputError`` unless ``out`` holds every output of ``shapes`` with that shape and
    only finite values."""
    for name, shape in shapes.items():
        if name not in out:
            raise GraphOutputError(f"the {graph} graph returned no {name!r}")
        value = np.asarray(out[name])
        if tuple(value.shape) != tuple(shape):
            raise GraphOutputError(f"the {graph} graph returned {name!r} of shape {value.shape}, "
                                   f"the manifest says {tuple(shape)}")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise GraphOutputError(f"the {graph} graph returned NaN or infinite values in {name!r} "
                                   "(a corrupt graph, or inputs it cannot represent)")


def _as_float(name: str, value: Any, shape_desc: str, ndim: int, last: int | None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be numeric with shape {shape_desc}") from None
    if arr.ndim != ndim or (last is not None and arr.shape[-1] != last):
        raise InputError(f"{name} must have shape {shape_desc}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    return arr


class SamPredictor:
    """Predict masks for prompts on one image at a time, encoder run once per image.

    Works for every decoder kind the manifest describes (SAM, EfficientSAM, SAM 2): prompt
    rules, resizing and token selection are read from the bundle, never from the variant.

    Attributes after ``set_image``: ``original_size`` ``(H, W)``, ``input_size`` (the resized
    ``(h, w)``), ``features`` (every encoder output, e.g. SAM 2's high-res maps). After a
    prediction, ``extra_outputs`` holds the decoder's further outputs for the returned batch
    (SAM 2: ``object_score_logits`` ``Bx1``, > 0 means an object is present). ``timings``
    holds the last step times (ms).
    """

    def __init__(self, bundle: Bundle):
        decoder = bundle.graph("decoder")
        inputs = {t["name"]: t["shape"] for t in decoder.get("inputs", [])}
        outputs = {t["name"]: t["shape"] for t in decoder.get("outputs", [])}
        missing = {"image_embeddings", "point_coords", "point_labels"} - set(inputs)
        missing |= {"low_res_masks", "iou_predictions"} - set(outputs)
        if missing:
            raise InputError(f"the bundle's decoder graph ({bundle.decoder_kind!r}) lacks "
                             f"{sorted(missing)}; it is not a promptable SAM-style decoder")
        self.bundle = bundle
        self.spec = bundle.processing
        selection = decoder.get("extra", {}).get("mask_selection", {})
        self._multi = list(selection.get("multimask", [1, 2, 3]))
        self._single = list(selection.get("single", [0]))
        self._fallback = selection.get("single_fallback")
        self._num_tokens = int(outputs["low_res_masks"][1])
        self._decoder_inputs = list(inputs)
        encoder = bundle.graph("encoder")
        self._encoder_outputs = {t["name"]: tuple(t["shape"]) for t in encoder.get("outputs", [])}
        self._chunk = _prompt_chunk(bundle.manifest, decoder)
        self.timings: dict[str, float] = {}
        self.features: dict[str, np.ndarray] = {}
        self.extra_outputs: dict[str, np.ndarray] = {}
        self.reset_image()

    # ------------------------------------------------------------------ image
    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Run the encoder on ``image`` (``HxWx3`` uint8, RGB or BGR per ``image_format``)."""
        self.reset_image()  # atomic: a failure below leaves no image set (not the previous one)
        if image_format not in ("RGB", "BGR"):
            raise InputError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}")
        P.check_image(image)
        if image_format == "BGR":
            image = image[..., ::-1]
        t0 = time.perf_counter()
        model_input, resized = P.preprocess(image, self.spec)
        t1 = time.perf_counter()
        features = self.bundle.encoder.run({"image": model_input})
        check_outputs("encoder", features, self._encoder_outputs)
        t2 = time.perf_counter()
        self.timings = {"preprocess_ms": (t1 - t0) * 1e3, "encoder_ms": (t2 - t1) * 1e3}
        self.features = features
        self.original_size = (int(image.shape[0]), int(image.shape[1]))
        self.input_size = resized
        self.is_image_set = True

    def reset_image(self) -> None:
        """Forget the current image (``predict`` then refuses until the next ``set_image``)."""
        self.is_image_set = False
        self.features = {}
        self.original_size = (0, 0)
        self.input_size = (0, 0)

    def get_image_embedding(self) -> np.ndarray:
        """The current image's embeddings, ``1xCxHxW`` float32."""
        self._require_image()
        return self.features["image_embeddings"]

    def _require_image(self) -> None:
        if not self.is_image_set:
            raise InputError("no image is set: call set_image(image) before predicting")

    # --------------------------------------------------------------- predict
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        num_multimask_outputs: int | None = None,
        use_stability_score: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks for one prompt set, in original-image pixels.

        Args:
            point_coords: ``Nx2`` ``(x, y)`` pixels; point_labels: ``N`` (1 fg, 0 bg).
            box: ``4`` XYXY pixels. mask_input: ``1x256x256`` logits from a previous call.
            multimask_output: the variant's multimask tokens (SAM: 1..3) instead of its
                single-mask token(s) (SAM: 0); ``manifest.graphs.decoder.extra.mask_selection``.
            return_logits: return float logits instead of boolean masks.
            num_multimask_outputs: EdgeSAM's form, overrides ``multimask_output``: 1 (the
                single mask), 3 (the multimask tokens) or 4 (every token).
            use_stability_score: replace the predicted IoU by the stability score of each
                low-res mask (EdgeSAM's recommendation; its IoU head is not distilled).
        Returns:
            ``(masks CxHxW, iou_predictions C, low_res_logits Cx256x256)``.
        """
        coords = labels = boxes = masks_in = None
        if point_coords is not None or point_labels is not None:
            if point_coords is None or point_labels is None:
                raise InputError("point_coords and point_labels must be given together")
            coords = _as_float("point_coords", point_coords, "Nx2", 2, 2)[None]
            labels = _as_float("point_labels", point_labels, "N", 1, None)[None]
        if box is not None:
            boxes = _as_float("box", box, "4 (XYXY)", 1, 4)[None]
        if mask_input is not None:
            masks_in = _as_float("mask_input", mask_input, "1x256x256", 3, None)[None]
        m, s, low = self.predict_batch(coords, labels, boxes, masks_in, multimask_output, return_logits,
                                       num_multimask_outputs, use_stability_score)
        return m[0], s[0], low[0]

    def predict_batch(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        num_multimask_outputs: int | None = None,
        use_stability_score: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``B`` prompt sets in one decoder run: coords ``BxNx2``, labels ``BxN`` (-1 pads a
        shorter set), boxes ``Bx4``, mask_input ``Bx1x256x256``; the options are
        :meth:`predict`'s.

        Returns ``(masks BxCxHxW, iou_predictions BxC, low_res_logits BxCx256x256)``.

        The prompts run :data:`PROMPT_CHUNK` at a time (decoder and upscaling), so memory
        beyond the result stays bounded; a result over :data:`MAX_RESULT_BYTES` is refused.
        """
        self._require_image()
        coords, labels, boxes, mask_input, batch = self._check_batch(point_coords, point_labels, boxes,
                                                                     mask_input)
        count = len(self._tokens(multimask_output, num_multimask_outputs))
        h, w = self.original_size
        nbytes = batch * count * h * w * (4 if return_logits else 1)
        if nbytes > MAX_RESULT_BYTES:
            raise InputError(f"{batch} prompts x {count} masks at {w}x{h} need {nbytes / 2**30:.1f} GiB, "
                             f"over the {MAX_RESULT_BYTES / 2**30:.0f} GiB limit: pass fewer prompts")
        spec, extras, decoder_ms, postprocess_ms = self.spec, [], 0.0, 0.0
        low = spec.low_res_size
        # The result is allocated once and filled chunk by chunk (no second copy to concatenate).
        masks = np.empty((batch, count, h, w), np.float32 if return_logits else bool)
        scores = np.empty((batch, count), np.float32)
        low_res = np.empty((batch, count, low, low), np.float32)
        for b0 in range(0, batch, self._chunk):
            rows = slice(b0, b0 + self._chunk)
            c, lab, box, m_in = (None if a is None else a[rows] for a in (coords, labels, boxes, mask_input))
            low_part, score_part = self.predict_low_res(c, lab, box, m_in, multimask_output,
                                                        num_multimask_outputs)
            decoder_ms += self.timings["decoder_ms"]
            extras.append(self.extra_outputs)
            t1 = time.perf_counter()
            if use_stability_score:
                score_part = P.stability_score(low_part, spec.mask_threshold)
            up = P.postprocess_masks(low_part, self.original_size, spec)
            masks[rows] = up if return_logits else P.threshold_masks(up, spec)
            del up
            scores[rows] = score_part
            low_res[rows] = (np.clip(low_part, -spec.low_res_clamp, spec.low_res_clamp)
                             if spec.low_res_clamp > 0 else low_part)
            postprocess_ms += (time.perf_counter() - t1) * 1e3
        self.extra_outputs = {k: np.concatenate([e[k] for e in extras]) for k in extras[0]}
        self.timings.update(decoder_ms=decoder_ms, postprocess_ms=postprocess_ms)
        return masks, scores, low_res

    def predict_low_res(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        num_multimask_outputs: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The decoder step of :meth:`predict_batch` alone, without upscaling to the image.

        Same prompts and options (shapes ``BxNx2``, ``BxN``, ``Bx4``, ``Bx1x256x256``).
        Returns ``(low_res_logits BxCxLxL float32, iou_predictions BxC)`` with ``L`` the
        manifest's ``low_res_size``, the selected tokens only, logits not clamped. Callers
        that upscale a few masks at a time (segment-everything) use this;
        ``timings["decoder_ms"]`` holds the decoder run's time.
        """
        self._require_image()
        coords, labels, boxes, mask_input, batch = self._check_batch(point_coords, point_labels,
                                                                     boxes, mask_input)
        spec = self.spec
        frame_coords = P.transform_coords(coords, self.original_size, spec) if coords is not None else None
        frame_boxes = P.transform_boxes(boxes, self.original_size, spec) if boxes is not None else None
        tokens = self._tokens(multimask_output, num_multimask_outputs)
        pc, pl = P.decoder_prompts(frame_coords, labels, frame_boxes, batch, spec)
        feed = {name: self.features[name] for name in self._decoder_inputs if name in self.features}
        feed.update(point_coords=pc, point_labels=pl)
        if "mask_input" in self._decoder_inputs:
            low = spec.low_res_size
            feed["has_mask_input"] = np.full((batch,), 1.0 if mask_input is not None else 0.0, np.float32)
            feed["mask_input"] = (np.zeros((batch, 1, low, low), np.float32) if mask_input is None
                                  else mask_input.astype(np.float32))
        t0 = time.perf_counter()
        out = self.bundle.decoder.run(feed)
        low = spec.low_res_size
        check_outputs("decoder", out, {"low_res_masks": (batch, self._num_tokens, low, low),
                                       "iou_predictions": (batch, self._num_tokens)})
        check_outputs("decoder", out, {k: np.shape(v) for k, v in out.items()})  # every output finite
        self.timings["decoder_ms"] = (time.perf_counter() - t0) * 1e3
        self.extra_outputs = {k: v for k, v in out.items() if k not in ("low_res_masks", "iou_predictions")}
        return P.select_masks(out["low_res_masks"], out["iou_predictions"], tokens,
                              self._fallback, self._multi, spec.mask_threshold)

    def _tokens(self, multimask_output: bool, num_multimask_outputs: int | None) -> list[int]:
        if num_multimask_outputs is None:
            return self._multi if multimask_output else self._single
        n = self._num_tokens
        choices = {1: self._single, len(self._multi): self._multi, n: list(range(n))}
        if num_multimask_outputs not in choices:
            raise InputError(f"num_multimask_outputs must be one of {sorted(choices)}, "
                             f"got {num_multimask_outputs}")
        return choices[num_multimask_outputs]

    def _check_batch(self, coords: Any, labels: Any, boxes: Any, mask_input: Any) -> tuple[Any, ...]:
        sizes = []
        if coords is not None or labels is not None:
            if coords is None or labels is None:
                raise InputError("point_coords and point_labels must be given together")
            coords = _as_float("point_coords", coords, "BxNx2", 3, 2)
            labels = _as_float("point_labels", labels, "BxN", 2, None)
            if labels.shape != coords.shape[:2]:
                raise InputError(f"point_labels shape {labels.shape} does not match point_coords "
                                 f"{coords.shape} (expected {coords.shape[:2]})")
            bad = ~np.isin(labels, _VALID_LABELS)
            if bad.any():
                raise InputError(f"point_labels must be 1 (foreground), 0 (background) or -1 "
                                 f"(padding); got {sorted(set(labels[bad].tolist()))}")
            sizes.append(coords.shape[0])
        if boxes is not None:
            boxes = _as_float("boxes", boxes, "Bx4 (XYXY)", 2, 4)
            sizes.append(boxes.shape[0])
        if mask_input is not None:
            if "mask_input" not in self._decoder_inputs:
                raise InputError(f"{self.bundle.variant} ({self.bundle.decoder_kind} decoder) takes no "
                                 "mask_input: its decoder has no mask prompt; pass points and/or a box")
            low = self.spec.low_res_size
            mask_input = _as_float("mask_input", mask_input, f"Bx1x{low}x{low}", 4, low)
            if mask_input.shape[1:] != (1, low, low):
                raise InputError(f"mask_input must have shape Bx1x{low}x{low}, got {mask_input.shape}")
            sizes.append(mask_input.shape[0])
        limit = COORD_LIMIT_SIDES * max(self.original_size)
        for name, arr in (("point_coords", coords), ("boxes", boxes)):
            if arr is not None and arr.size and float(np.abs(arr).max()) > limit:
                raise InputError(f"{name} must lie within +-{limit} pixels ({COORD_LIMIT_SIDES}x the image's "
                                 f"longest side) of the origin, got {float(np.abs(arr).max()):.4g}")
        if mask_input is not None and mask_input.size and float(np.abs(mask_input).max()) > MASK_INPUT_LIMIT:
            raise InputError(f"mask_input logits must lie within +-{MASK_INPUT_LIMIT:g}, got "
                             f"{float(np.abs(mask_input).max()):.4g}")
        if len(set(sizes)) > 1:
            raise InputError(f"prompt batch sizes differ: {sizes}")
        batch = sizes[0] if sizes else 1
        if batch < 1:
            raise InputError("empty prompt batch")
        return coords, labels, boxes, mask_input, batch


def _prompt_chunk(manifest: dict[str, Any], decoder: dict[str, Any]) -> int:
    """Prompts per decoder run: :data:`PROMPT_CHUNK`, or fewer where the bundle's TensorRT
    engine profile or Core ML package takes fewer."""
    limits = [PROMPT_CHUNK]
    for facts in (manifest.get("tensorrt"), decoder.get("coreml")):
        if isinstance(facts, dict) and isinstance(facts.get("max_prompts"), int) and facts["max_prompts"] > 0:
            limits.append(facts["max_prompts"])
    return min(limits)
