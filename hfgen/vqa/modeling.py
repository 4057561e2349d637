"""PaliGemma for CLEVR VQA: the real model from a folder or the Hub, or a tiny randomly initialised one built offline;
the prompt format; LoRA through PEFT restricted to the language model.

PaliGemma (Beyer et al. 2024, "PaliGemma: A versatile 3B VLM for transfer") is transformers'
`PaliGemmaForConditionalGeneration`: a SigLIP vision tower, a linear projector and a Gemma decoder. Its processor puts
``image_seq_length`` ``<image>`` tokens, ``<bos>``, the prompt and ``"\\n"`` first (the prefix, ``token_type_ids`` 0,
attended bidirectionally) and the ``suffix`` (the answer) plus ``<eos>`` after it (``token_type_ids`` 1); labels are
-100 on the prefix, so the loss covers only the answer and EOS.
"""

from __future__ import annotations

import json
import os

import torch

from hfgen.errors import ConfigurationError, HfgenError

PROMPT_TEMPLATE = "answer en {question}"
BASE_MODEL_ID = "google/paligemma-3b-pt-224"
TINY_BASE_DIR = "tiny_base_model"  # where `hfgen vqa finetune --tiny` saves the tiny base model and its processor
LANGUAGE_MODEL_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
VISION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
TINY_IMAGE_SIZE = 32
TINY_PATCH_SIZE = 8
TINY_EMBEDDING_STD = 0.25
SPECIAL_TOKENS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]


def make_prompt(question: str) -> str:
    """The PaliGemma VQA prompt for ``question``: ``"answer en {question}"`` (PaliGemma's task prefix)."""
    return PROMPT_TEMPLATE.format(question=question.strip())


def lora_target_regex(on_vision: bool = False) -> str:
    """The PEFT ``target_modules`` regex (PEFT full-matches a string against each module name).

    Default: the Gemma language model's attention and MLP projections (``q/k/v/o_proj``, ``gate/up/down_proj``) and
    nothing in the SigLIP vision tower, whose attention also has ``q_proj``/``k_proj``/``v_proj`` (a bare
    ``["q_proj", "v_proj"]`` list silently adapts the vision tower too). ``on_vision=True`` adds the vision tower's
    attention (``q/k/v/out_proj``) and MLP (``fc1``, ``fc2``).
    """
    language = rf".*language_model\..*\.({'|'.join(LANGUAGE_MODEL_PROJECTIONS)})"
    if not on_vision:
        return language
    vision = rf".*vision_tower\..*\.({'|'.join(VISION_PROJECTIONS)})"
    return f"({language})|({vision})"


