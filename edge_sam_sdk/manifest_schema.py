"""The manifest schema (format version 1): the one normative description of ``manifest.json``.

:func:`validate_manifest` checks a parsed manifest against the pydantic models below
(types, ranges, required keys, enumerations) and then the consistency of the graph
contracts with ``processing`` and ``decoder_kind`` (shapes, names, token indices); any
problem is a one-line :class:`~edge_sam_sdk.errors.BundleError` naming the key, e.g.
``manifest.json: graphs.decoder.inputs.4.shape: ...``. ``docs/bundle-format.md`` describes
the same fields in prose; :func:`manifest_json_schema` prints them as JSON Schema.

Files a manifest names (``graphs.<g>.file``, ``graphs.<g>.data_files[].file``) must be plain
relative POSIX paths: no empty, ``.`` or ``..`` segment, no leading ``/``, no ``\\``, no
drive letter, no NUL. :mod:`edge_sam_sdk.bundle` then resolves them inside the bundle folder.

Unknown keys are kept (provenance and target facts grow over time) except in ``processing``,
where they are ignored as before. ``processing`` must hold the eight fields of the first
exports (``input_size`` .. ``mask_threshold``); the later ones take the defaults of
:class:`~edge_sam_sdk.processing.ProcessingSpec` when missing (bundles of earlier exports lack
them, and the defaults are what those exports used).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import BundleError
from .graphs import DECODER_KINDS

FORMAT_VERSION = 1
TARGETS = ("onnx", "tensorrt", "coreml", "tflite", "torch")
PRECISIONS = ("fp32", "fp16", "int8")
#: Dynamic axis names a graph shape may hold: ``B`` prompts per run, ``N`` points per prompt.
DYNAMIC_AXES = ("B", "N")
MAX_DIM = 1 << 20


def _finite(x: float) -> float:
    if not math.isfinite(x):
        raise ValueError("must be a finite number")
    return x


def _relative_file(path: str) -> str:
    """A plain relative POSIX path inside the bundle (checked again on disk by bundle.py)."""
    if not path or "\x00" in path or "\\" in path or path.startswith("/") or ":" in path:
        raise ValueError("must be a relative path inside the bundle (no '/', '\\', ':' or NUL prefix)")
    if any(part in ("", ".", "..") for part in path.split("/")):
        raise ValueError("must be a plain relative path inside the bundle (no '.', '..' or empty segments)")
    return path


Finite = Annotated[float, AfterValidator(_finite)]
RelativeFile = Annotated[str, Field(max_length=255), AfterValidator(_relative_file)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/+-]+$")]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)] | Literal["B", "N"]
TokenList = Annotated[list[Annotated[int, Field(ge=0, le=64)]], Field(min_length=1, max_length=64)]

_STRICT = ConfigDict(strict=True, extra="allow")


class TensorEntry(BaseModel):
    """``{"name", "shape", "dtype"}`` of one graph input or output."""

    model_config = _STRICT
    name: Name
    shape: Annotated[list[Dim], Field(max_length=8)]
    dtype: Literal["float32"] = "float32"


class DataFile(BaseModel):
    model_config = _STRICT
    file: RelativeFile
    sha256: Sha256


class SingleFallback(BaseModel):
    model_config = _STRICT
    stability_delta: Annotated[Finite, Field(ge=0.0, le=1e3)]
    stability_thresh: Annotated[Finite, Field(ge=0.0, le=1.0)]


class MaskSelection(BaseModel):
    model_config = _STRICT
    multimask: TokenList
    single: TokenList
    single_fallback: SingleFallback | None = None


class TfliteFacts(BaseModel):
    model_config = _STRICT
    signatures: Annotated[list[Name], Field(min_length=1, max_length=256)]
    points: Annotated[list[Annotated[int, Field(ge=0, le=1024)]], Field(max_length=1024)] | None = None


class GraphExtra(BaseModel):
    model_config = _STRICT
    mask_selection: MaskSelection | None = None
    from_encoder: Annotated[list[Name], Field(min_length=1, max_length=64)] | None = None
    tflite: TfliteFacts | None = None


class GraphEntry(BaseModel):
    """``graphs.encoder`` / ``graphs.decoder``; target facts (opset, coreml, trtexec...) pass."""

    model_config = _STRICT
    name: Literal["encoder", "decoder"] | None = None
    file: RelativeFile
    sha256: Sha256
    inputs: Annotated[list[TensorEntry], Field(min_length=1, max_length=64)]
    outputs: Annotated[list[TensorEntry], Field(min_length=1, max_length=64)]
    data_files: Annotated[list[DataFile], Field(max_length=64)] = []
    max_abs: Annotated[Finite, Field(ge=0.0)] | None = None
    rel_l2: Annotated[Finite, Field(ge=0.0)] | None = None
    precision: Literal["fp32", "fp16", "int8"] | None = None
    onnx_file: RelativeFile | None = None
    extra: GraphExtra = GraphExtra()


class Graphs(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")
    encoder: GraphEntry
    decoder: GraphEntry


class Processing(BaseModel):
    """``processing``: every field of ``ProcessingSpec`` with its range. The fields of the first
    format-1 exports are required; those added since (``pad_point`` onwards) take the spec's
    defaults when missing (earlier bundles lack them); unknown keys are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")
    input_size: Annotated[int, Field(ge=1, le=8192)]
    resize: Literal["longest_side", "longest_side_floor", "stretch"]
    interpolation: Literal["pil_bilinear", "pil_bicubic", "torch_bilinear", "torch_bilinear_aa"]
    pixel_mean: Annotated[list[Annotated[Finite, Field(ge=-1e4, le=1e4)]], Field(min_length=3, max_length=3)]
    pixel_std: Annotated[list[Annotated[Finite, Field(gt=1e-6, le=1e4)]], Field(min_length=3, max_length=3)]
    prompt_frame: Annotated[int, Field(ge=1, le=16384)]
    low_res_size: Annotated[int, Field(ge=1, le=4096)]
    mask_threshold: Annotated[Finite, Field(ge=-1e4, le=1e4)]
    pad_point: Literal["no_box", "always", "never"] | bool = "no_box"
    box_first: bool = False
    max_points: Annotated[int, Field(ge=0, le=64)] = 0
    pad_coord: Annotated[Finite, Field(ge=-1e6, le=1e6)] = 0.0
    postprocess: Literal["sam", "crop_low_res", "resize"] = "sam"
    mask_interpolation: Literal["torch_bilinear", "torch_bicubic"] = "torch_bilinear"
    low_res_clamp: Annotated[Finite, Field(ge=0.0, le=1e6)] = 0.0

    @model_validator(mode="after")
    def _rules(self) -> Processing:
        if self.resize == "stretch" and self.postprocess == "sam":
            raise ValueError("resize 'stretch' needs postprocess 'resize' (nothing to crop)")
        return self


