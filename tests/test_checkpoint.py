"""Official-style checkpoint files load strictly; mismatches and unsafe files are refused."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from edge_sam_sdk import CheckpointError  # noqa: E402
from edge_sam_sdk.exporters.checkpoint import load_model  # noqa: E402
from edge_sam_sdk.registry import get_variant  # noqa: E402
from edge_sam_sdk.testing import synthetic_state_dict  # noqa: E402

VARIANT = "sam_vit_b"


@pytest.fixture(scope="module")
def state() -> dict:
    return synthetic_state_dict(get_variant(VARIANT).build_model().state_dict(), 3)


def test_plain_state_dict_file_loads(state: dict, tmp_path: Path) -> None:
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(state, path)
    model = load_model(get_variant(VARIANT), str(path))
    k = "image_encoder.pos_embed"
    assert torch.equal(model.state_dict()[k], state[k])


def test_mismatched_keys_are_named(state: dict, tmp_path: Path) -> None:
    broken = dict(state)
    broken.pop("mask_decoder.iou_token.weight")
    broken["extra.weight"] = torch.zeros(1)
    broken["image_encoder.pos_embed"] = torch.zeros(1, 32, 32, 768)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    with pytest.raises(CheckpointError) as err:
        load_model(get_variant(VARIANT), str(path))
    msg = str(err.value)
    assert "1 missing: mask_decoder.iou_token.weight" in msg
    assert "1 unexpected: extra.weight" in msg
    assert "image_encoder.pos_embed (1, 32, 32, 768) != (1, 64, 64, 768)" in msg


def test_wrong_variant_is_named(tmp_path: Path) -> None:
    other = get_variant("slimsam_77").build_model().state_dict()
    path = tmp_path / "slim.pth"
    torch.save(other, path)
    with pytest.raises(CheckpointError, match="looks like a checkpoint of slimsam_77"):
        load_model(get_variant(VARIANT), str(path))


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("code ran",))


def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"x": _Evil()}, f)
    with pytest.raises(CheckpointError, match="weights-only"):
        load_model(get_variant(VARIANT), str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_model(get_variant(VARIANT), str(tmp_path / "nope.pth"))
    with pytest.raises(CheckpointError, match="takes one checkpoint file"):
        load_model(get_variant(VARIANT), f"{tmp_path / 'a.pth'},{tmp_path / 'b.pth'}")


def test_nanosam_is_assembled_from_two_official_files(tmp_path: Path) -> None:
    """NanoSAM: encoder from its training checkpoint (``{"model": ...}``, no prefix) and
    the prompt encoder/decoder from MobileSAM's file, whose TinyViT keys are ignored."""
    spec = get_variant("nanosam")
    full = synthetic_state_dict(spec.build_model().state_dict(), 5)
    enc = {k.removeprefix("image_encoder."): v for k, v in full.items() if k.startswith("image_encoder.")}
    torch.save({"model": enc, "epoch": 3}, tmp_path / "checkpoint.pth")
    mobile = {k: v for k, v in full.items() if not k.startswith("image_encoder.")}
    mobile["image_encoder.patch_embed.seq.0.c.weight"] = torch.zeros(8, 3, 3, 3)  # TinyViT, unused
    torch.save(mobile, tmp_path / "mobile_sam.pt")
    model = load_model(spec, f"{tmp_path / 'checkpoint.pth'},{tmp_path / 'mobile_sam.pt'}")
    for k in ("image_encoder.pos_embedding", "mask_decoder.iou_token.weight"):
        assert torch.equal(model.state_dict()[k], full[k])
    with pytest.raises(CheckpointError, match="2 checkpoint files.*checkpoint.pth,mobile_sam.pt"):
        load_model(spec, str(tmp_path / "checkpoint.pth"))


def test_export_records_checkpoint_hash_and_officialness(tmp_path: Path) -> None:
    """A file of a variant without a recorded official sha256 is exported with ``official: None``
    (not "differs"); EdgeSAM's RPN-only keys, which its official loader ignores, are dropped."""
    import json

    from edge_sam_sdk.bundle import sha256_file
    from edge_sam_sdk.exporters.export import export_bundle

    spec = get_variant("edge_sam")
    state = synthetic_state_dict(spec.build_model().state_dict(), 0)
    state["rpn_head.conv.weight"] = torch.zeros(1)
    path = tmp_path / "edge_sam.pth"
    torch.save(state, path)
    out = export_bundle("edge_sam", str(path), tmp_path / "bundle")
    facts = json.loads((out / "manifest.json").read_text())["checkpoint"]
    assert facts == {"source": "edge_sam.pth", "sha256": sha256_file(path), "official": None}


def test_misleading_inputs_get_their_own_message(state: dict, tmp_path: Path) -> None:
    """A bad seed, a folder, a truncated file and a non-torch file each say what they are."""
    from edge_sam_sdk.exporters.checkpoint import read_state_dict

    spec = get_variant(VARIANT)
    with pytest.raises(CheckpointError, match="integer seed.*got 'synthetic:abc'"):
        load_model(spec, "synthetic:abc")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "sam_vit_b_01ec64.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is a folder, not a file; pass a file in it, e.g. .*sam_vit_b"):
        read_state_dict(str(tmp_path / "weights"), spec)
    with pytest.raises(CheckpointError, match="is empty"):
        read_state_dict(str(tmp_path / "weights" / "sam_vit_b_01ec64.pth"), spec)
    whole = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save({k: state[k] for k in list(state)[:4]}, whole)
    cut = tmp_path / "cut" / "sam_vit_b_01ec64.pth"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt .* the official sam_vit_b_01ec64.pth has "
                                              "375042383"):
        read_state_dict(str(cut), spec)
    page = tmp_path / "page.pth"
    page.write_bytes(b"<!DOCTYPE html><html>Not Found</html>")
    with pytest.raises(CheckpointError, match="not a torch checkpoint .*error page"):
        read_state_dict(str(page), spec)


def test_official_reference_loads_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``official`` and the variant's name resolve to the cached official file (no network:
    the file is put into ``EDGESAM_HOME`` by hand, as users of air-gapped machines do)."""
    import dataclasses
    import hashlib

    from edge_sam_sdk.exporters.export import checkpoint_facts
    from edge_sam_sdk.registry import _REGISTRY

    spec = get_variant("mobile_sam")
    state = synthetic_state_dict(spec.build_model().state_dict(), 2)
    cache = tmp_path / "checkpoints"
    cache.mkdir()
    torch.save(state, cache / "mobile_sam.pt")
    digest = hashlib.sha256((cache / "mobile_sam.pt").read_bytes()).hexdigest()
    ck = dataclasses.replace(spec.checkpoint, sha256={"mobile_sam.pt": digest}, size={})
    monkeypatch.setitem(_REGISTRY, "mobile_sam", dataclasses.replace(spec, checkpoint=ck))
    monkeypatch.setenv("EDGESAM_HOME", str(tmp_path))
    monkeypatch.setenv("EDGESAM_OFFLINE", "1")
    model = load_model(get_variant("mobile_sam"), "official")
    k = "mask_decoder.iou_token.weight"
    assert torch.equal(model.state_dict()[k], state[k])
    assert checkpoint_facts("mobile_sam") == {"source": "mobile_sam.pt", "sha256": digest}
