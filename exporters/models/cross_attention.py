"""SAM's token<->image cross-attention, reassociated so the image side is never head-split.

Same math as :meth:`sam_decoder.Attention.forward` (the same weights, no new keys), in a
cheaper order for the decoder's shapes: ``T`` tokens (5 output tokens plus the prompts, about
7) against ``N = 4096`` image tokens of ``C = 256`` channels, ``h = 8`` heads of ``c = 16``.

* token->image (queries are tokens): the key projection moves to the token side,
  ``q_h k_h^T = (q_h Wk_h) x^T + q_h bk_h``, and the last term is constant along the softmax
  axis, so it drops out; the value projection moves after the attention,
  ``p (x Wv_h^T + bv_h) = (p x) Wv_h^T + bv_h`` (rows of ``p`` sum to 1).
* image->token (queries are image tokens): the query projection moves to the token side,
  ``(x Wq_h^T + bq_h) k_h^T = x (Wq_h^T k_h^T) + bq_h k_h^T``, and the output projection
  moves onto the values, ``concat_h(p_h v_h) Wo^T = sum_h p_h (v_h Wo_h^T)``.

Each ``NxC`` image-side product then has ``h*T`` (about 56) columns instead of ``D = 128``,
and every head's scores are computed at once in token layout, with no ``Transpose`` of an
``NxD`` tensor. Where layer 0's image projections come precomputed (``NxD``, once per image),
the token side is laid out block-diagonally over the heads instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from .attention import Attention


def _block_diagonal(x: torch.Tensor, eye: torch.Tensor) -> torch.Tensor:
    """``BxhxRxS`` -> ``Bx(h*R)x(h*S)``: head ``i``'s block at ``(i, i)``, zeros elsewhere
    (``eye``: the ``1xhx1xhx1`` identity, :attr:`Attention.head_eye`)."""
    b, h, r, s = x.shape
    return (x.unsqueeze(3) * eye).reshape(b, h * r, h * s)


def _token_values(attn: Attention, p_image: torch.Tensor, t: int) -> torch.Tensor:
    """``BxhTxC`` (softmax-weighted image tokens, rows ``(head, token)``) -> ``BxTxC``."""
    h = attn.num_heads
    b, _, c_in = p_image.shape
    w = attn.v_proj.weight.reshape(h, -1, c_in)  # h x c x C
    out = p_image.reshape(b, h, t, c_in) @ w.transpose(1, 2) + attn.v_proj.bias.reshape(h, 1, -1)
    return attn.out_proj(out.transpose(1, 2).reshape(b, t, -1))


def token_to_image(attn: Attention, q: torch.Tensor, image_k: torch.Tensor,
                   image_v: torch.Tensor) -> torch.Tensor:
    """``attn(q, image_k, image_v)`` for tokens ``q`` ``BxTxC`` and image tokens
    ``image_k``/``image_v`` ``BxNxC`` (before projection; ``B`` may be 1 and broadcast)
    -> ``BxTxC``."""
    h, t = attn.num_heads, q.shape[1]
    qh = attn._heads(attn.q_proj(q))  # B x h x T x c
    c_in = image_k.shape[-1]
    g = qh @ (attn.k_proj.weight.reshape(h, -1, c_in) / math.sqrt(qh.shape[-1]))  # B x h x T x C
    scores = g.reshape(g.shape[0], h * t, c_in) @ image_k.transpose(1, 2)  # B x hT x N
    return _token_values(attn, scores.softmax(dim=-1) @ image_v, t)


def _image_weights(attn: Attention, scores: torch.Tensor, v: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over each head's tokens of ``scores`` ``BxNxhT``, and the token values ``v``
    ``BxTxC`` projected by ``v_proj`` and ``out_proj`` per head, ``BxhTxC``: the attention's
    output is ``p @ u``. Every row of ``p`` sums to ``h`` (1 per head), so ``u`` carries
    ``out_proj.bias / h`` and the product adds the bias without an ``NxC`` ``Add``."""
    h, (b, t, _) = attn.num_heads, v.shape
    p = scores.reshape(*scores.shape[:2], h, t).softmax(dim=-1).reshape(scores.shape)
    wo = attn.out_proj.weight.T.reshape(h, -1, attn.out_proj.weight.shape[0])  # h x c x C
    u = (attn._heads(attn.v_proj(v)) @ wo).reshape(b, h * t, -1)
    return p, u + attn.out_proj.bias / h