class Gpu(BaseModel):
    model_config = _STRICT
    name: Annotated[str, Field(max_length=256)]
    compute_capability: Annotated[str, Field(pattern=r"^\d{1,3}\.\d{1,3}$")]


class TensorRTFacts(BaseModel):
    model_config = _STRICT
    version: Annotated[str, Field(max_length=64)]
    gpu: Gpu
    max_points: Annotated[int, Field(ge=1, le=4096)] | None = None
    max_prompts: Annotated[int, Field(ge=1, le=4096)] | None = None
    calibration_cache: RelativeFile | None = None
    trtexec: RelativeFile | None = None


class Checkpoint(BaseModel):
    model_config = _STRICT
    source: Annotated[str, Field(max_length=4096)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}(,[0-9a-f]{64})*$")] | None = None
    official: bool | None = None


class Manifest(BaseModel):
    """The whole ``manifest.json``. Readers need ``format_version``, ``target``,
    ``decoder_kind``, ``processing`` and ``graphs``; the rest is provenance."""

    model_config = _STRICT
    format_version: Literal[1]
    sdk_version: Annotated[str, Field(max_length=64)] | None = None
    variant: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.+-]+$")]
    family: Annotated[str, Field(max_length=128)] | None = None
    decoder_kind: Literal["sam", "efficient_sam", "sam2"]
    target: Literal["onnx", "tensorrt", "coreml", "tflite", "torch"]
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    processing: Processing
    graphs: Graphs
    license: Annotated[str, Field(max_length=4096)] | None = None
    created_unix: Annotated[int, Field(ge=0)] | None = None
    checkpoint: Checkpoint | None = None
    tensorrt: TensorRTFacts | None = None
    export_parity: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _contracts(self) -> Manifest:
        check_contracts(self)
        return self


# --------------------------------------------------------------------- consistency


def _shape(entries: list[TensorEntry], name: str, where: str) -> list[int | str]:
    for t in entries:
        if t.name == name:
            return list(t.shape)
    raise ValueError(f"{where} has no {name!r}")


