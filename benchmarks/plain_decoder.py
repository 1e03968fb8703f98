"""The baseline of the batch bar: SAM's decoder computed plainly, every prompt on its own.

``PlainDecoder`` runs our modules (same weights) in the official order: the prompt's dense
embedding added to the image, every cross-attention projecting the 4096 image tokens for
every prompt (``Attention.forward``), the NCHW upscaling. It is what a per-prompt export
without per-image precomputation computes. :func:`batch_vs_plain` exports it to ONNX
(onnxsim, the same session settings as a bundle), checks it against our decoder graph and
times one-prompt runs of it against one 16-prompt run of the bundle's decoder graph.

    python benchmarks/plain_decoder.py --variant mobile_sam --threads 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edge_sam_sdk.bench import latency_feeds, summarize, time_call
from edge_sam_sdk.bundle import Bundle, load_bundle


def _block(blk: Any, queries: torch.Tensor, keys: torch.Tensor, query_pe: torch.Tensor,
           key_pe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's ``TwoWayAttentionBlock.forward`` with every projection done per prompt."""
    queries = blk.self_attention(queries, query_pe)
    q, k = queries + query_pe, keys + key_pe
    queries = blk.norm2(queries + blk.cross_attn_token_to_image(q, k, keys))
    queries = blk.norm3(queries + blk.mlp(queries))
    q, k = queries + query_pe, keys + key_pe
    keys = blk.norm4(keys + blk.cross_attn_image_to_token(k, q, queries))
    return queries, keys


class PlainDecoder(nn.Module):
    """``image_embeddings``, ``point_coords``, ``point_labels``, ``mask_input``,
    ``has_mask_input`` -> ``low_res_masks`` ``Bx4x256x256``, ``iou_predictions`` ``Bx4``."""

    def __init__(self, model: Any):
        super().__init__()
        self.pe, self.dec = model.prompt_encoder, model.mask_decoder

    def forward(self, image_embeddings: torch.Tensor, point_coords: torch.Tensor, point_labels: torch.Tensor,
                mask_input: torch.Tensor, has_mask_input: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pe, dec = self.pe, self.dec
        sparse = pe.embed_points(point_coords, point_labels)
        b = sparse.shape[0]
        src = image_embeddings + pe.embed_mask(mask_input, has_mask_input)
        out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
        tokens = torch.cat([out_tokens.unsqueeze(0).expand(b, -1, -1), sparse], dim=1)
        keys = src.flatten(2).transpose(1, 2)
        key_pe = pe.dense_pe().expand(b, -1, -1, -1).flatten(2).transpose(1, 2)
        queries, t = tokens, dec.transformer
        for blk in t.layers:
            queries, keys = _block(blk, queries, keys, tokens, key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = t.norm_final_attn(queries + t.final_attn_token_to_image(q, k, keys))
        n, h, w = dec.num_mask_tokens, *src.shape[-2:]
        hyper = torch.stack([mlp(queries[:, 1 + i]) for i, mlp in enumerate(dec.output_hypernetworks_mlps)],
                            dim=1)
        image = dec.output_upscaling(keys.transpose(1, 2).reshape(b, -1, h, w))
        masks = (hyper @ image.flatten(2)).reshape(b, n, 4 * h, 4 * w)
        return masks, dec.iou_prediction_head(queries[:, 0])


_INPUTS = ("image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input")


def _export_plain(model: Any, feed: dict[str, np.ndarray], path: Path) -> None:
    import onnx
    import onnxsim

    args = tuple(torch.from_numpy(feed[k]) for k in _INPUTS)
    axes = {"point_coords": {0: "B", 1: "N"}, "point_labels": {0: "B", 1: "N"}, "mask_input": {0: "B"},
            "has_mask_input": {0: "B"}, "low_res_masks": {0: "B"}, "iou_predictions": {0: "B"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on constants; parity is checked after
        torch.onnx.export(PlainDecoder(model).eval(), args, str(path), input_names=list(_INPUTS),
                          output_names=["low_res_masks", "iou_predictions"], dynamic_axes=axes,
                          opset_version=17, do_constant_folding=True, dynamo=False)
    simplified, ok = onnxsim.simplify(onnx.load(str(path)))
    if ok:
        onnx.save(simplified, str(path))


def batch_vs_plain(variant: str, bundle: Bundle, threads: int, runs: int = 20,
                   batch: int = 16) -> dict[str, Any]:
    """Graph times (ms): the plain decoder on one prompt, the bundle's decoder on one prompt
    and on ``batch`` prompts in one run; ``plain_singles_over_batch`` = ``batch`` plain
    single runs / one batched run of ours."""
    import onnxruntime as ort

    from edge_sam_sdk.exporters.checkpoint import load_model
    from edge_sam_sdk.registry import get_variant

    _, feed = latency_feeds(bundle)
    many = {k: np.repeat(v, batch, axis=0) if k in _INPUTS[1:] else v for k, v in feed.items()}
    model = load_model(get_variant(variant), "synthetic:0")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "plain_decoder.onnx"
        _export_plain(model, feed, path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        plain = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    ref = plain.run(None, {k: feed[k] for k in _INPUTS})  # the same masks as ours
    got = bundle.decoder.run(feed)
    diff = max(float(np.abs(r - got[k]).max()) for r, k in zip(ref, ("low_res_masks", "iou_predictions"),
                                                                  strict=True))
    plain_feed = {k: feed[k] for k in _INPUTS}
    plain_ms = time_call(lambda: plain.run(None, plain_feed), runs, 2)
    ours_ms = time_call(lambda: bundle.decoder.run(feed), runs, 2)
    batch_ms = time_call(lambda: bundle.decoder.run(many), max(3, runs // 4), 1)
    return {"plain_ms": summarize(plain_ms), "ours_ms": summarize(ours_ms),
            "batch_ms": summarize(batch_ms) | {"batch": batch}, "max_abs_diff": diff,
            "plain_singles_over_batch": batch * float(np.median(plain_ms)) / float(np.median(batch_ms)),
            "ours_singles_over_batch": batch * float(np.median(ours_ms)) / float(np.median(batch_ms))}


def main() -> None:
    from edge_sam_sdk.exporters.export import export_bundle

    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="mobile_sam")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = export_bundle(args.variant, "synthetic:0", Path(tmp) / args.variant, progress=print)
        bundle = load_bundle(path, threads=args.threads)
        result = batch_vs_plain(args.variant, bundle, args.threads, args.runs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
