"""The speed-motivated forms of the decoder and the post-processing equal the plain math.

Per-image layer-0 projections (with and without a mask prompt), the token-layout mask
upscaling, banded resize operators and the GFLOPs count at export. Speed itself is measured
in ``benchmarks/floor.py``, never asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import get_model  # noqa: E402
from edge_sam_sdk import resize as R  # noqa: E402
from edge_sam_sdk.graphs import graph_specs, sample_feed  # noqa: E402
from edge_sam_sdk.registry import get_variant  # noqa: E402

VARIANT = "mobile_sam"


@pytest.mark.parametrize("batch", [1, 3])
def test_per_image_projections_equal_per_prompt_projections(batch: int, models: dict) -> None:
    """The decoder fed the encoder's per-image projections equals SAM's decoder projecting
    ``embeddings + dense`` for every prompt, with has_mask_input 0, 1 and mixed."""
    from edge_sam_sdk.exporters.models.sam_model import DecoderGraph, image_projections

    model = get_model(models, VARIANT)
    spec = graph_specs(get_variant(VARIANT))["decoder"]
    f = {k: torch.from_numpy(v) for k, v in sample_feed(spec, batch=batch, points=3).items()}
    pe, dec = model.prompt_encoder, model.mask_decoder
    with torch.no_grad():
        proj = image_projections(pe, dec, f["image_embeddings"])
        for flags in (torch.zeros(batch), torch.ones(batch), (torch.arange(batch) % 2).float()):
            sparse = pe.embed_points(f["point_coords"], f["point_labels"])
            ref = dec(f["image_embeddings"], pe.dense_pe(), sparse, pe.embed_mask(f["mask_input"], flags))
            got = DecoderGraph(model)(f["image_embeddings"], *proj, f["point_coords"], f["point_labels"],
                                      f["mask_input"], flags)
            for r, g in zip(ref, got, strict=True):
                torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 3])
def test_reassociated_cross_attention_equals_attention(batch: int) -> None:
    """cross_attention.py's token->image and image->token forms equal ``Attention.forward``,
    with the image side shared (batch 1) or per prompt."""
    from edge_sam_sdk.exporters.models import cross_attention as xa
    from edge_sam_sdk.exporters.models.sam_decoder import Attention

    gen = torch.Generator().manual_seed(0)
    attn = Attention(256, 8, downsample_rate=2).eval()
    for p in attn.parameters():
        p.data = 0.1 * torch.randn(p.shape, generator=gen)
    tokens = torch.randn(batch, 7, 256, generator=gen)
    for n in (1, batch):
        image, image_v = torch.randn(n, 4096, 256, generator=gen), torch.randn(n, 4096, 256, generator=gen)
        with torch.no_grad():
            torch.testing.assert_close(xa.token_to_image(attn, tokens, image, image_v),
                                       attn(tokens, image, image_v), rtol=1e-5, atol=1e-5)
            ref = attn(image.expand(batch, -1, -1), tokens, tokens)
            got = xa.image_to_token(attn, image, tokens, tokens)
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)


def test_token_layout_upscaling_equals_nchw_modules(models: dict) -> None:
    from edge_sam_sdk.exporters.models.sam_decoder import upscaled_masks

    up = get_model(models, VARIANT).mask_decoder.output_upscaling
    gen = torch.Generator().manual_seed(0)
    b, h, w = 2, 8, 12
    tokens, hyper = torch.randn(b, h * w, 256, generator=gen), torch.randn(b, 4, 32, generator=gen)
    with torch.no_grad():
        image = up(tokens.transpose(1, 2).reshape(b, 256, h, w))
        ref = (hyper @ image.reshape(b, 32, -1)).reshape(b, 4, 4 * h, 4 * w)
        torch.testing.assert_close(upscaled_masks(up, tokens, hyper, h, w), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rule", ["torch_bilinear", "torch_bicubic", "pil_bilinear"])
@pytest.mark.parametrize("sizes", [(256, 900), (256, 77), (171, 1800), (64, 64)])
def test_banded_operator_equals_dense_matrix(rule: str, sizes: tuple[int, int]) -> None:
    n_in, n_out = sizes
    m = R.matrix(n_in, n_out, rule)
    x = np.random.default_rng(0).standard_normal((2, 3, n_in, 5)).astype(np.float32)
    blocks = R.banded(m)
    np.testing.assert_allclose(R.apply_banded(x, blocks, -2), m.astype(np.float32) @ x, atol=1e-5)
    xt = np.ascontiguousarray(np.swapaxes(x, -1, -2))
    np.testing.assert_allclose(R.apply_banded(xt, blocks, -1), xt @ m.astype(np.float32).T, atol=1e-5)
    assert sum((o1 - o0) * (i1 - i0) for o0, o1, i0, i1, _ in blocks) < m.size or n_out <= 64


def test_gflops_counted_per_prompt(models: dict) -> None:
    """The decoder's count: per prompt (B=1, one click + pad), without the per-image projections."""
    from edge_sam_sdk.exporters.export import graph_modules
    from edge_sam_sdk.exporters.flops import count_gflops

    specs = graph_specs(get_variant(VARIANT))
    mods = graph_modules(get_model(models, VARIANT))
    dec = count_gflops(mods["decoder"], specs["decoder"])
    assert dec["dims"] == {"B": 1, "N": 2} and dec["flops_per_mac"] == 2
    # SAM's decoder computed plainly is ~3.7 GFLOPs per prompt; with layer 0's image side
    # projected once per image and the cross-attention reassociated it is ~1.9.
    assert 1.8 < dec["value"] < 2.0


