"""PTQ4SAM-style bimodal-activation fix: flip the sign of matched query/key channels.

PTQ4SAM (Lv et al., CVPR 2024) observes that post-key-linear activations of SAM are
bimodal: some key channels sit around a positive value, others around a negative one, so a
per-tensor quantizer spends its range on the empty middle. Negating key channel ``c`` *and*
the query channel it is multiplied with leaves every attention logit ``sum_c q_c k_c``
unchanged, so the float model computes the same function (sign flips are exact in floating
point), while the keys' distribution becomes one-sided and quantizes on a finer grid.

Here, on our torch modules, before export and calibration:

1. :func:`find_sites` lists the attention layers where the flip is exact: TinyViT (MobileSAM,
   TinySAM), SAM ViT (SAM, SlimSAM: its decomposed relative-position tables multiply the
   query too, so their channels are flipped with it and a channel flips in every head at
   once) and EfficientSAM's ViT. Not applicable: EfficientViT's ReLU linear attention
   (``relu(-x) != -relu(x)``), Hiera's max-pooled queries, RepViT (no attention).
2. On the calibration images, hooks on each ``qkv`` linear collect per-channel mean, min
   and max of the queries and keys.
3. Candidate flips are the key channels with a negative mean. A site is flipped only when
   that lowers the predicted attention-logit quantization noise
   ``step_q^2 E[k^2] + step_k^2 E[q^2]`` (``step`` = per-tensor range / 255) by at least
   :data:`MIN_GAIN`. With symmetric activation quantization (``s8s8``) the range is
   ``2 max|x|``, which a sign flip cannot change, so nothing is flipped there.
4. :func:`apply_flips` negates the matching rows of the ``qkv`` weight and bias (and the
   relative-position table columns), in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

MIN_GAIN = 0.1  #: flip a site only if the predicted logit noise drops by at least 10 %


@dataclass
class Site:
    """One attention layer: its ``qkv`` linear and how q/k channels sit in its output rows.

    ``layout`` ``"per_head"``: rows ``[q | k | v]`` per head (TinyViT); ``"qkv"``: all heads'
    q, then all k, then all v (SAM ViT, EfficientSAM). ``shared``: tables whose last axis
    is the query channel, shared by all heads (SAM ViT's ``rel_pos_h``/``rel_pos_w``).
    """

    name: str
    qkv: nn.Linear
    heads: int
    head_dim: int
    layout: str
    shared: tuple[nn.Parameter, ...] = ()

    def rows(self, part: int) -> torch.Tensor:
        """``heads x head_dim`` row indices of the queries (``part=0``) or keys (``part=1``)."""
        h = torch.arange(self.heads)[:, None]
        c = torch.arange(self.head_dim)[None, :]
        if self.layout == "per_head":
            return h * 3 * self.head_dim + part * self.head_dim + c
        return part * self.heads * self.head_dim + h * self.head_dim + c


def find_sites(module: nn.Module) -> list[Site]:
    """Attention layers of ``module`` where the query/key sign flip is exact."""
    from ...models.efficient_sam import ViTAttention
    from ...models.sam_vit import Attention as SamAttention
    from ...models.tiny_vit import Attention as TinyAttention

    sites = []
    for name, m in module.named_modules():
        if isinstance(m, TinyAttention):
            sites.append(Site(name, m.qkv, m.num_heads, m.head_dim, "per_head"))
        elif isinstance(m, SamAttention):
            sites.append(Site(name, m.qkv, m.num_heads, m.head_dim, "qkv", (m.rel_pos_h, m.rel_pos_w)))
        elif isinstance(m, ViTAttention):
            sites.append(Site(name, m.qkv, m.num_heads, m.qkv.out_features // 3 // m.num_heads, "qkv"))
    return sites


def collect_stats(encoder: nn.Module, sites: Sequence[Site], images: Sequence[np.ndarray]) -> dict[str, Any]:
    """Per site: per-channel ``mean``/``min``/``max`` (``heads x head_dim``) of q and k, and
    ``sq`` (mean square over the whole tensor), over ``images`` (``1x3xSxS`` float32 each)."""
    acc: dict[str, dict[str, Any]] = {}

    def hook(site: Site) -> Any:
        def fn(_m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
            flat = out.detach().reshape(-1, out.shape[-1]).double()
            a = acc.setdefault(site.name, {})
            for part, key in ((0, "q"), (1, "k")):
                x = flat[:, site.rows(part)]  # T x heads x head_dim
                s = a.setdefault(key, {"sum": 0.0, "n": 0, "sq": 0.0, "min": None, "max": None})
                s["sum"] = s["sum"] + x.sum(0)
                s["n"] += x.shape[0]
                s["sq"] += float((x * x).mean())
                lo, hi = x.amin(0), x.amax(0)
                s["min"] = lo if s["min"] is None else torch.minimum(s["min"], lo)
                s["max"] = hi if s["max"] is None else torch.maximum(s["max"], hi)
        return fn

    handles = [s.qkv.register_forward_hook(hook(s)) for s in sites]
    try:
        with torch.no_grad():
            for image in images:
                encoder(torch.from_numpy(image))
    finally:
        for h in handles:
            h.remove()
    out: dict[str, Any] = {}
    for name, a in acc.items():
        out[name] = {key: {"mean": (s["sum"] / s["n"]).numpy(), "min": s["min"].numpy(),
                           "max": s["max"].numpy(), "sq": s["sq"] / len(images)}
                     for key, s in a.items()}
    return out


def _range(lo: np.ndarray, hi: np.ndarray, sign: np.ndarray, symmetric: bool) -> float:
    """Per-tensor quantization range of channels with extremes ``lo``/``hi`` after ``sign``."""
    new_lo = np.where(sign > 0, lo, -hi)
    new_hi = np.where(sign > 0, hi, -lo)
    if symmetric:
        return 2.0 * float(max(abs(new_lo.min()), abs(new_hi.max())))
    return float(max(new_hi.max(), 0.0) - min(new_lo.min(), 0.0))


def plan_flips(sites: Sequence[Site], stats: dict[str, Any], symmetric: bool) -> dict[str, Any]:
    """Per site: the ``heads x head_dim`` sign pattern (``"sign"``) and its figures."""
    plans = {}
    for site in sites:
        q, k = stats[site.name]["q"], stats[site.name]["k"]
        if site.shared:  # one decision per channel index, common to every head
            sign = np.broadcast_to(np.where(k["mean"].sum(0) < 0, -1.0, 1.0), k["mean"].shape).copy()
        else:
            sign = np.where(k["mean"] < 0, -1.0, 1.0)
        ones = np.ones_like(sign)

        def noise(s: np.ndarray, q: Any = q, k: Any = k) -> float:
            step_q = _range(q["min"], q["max"], s, symmetric) / 255
            step_k = _range(k["min"], k["max"], s, symmetric) / 255
            return step_q ** 2 * k["sq"] + step_k ** 2 * q["sq"]

        before, after = noise(ones), noise(sign)
        flip = bool((sign < 0).any()) and after <= (1 - MIN_GAIN) * before
        plans[site.name] = {
            "sign": sign if flip else ones,
            "negative_key_channels": int((k["mean"] < 0).sum()),
            "channels": int(sign.size),
            "key_range": [_range(k["min"], k["max"], ones, symmetric),
                          _range(k["min"], k["max"], sign, symmetric)],
            "noise_ratio": after / before if before > 0 else 1.0,
            "flipped": int((sign < 0).sum()) if flip else 0,
        }
    return plans


def apply_flips(sites: Sequence[Site], plans: dict[str, Any]) -> None:
    """Negate the planned query and key rows of each ``qkv`` (and shared query tables)."""
    with torch.no_grad():
        for site in sites:
            sign = torch.from_numpy(plans[site.name]["sign"]).to(site.qkv.weight.dtype)
            for part in (0, 1):
                rows = site.rows(part).reshape(-1)
                s = sign.reshape(-1)
                site.qkv.weight[rows] *= s[:, None]
                if site.qkv.bias is not None:
                    site.qkv.bias[rows] *= s
            for table in site.shared:
                table.mul_(sign[0])  # shared sites flip a channel in every head alike


def bimodal_fix(encoder: nn.Module, images: Sequence[np.ndarray], symmetric: bool = False) -> dict[str, Any]:
    """Detect and apply the flip on ``encoder`` (in place); returns the manifest's report::

        {"applicable": bool, "sites": n, "applied": n flipped sites, "flipped_channels": n,
         "blocks": {site: {"flipped", "channels", "negative_key_channels", "key_range": [before,
                    after], "noise_ratio"}}, "images": n}
    """
    sites = find_sites(encoder)
    if not sites:
        return {"applicable": False, "sites": 0, "applied": 0, "flipped_channels": 0,
                "note": "no attention layer where a query/key sign flip is exact"}
    plans = plan_flips(sites, collect_stats(encoder, sites, images), symmetric)
    apply_flips(sites, plans)
    blocks = {name: {k: v for k, v in p.items() if k != "sign"} for name, p in plans.items()}
    report: dict[str, Any] = {
        "applicable": True, "sites": len(sites), "images": len(images),
        "applied": sum(1 for b in blocks.values() if b["flipped"]),
        "flipped_channels": sum(b["flipped"] for b in blocks.values()), "blocks": blocks}
    if symmetric:
        report["note"] = "symmetric activation quantization: a sign flip cannot narrow the range"
    return report
