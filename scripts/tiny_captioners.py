"""Tiny, random-weight captioning models saved as real transformers folders (BLIP, Florence-2).

Real classes, configs, tokenizers and processors at toy sizes, built without any download, so the
captioning code runs end to end on a CPU in well under a second. Captions are gibberish. Weights are
initialised with a large spread so that different images give different captions.
"""

import json
from pathlib import Path

import torch
from _pack import alias_pack

alias_pack()
from lookdev.trainer.fileio import atomic_folder, write_text  # noqa: E402  (needs the alias above)

IMAGE_SIZE = 32
WIDE_INIT = 1.0  # initializer std; the usual 0.02 makes every image produce the same caption
BLIP_WORDS = ("a an the man woman dog cat car tree house street room table window sitting standing "
              "walking on in of with near red blue green there is are arafed photo").split()


def build_blip(folder, seed=0) -> Path:
    """BLIP captioning model with a WordPiece tokenizer over a few dozen words."""
    return _build(folder, seed, _blip)


def _blip(folder, seed):
    from transformers import (BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
                              BlipProcessor)

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    write_text(folder / "vocab.txt", "\n".join([*special, *BLIP_WORDS]) + "\n")
    tokenizer = BertTokenizer.from_pretrained(folder, bos_token="[DEC]")
    image_processor = BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    tiny = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
            "initializer_range": WIDE_INIT}
    config = BlipConfig(
        text_config={**tiny, "vocab_size": len(tokenizer), "max_position_embeddings": 64,
                     "bos_token_id": tokenizer.bos_token_id, "sep_token_id": tokenizer.sep_token_id,
                     "eos_token_id": tokenizer.sep_token_id, "pad_token_id": tokenizer.pad_token_id},
        vision_config={**tiny, "image_size": IMAGE_SIZE, "patch_size": 8, "initializer_factor": WIDE_INIT},
        projection_dim=32, initializer_range=WIDE_INIT, initializer_factor=WIDE_INIT)
    return _model(seed, BlipForConditionalGeneration, config), BlipProcessor(image_processor, tokenizer)


def build_florence2(folder, seed=0) -> Path:
    """Native Florence-2 model with a byte-level BPE tokenizer over printable ASCII, no merges."""
    return _build(folder, seed, _florence2)


def _florence2(folder, seed):
    from transformers import (BartTokenizer, CLIPImageProcessor, Florence2Config,
                              Florence2ForConditionalGeneration, Florence2Processor)

    # Byte-level BPE spells a space "Ġ"; the other printable ASCII characters are themselves.
    symbols = ["<s>", "<pad>", "</s>", "<unk>", "Ġ", *(chr(code) for code in range(33, 127))]
    write_text(folder / "vocab.json", json.dumps({symbol: i for i, symbol in enumerate(symbols)}))
    write_text(folder / "merges.txt", "#version: 0.2\n")
    tokenizer = BartTokenizer.from_pretrained(folder, extra_special_tokens={"image_token": "<image>"})
    image_processor = CLIPImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_center_crop=False,
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    # One vision stage of stride 4: an 8x8 grid of image tokens plus one pooled token.
    image_processor.image_seq_length = (IMAGE_SIZE // 4) ** 2 + 1
    processor = Florence2Processor(image_processor, tokenizer, post_processor_config={"pure_text": {}})
    special = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
               "pad_token_id": tokenizer.pad_token_id, "decoder_start_token_id": tokenizer.eos_token_id,
               "forced_eos_token_id": tokenizer.eos_token_id}
    config = Florence2Config(
        text_config={"model_type": "bart", "vocab_size": len(tokenizer), "max_position_embeddings": 256,
                     "d_model": 32, "encoder_layers": 1, "decoder_layers": 1, "encoder_ffn_dim": 32,
                     "decoder_ffn_dim": 32, "encoder_attention_heads": 2, "decoder_attention_heads": 2,
                     "init_std": WIDE_INIT, **special},
        vision_config={"depths": [1], "patch_size": [7], "patch_stride": [4], "patch_padding": [3],
                       "patch_prenorm": [False], "embed_dim": [32], "num_heads": [2], "num_groups": [2],
                       "window_size": 4, "projection_dim": 32, "initializer_range": WIDE_INIT},
        image_token_id=tokenizer.image_token_id, initializer_range=WIDE_INIT)
    return _model(seed, Florence2ForConditionalGeneration, config), processor


BUILDERS = {"blip": build_blip, "florence2": build_florence2}


def _build(folder, seed, make):
    """The folder `make(temp folder, seed)` fills with its tokenizer files, then the model and
    processor it returns; renamed into place only once complete."""
    with atomic_folder(folder) as tmp:
        model, processor = make(tmp, seed)
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return Path(folder)


def _model(seed, model_class, config):
    """The model with weights drawn by name, not by the class's own init, whose order of draws
    differs between transformers versions (4.57 and 5.x gave different tiny models)."""
    model = model_class(config).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, module in sorted(model.named_modules(), key=lambda item: item[0]):
            is_norm = "norm" in type(module).__name__.lower()
            for name, param in sorted(module.named_parameters(recurse=False), key=lambda item: item[0]):
                if is_norm:
                    values = torch.ones(param.shape) if name == "weight" else torch.zeros(param.shape)
                elif param.ndim >= 2:
                    values = torch.randn(param.shape, generator=gen) * WIDE_INIT
                else:
                    values = torch.zeros(param.shape)
                param.copy_(values.to(param.dtype))
    return model
