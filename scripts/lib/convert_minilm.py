"""Convert the all-MiniLM-L6-v2 sentence-transformers checkpoint to a GGUF that
llama.cpp loads as a BERT embedding model (mean pooling, 384-d).

Why our own converter: llama.cpp's convert_hf_to_gguf.py needs torch and the
llama.cpp source tree; this needs only the `gguf`, `safetensors` and `numpy`
wheels. It follows the same conventions (tensor names from gguf's own BERT
name map, WordPiece vocabulary in "phantom space" form).

usage: convert_minilm.py MODEL_DIR OUT.gguf
"""
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file


def phantom_space(token: str) -> str:
    # llama.cpp's WPM tokenizer marks word starts with U+2581 and stores
    # continuation pieces without BERT's "##" prefix.
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def main(model_dir: Path, out: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        sys.exit("expected a mean-pooling sentence-transformers model")
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    n_layers = config["num_hidden_layers"]

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name("all-MiniLM-L6-v2")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_block_count(n_layers)
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(gguf.PoolingType.MEAN)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    tokens = [phantom_space(t) for t in vocab]
    special = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
    types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in vocab]
    index = {t: i for i, t in enumerate(vocab)}
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    writer.add_bos_token_id(index["[CLS]"])
    writer.add_eos_token_id(index["[SEP]"])
    writer.add_sep_token_id(index["[SEP]"])
    writer.add_unk_token_id(index["[UNK]"])
    writer.add_pad_token_id(index["[PAD]"])
    writer.add_mask_token_id(index["[MASK]"])
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    for name, tensor in sorted(load_file(str(model_dir / "model.safetensors")).items()):
        if name.startswith("pooler.") or name.endswith("position_ids"):
            continue  # sentence-transformers pools itself; position ids are implicit
        gguf_name = names.get_name(name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            sys.exit(f"no GGUF name for tensor {name}")
        writer.add_tensor(gguf_name, tensor.astype(np.float32))

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