# ---------------------------------------------------------------------------------------------- tiny model
def train_tiny_tokenizer(texts: list[str], vocab_size: int = 512):
    """A Gemma tokenizer (`GemmaTokenizerFast`: BPE, ``▁`` for spaces) trained offline on ``texts``.

    Merges never cross a word boundary, so the trained vocabulary tokenises exactly like Gemma's own pipeline (no
    pre-tokenizer) would. Deterministic for the same ``texts``.

    Raises:
        HfgenError: for an empty ``texts``.
    """
    from tokenizers import pre_tokenizers, trainers
    from transformers import GemmaTokenizerFast

    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise HfgenError("no questions or answers to train the tiny tokenizer on; is the CLEVR split empty?")
    backend = GemmaTokenizerFast()._tokenizer
    backend.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    alphabet = sorted(set("".join(texts)) | set("\n0123456789?.,'") | set("abcdefghijklmnopqrstuvwxyz"))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=alphabet, show_progress=False
    )
    backend.train_from_iterator(texts, trainer=trainer)
    model = json.loads(backend.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return GemmaTokenizerFast(vocab=model["vocab"], merges=merges)


def build_tiny_processor(texts: list[str]):
    """A `PaliGemmaProcessor` built offline: a `SiglipImageProcessor` (32x32, mean/std 0.5 like PaliGemma's) and a
    Gemma tokenizer trained on ``texts`` (`train_tiny_tokenizer`); ``image_seq_length`` = (32/8)² = 16 patches."""
    from transformers import PaliGemmaProcessor

    try:
        from transformers import SiglipImageProcessorPil as ImageProcessor  # no torchvision here
    except ImportError:  # older transformers
        from transformers import SiglipImageProcessor as ImageProcessor
    image_processor = ImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    image_processor.image_seq_length = (TINY_IMAGE_SIZE // TINY_PATCH_SIZE) ** 2
    return PaliGemmaProcessor(image_processor=image_processor, tokenizer=train_tiny_tokenizer(texts))


def build_tiny_paligemma(processor, seed: int = 0):
    """A tiny randomly initialised `PaliGemmaForConditionalGeneration` consistent with ``processor``: vocabulary
    size = ``len(processor.tokenizer)``, ``image_token_index`` = the processor's ``<image>`` id, image size, patch
    size and ``image_seq_length`` agree. SigLIP: 2 layers, width 32; Gemma: 2 layers, width 64, 2 heads, 1 KV head;
    token embeddings (tied to the output layer) drawn with std ``TINY_EMBEDDING_STD``.
    Deterministic for the same ``seed`` and processor."""
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration

    tokenizer = processor.tokenizer
    vocab_size = len(tokenizer)
    image_size = processor.image_processor.size["height"]
    patch_size = image_size // int(processor.image_seq_length**0.5)
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": image_size,
            "patch_size": patch_size,
            "vision_use_head": False,
        },
        text_config={
            "model_type": "gemma",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
            "vocab_size": vocab_size,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        image_token_index=processor.image_token_id,
        vocab_size=vocab_size,
        projection_dim=64,
        hidden_size=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = PaliGemmaForConditionalGeneration(config)
        # Gemma ties the output layer to the token embeddings. At the usual std 0.02 a random 64-wide embedding caps
        # the logits near ±1.3, too flat for a frozen head to express any answer, so the tiny model draws them wider.
        with torch.no_grad():
            embeddings = model.get_input_embeddings().weight
            embeddings.normal_(0.0, TINY_EMBEDDING_STD)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


# ---------------------------------------------------------------------------------------------- loading
def load_base_model(
    model_name_or_path: str | None = None,
    tiny: bool = False,
    clevr_dir: str | None = None,
    adapter: str | None = None,
    seed: int = 0,
    torch_dtype: torch.dtype | None = None,
    load_in_4bit: bool = False,
):
    """The base PaliGemma and its processor: ``(model, processor)``.

    - ``tiny``: the tiny model. A fine-tuned adapter folder holds the exact tiny base it was trained on
      (``ADAPTER/tiny_base_model``), which is used when ``adapter`` is given; otherwise the tiny model is built from
      the questions and answers of ``clevr_dir``'s train split with ``seed`` (deterministic, so `hfgen vqa finetune`
      and `hfgen vqa evaluate` build the same one).
    - otherwise ``model_name_or_path``: a local folder, or a Hub id when online (`PaliGemmaForConditionalGeneration`
      and `PaliGemmaProcessor` ``from_pretrained``, safetensors only, no remote code).

    Raises:
        ConfigurationError: neither or both of ``tiny`` and ``model_name_or_path``; ``load_in_4bit`` without CUDA or
            bitsandbytes.
        HfgenError: a model that cannot be loaded (the message says whether the Hub was unreachable).
    """
    from transformers import PaliGemmaForConditionalGeneration, PaliGemmaProcessor

    if tiny == bool(model_name_or_path):
        raise ConfigurationError("pass exactly one of --model_name_or_path PATH_OR_HUB_ID and --tiny")
    if tiny:
        if load_in_4bit:
            raise ConfigurationError("--load_in_4bit applies to the real PaliGemma on a GPU, not to --tiny")
        saved = os.path.join(adapter, TINY_BASE_DIR) if adapter else None
        if saved and os.path.isdir(saved):
            model_name_or_path = saved
        else:
            if clevr_dir is None:
                raise ConfigurationError("--tiny needs --clevr_dir: its questions train the tiny tokenizer")
            from hfgen.data.clevr import load_clevr

            train = load_clevr(clevr_dir, "train")
            processor = build_tiny_processor(tiny_corpus(train["question"], train["answer"]))
            return build_tiny_paligemma(processor, seed=seed), processor
    from hfgen.output_folder.layout import looks_like_local_path

    if looks_like_local_path(model_name_or_path) and not os.path.isdir(os.path.expanduser(model_name_or_path)):
        raise HfgenError(
            f"--model_name_or_path {model_name_or_path} does not exist; pass a folder holding a PaliGemma "
            f"(config.json, *.safetensors, processor files) or a Hub id such as {BASE_MODEL_ID}"
        )
    kwargs = {"use_safetensors": True}
    if torch_dtype is not None:
        kwargs["dtype"] = torch_dtype
    if load_in_4bit:
        kwargs["quantization_config"] = quantization_config_4bit(torch_dtype or torch.bfloat16)
        kwargs["device_map"] = {"": 0}
    try:
        processor = PaliGemmaProcessor.from_pretrained(model_name_or_path)
        model = PaliGemmaForConditionalGeneration.from_pretrained(model_name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        hint = (
            " (HF_HUB_OFFLINE is set: only local folders load; download the weights first or use --tiny)"
            if offline
            else ""
        )
        raise HfgenError(f"could not load PaliGemma from {model_name_or_path!r}: {err}{hint}") from None
    return model, processor


def tiny_corpus(questions: list[str], answers: list[str | None]) -> list[str]:
    """The texts the tiny tokenizer learns: every prompt (with PaliGemma's ``"\\n"`` separator) and answer."""
    return [make_prompt(q) + "\n" for q in questions] + [a for a in answers if a]


def quantization_config_4bit(compute_dtype: torch.dtype):
    """QLoRA's 4-bit NF4 `BitsAndBytesConfig` (Dettmers et al. 2023).

    Raises:
        ConfigurationError: without a CUDA GPU or without the ``bitsandbytes`` package.
    """
    if not torch.cuda.is_available():
        raise ConfigurationError(
            "--load_in_4bit (QLoRA) needs a CUDA GPU and bitsandbytes; this machine has no CUDA device. Drop "
            "--load_in_4bit to fine-tune in full precision (or bf16 with --mixed_precision bf16)"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigurationError("--load_in_4bit needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def add_lora(model, r: int = 8, alpha: int = 16, dropout: float = 0.05, target: str | None = None,
             on_vision: bool = False):  # fmt: skip
    """Wrap ``model`` in a PEFT `LoraConfig` adapter; everything else, the vision tower and projector included, stays
    frozen. ``target`` (a regex or comma-separated module names) overrides `lora_target_regex`.

    Raises:
        ConfigurationError: when the target matches no module (the message lists the candidates).
    """
    from peft import LoraConfig, get_peft_model

    if target is None:
        target_modules = lora_target_regex(on_vision)
    elif "," in target or target.isidentifier():
        target_modules = [t.strip() for t in target.split(",") if t.strip()]
    else:
        target_modules = target
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
                        task_type="CAUSAL_LM", bias="none")  # fmt: skip
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigurationError(
            f"--lora_target {target_modules!r} matches no module of the model ({err}); linear layers: "
            f"{', '.join(linear)}"
        ) from None


def trainable_parameters_by_module(model) -> dict[str, int]:
    """Trainable parameter counts grouped as ``vision_tower``, ``multi_modal_projector``, ``language_model`` and
    ``other`` (for checking where LoRA went)."""
    counts = {"vision_tower": 0, "multi_modal_projector": 0, "language_model": 0, "other": 0}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        group = next((g for g in ("vision_tower", "multi_modal_projector", "language_model") if g in name), "other")
        counts[group] += parameter.numel()
    return counts