def image_to_token(attn: Attention, image_q: torch.Tensor, k: torch.Tensor,
                   v: torch.Tensor) -> torch.Tensor:
    """``attn(image_q, k, v)`` for image tokens ``image_q`` ``BxNxC`` (before projection) and
    tokens ``k``/``v`` ``BxTxC`` -> ``BxNxC``."""
    h = attn.num_heads
    kh = attn._heads(attn.k_proj(k)) / math.sqrt(attn.internal_dim // h)  # B x h x T x c
    b, _, t, _ = kh.shape
    c_in = image_q.shape[-1]
    wq = attn.q_proj.weight.reshape(h, -1, c_in)  # h x c x C
    m = (kh @ wq).reshape(b, h * t, c_in)  # B x hT x C
    bias = (kh @ attn.q_proj.bias.reshape(h, -1, 1)).reshape(b, 1, h * t)
    p, u = _image_weights(attn, image_q @ m.transpose(1, 2) + bias, v)
    return p @ u


@dataclass
class ImageSide:
    """Layer 0's image side, projected once per image, plus a low-rank per-prompt update.

    ``keys + shift`` (``1xNxC`` image tokens plus ``1xC``: the image side without a mask
    prompt) and its projections ``k``, ``v`` (token->image) and ``q`` (image->token), each
    ``1xNxD``, are per-image constants. A prompt's mask adds ``update @ d_keys`` to the keys
    (``update`` ``BxNxR``, ``d_keys`` ``RxC``) and so ``update @ d_k`` (``d_v``, ``d_q``) to
    the projections; the attention below applies it to the small ``h*T``-wide side instead
    of to ``NxD`` tensors.
    Prompts without a mask have ``update`` rows of zeros: their result is the plain one.
    """

    keys: torch.Tensor
    shift: torch.Tensor
    k: torch.Tensor
    v: torch.Tensor
    q: torch.Tensor
    update: torch.Tensor
    d_keys: torch.Tensor
    d_k: torch.Tensor
    d_v: torch.Tensor
    d_q: torch.Tensor

    def token_to_image(self, attn: Attention, q: torch.Tensor) -> torch.Tensor:
        """``attn(q, keys + pe, keys)`` for tokens ``q`` ``BxTxC`` -> ``BxTxC``; each head's
        queries sit in their own block of a block-diagonal ``BxhTxD`` matrix."""
        h, t = attn.num_heads, q.shape[1]
        qh = attn._heads(attn.q_proj(q))  # B x h x T x c
        qbd = _block_diagonal(qh / math.sqrt(qh.shape[-1]), attn.head_eye)  # B x hT x D
        scores = qbd @ self.k.transpose(1, 2) + (qbd @ self.d_k.T) @ self.update.transpose(1, 2)
        p = scores.softmax(dim=-1)  # B x hT x N
        out = p @ self.v + (p @ self.update) @ self.d_v  # B x hT x D: head i's in block (i, i)
        b, _, d = out.shape
        out = (out.reshape(b, h, t, h, d // h) * attn.head_eye).sum(dim=1)  # B x T x h x c
        return attn.out_proj(out.reshape(b, t, d))

    def image_to_token(self, attn: Attention, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``keys + shift + update @ d_keys + attn(...)`` for tokens ``k``/``v`` ``BxTxC``
        -> ``BxNxC``: the residual sum before layer 0's ``norm4`` (``shift`` rides in ``u``
        like the output bias)."""
        h = attn.num_heads
        kh = attn._heads(attn.k_proj(k)) / math.sqrt(attn.internal_dim // h)  # B x h x T x c
        kbd = _block_diagonal(kh, attn.head_eye).transpose(1, 2)  # B x D x hT
        p, u = _image_weights(attn, self.q @ kbd + self.update @ (self.d_q @ kbd), v)  # B x N x hT
        u = u + self.shift / h
        # The mask's change of the keys rides along in the same product.
        d_keys = self.d_keys.expand(u.shape[0], -1, -1)
        return self.keys + torch.cat([p, self.update], -1) @ torch.cat([u, d_keys], 1)