def check_contracts(m: Manifest) -> None:
    """The graph contracts agree with ``processing`` and ``decoder_kind`` (ValueError if not)."""
    kind = DECODER_KINDS[m.decoder_kind]
    proc, enc, dec = m.processing, m.graphs.encoder, m.graphs.decoder
    s, low = proc.input_size, proc.low_res_size
    for g, entry in (("encoder", enc), ("decoder", dec)):
        for side in ("inputs", "outputs"):
            names = [t.name for t in getattr(entry, side)]
            if len(set(names)) != len(names):
                raise ValueError(f"graphs.{g}.{side}: tensor names repeat")
    if [(t.name, list(t.shape)) for t in enc.inputs] != [("image", [1, 3, s, s])]:
        raise ValueError(f"graphs.encoder.inputs: must be one 'image' of shape [1, 3, {s}, {s}] "
                         "(processing.input_size)")
    if enc.outputs[0].name != "image_embeddings" or len(enc.outputs[0].shape) != 4 \
            or not all(isinstance(d, int) for d in enc.outputs[0].shape) or enc.outputs[0].shape[0] != 1:
        raise ValueError("graphs.encoder.outputs.0: must be 'image_embeddings' of shape [1, C, H, W]")
    if any(isinstance(d, str) for t in enc.outputs for d in t.shape):
        raise ValueError("graphs.encoder.outputs: shapes must be static (no 'B'/'N' axes)")
    from_encoder = dec.extra.from_encoder or ["image_embeddings"]
    enc_shapes = {t.name: list(t.shape) for t in enc.outputs}
    dec_shapes = {t.name: list(t.shape) for t in dec.inputs}
    for name in from_encoder:
        if name not in enc_shapes or name not in dec_shapes:
            raise ValueError(f"graphs.decoder.extra.from_encoder: {name!r} must be an encoder output "
                             "and a decoder input")
        if enc_shapes[name] != dec_shapes[name]:
            raise ValueError(f"graphs.decoder.inputs: {name!r} shape {dec_shapes[name]} differs from the "
                             f"encoder output's {enc_shapes[name]}")
    prompts = ["point_coords", "point_labels"] + (["mask_input", "has_mask_input"] if kind.mask_input else [])
    if sorted(dec_shapes) != sorted(set(from_encoder) | set(prompts)):
        raise ValueError(f"graphs.decoder.inputs: a {m.decoder_kind!r} decoder takes "
                         f"{from_encoder + prompts}, the manifest lists {list(dec_shapes)}")
    n: int | str = proc.max_points if kind.fixed_points else "N"
    if kind.fixed_points and proc.max_points < 1:
        raise ValueError(f"processing.max_points: a {m.decoder_kind!r} decoder takes a fixed point "
                         "count, so it must be >= 1")
    want: dict[str, list[int | str]] = {"point_coords": ["B", n, 2], "point_labels": ["B", n]}
    if kind.mask_input:
        want |= {"mask_input": ["B", 1, low, low], "has_mask_input": ["B"]}
    for name, shape in want.items():
        if dec_shapes[name] != shape:
            raise ValueError(f"graphs.decoder.inputs: {name!r} must have shape {shape}, "
                             f"got {dec_shapes[name]}")
    masks = _shape(dec.outputs, "low_res_masks", "graphs.decoder.outputs")
    if len(masks) != 4 or masks[0] != "B" or masks[2:] != [low, low] or not isinstance(masks[1], int):
        raise ValueError(f"graphs.decoder.outputs: 'low_res_masks' must be ['B', M, {low}, {low}] "
                         "(processing.low_res_size)")
    tokens = int(masks[1])
    if _shape(dec.outputs, "iou_predictions", "graphs.decoder.outputs") != ["B", tokens]:
        raise ValueError(f"graphs.decoder.outputs: 'iou_predictions' must be ['B', {tokens}]")
    selection = dec.extra.mask_selection
    if selection is not None:
        for key in ("multimask", "single"):
            chosen = getattr(selection, key)
            if max(chosen) >= tokens or len(set(chosen)) != len(chosen):
                raise ValueError(f"graphs.decoder.extra.mask_selection.{key}: tokens must be distinct "
                                 f"and below the decoder's {tokens} mask tokens")
    elif tokens < 4:
        raise ValueError("graphs.decoder.extra.mask_selection: required when the decoder has fewer "
                         "than 4 mask tokens (the defaults pick tokens 0..3)")


# ------------------------------------------------------------------------ entry point


def validate_manifest(manifest: Any, where: str = "manifest.json") -> Manifest:
    """Check a parsed manifest; ``BundleError`` (one line, naming the key) if it is invalid."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where} is corrupt: expected a JSON object, got {type(manifest).__name__}")
    version = manifest.get("format_version", None)
    if "format_version" in manifest and (type(version) is not int or version != FORMAT_VERSION):
        shown = repr(version)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise BundleError(f"{where}: unknown bundle format version {shown} (this SDK reads version "
                          f"{FORMAT_VERSION}); re-export the bundle")
    try:
        return Manifest.model_validate(manifest)
    except ValidationError as exc:
        raise BundleError(f"{where} is invalid: {_describe(exc)}") from None
    except RecursionError:
        raise BundleError(f"{where} is invalid: nested too deeply") from None


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "missing":
        msg = "required key is missing"
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    text = f"{key}: {msg}{more}" if key else f"{msg}{more}"
    return " ".join(text.split())[:400]


def manifest_json_schema() -> dict[str, Any]:
    """The schema as JSON Schema (draft 2020-12), for ports and tools."""
    return Manifest.model_json_schema()


__all__ = ["DYNAMIC_AXES", "FORMAT_VERSION", "PRECISIONS", "TARGETS", "Manifest", "check_contracts",
           "manifest_json_schema", "validate_manifest"]