@pytest.mark.parametrize("gelu_op", [True, False])
def test_tanh_gelu_becomes_one_opset20_gelu(gelu_op: bool, tmp_path) -> None:
    """EfficientViT's tanh GELU is exported as one ``Gelu(approximate="tanh")`` (opset 20), which
    onnxruntime keeps in NCHWc layout, with the same outputs; TensorRT-ready exports keep the
    opset-17 element-wise form, and a graph without the form is left at opset 17."""
    import onnx
    import onnxruntime as ort

    from edge_sam_sdk.exporters.models.efficientvit import TanhGelu
    from edge_sam_sdk.exporters.targets.onnx.export import export_onnx
    from edge_sam_sdk.graphs import GraphSpec, TensorSpec

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 32, 1), TanhGelu(), torch.nn.Conv2d(32, 16, 3, padding=1),
                              torch.nn.Tanh())
    graph = GraphSpec("g", (TensorSpec("x", (1, 16, 8, 8)),), (TensorSpec("y", (1, 16, 8, 8)),))
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    facts = export_onnx(net, graph, {"x": x}, tmp_path / "g.onnx", nchwc_rewrites=gelu_op)
    model = onnx.load(str(tmp_path / "g.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert facts["opset"] == (20 if gelu_op else 17) == model.opset_import[0].version
    assert (ops.count("Gelu"), ops.count("Tanh")) == ((1, 1) if gelu_op else (0, 2))
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    plain = torch.nn.Sequential(torch.nn.Conv2d(16, 16, 1), torch.nn.Tanh())
    assert export_onnx(plain, graph, {"x": x}, tmp_path / "p.onnx")["opset"] == 17


def test_se_gate_repeated_once_and_exact() -> None:
    """A squeeze-excite gate ``[N, C, 1, 1]`` is repeated to ``[N, C, H, W]`` by one nearest
    ``Resize`` (shared by every ``Mul`` that uses it) and the outputs are bit-identical."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edge_sam_sdk.exporters.targets.onnx.nchwc import keep_nchwc

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 8, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("ReduceMean", ["c"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Sigmoid", ["m"], ["g"]), helper.make_node("Mul", ["c", "g"], ["y1"]),
             helper.make_node("Mul", ["g", "x"], ["y2"]), helper.make_node("Add", ["y1", "y2"], ["y"])]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8, 6, 6]) for n in ("x", "y")]
    model = helper.make_model(helper.make_graph(nodes, "se", io[:1], io[1:], [w]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    x = rng.standard_normal((1, 8, 6, 6)).astype(np.float32)

    def run(m: onnx.ModelProto) -> np.ndarray:
        session = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    ref = run(model)
    rewritten, facts = keep_nchwc(onnx.load_from_string(model.SerializeToString()))
    assert facts == {"se_gates": 2}
    assert [n.op_type for n in rewritten.graph.node].count("Resize") == 1
    np.testing.assert_array_equal(run(rewritten), ref)
