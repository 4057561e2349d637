"""PaliGemma CLEVR VQA on the tiny offline model: labels, token types, where LoRA goes, adapter round trips, the
prompt slicing of generation, scoring, and the `hfgen vqa` commands end to end."""

import json

import pytest
import torch
from helpers import error_line, run_cli

from hfgen.data.clevr import load_clevr, make_clevr_dataset
from hfgen.vqa.evaluation import comparison_table, generate_answers, majority_answers, score_answers
from hfgen.vqa.finetune import VQACollator
from hfgen.vqa.modeling import (
    add_lora,
    build_tiny_paligemma,
    build_tiny_processor,
    load_base_model,
    lora_target_regex,
    tiny_corpus,
    trainable_parameters_by_module,
)


@pytest.fixture(scope="module")
def clevr(tmp_path_factory):
    root = tmp_path_factory.mktemp("clevr") / "CLEVR_v1.0"
    make_clevr_dataset(str(root), num_images=20, seed=0)
    return root


@pytest.fixture(scope="module")
def tiny(clevr):
    train = load_clevr(str(clevr), "train")
    processor = build_tiny_processor(tiny_corpus(train["question"], train["answer"]))
    return build_tiny_paligemma(processor, seed=0), processor, train


def test_tiny_model_and_processor_agree(tiny):
    model, processor, _ = tiny
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    assert model.config.image_token_index == processor.image_token_id
    patches = (model.config.vision_config.image_size // model.config.vision_config.patch_size) ** 2
    assert processor.image_seq_length == patches
    assert type(processor.tokenizer).__name__.startswith("GemmaTokenizer")
    # the tokenizer was trained on the questions: a question takes far fewer tokens than characters
    question = "How many large red cubes are there?"
    assert len(processor.tokenizer.tokenize(question)) < len(question) / 3
    assert processor.tokenizer.unk_token_id not in processor.tokenizer(question + "\n")["input_ids"]


def test_training_labels_cover_only_the_answer_and_eos(tiny):
    model, processor, train = tiny
    rows = [train[i] for i in range(6)]
    batch = VQACollator(processor)(rows)
    assert {"input_ids", "attention_mask", "token_type_ids", "pixel_values", "labels"} <= set(batch)
    eos = processor.tokenizer.eos_token_id
    for i, row in enumerate(rows):
        labels, types = batch["labels"][i], batch["token_type_ids"][i]
        kept = labels[labels != -100].tolist()
        answer_ids = processor.tokenizer(row["answer"], add_special_tokens=False)["input_ids"]
        assert kept == answer_ids + [eos], (row["answer"], kept)
        real = batch["attention_mask"][i] == 1
        assert torch.equal(labels[real] != -100, types[real] == 1)  # the suffix is exactly the labelled part
        assert (labels[~real] == -100).all()  # padding is never a target
    prompt_ids = batch["input_ids"][0][batch["token_type_ids"][0] == 0]
    assert (prompt_ids == processor.image_token_id).sum() == processor.image_seq_length
    loss = model(**batch).loss
    assert torch.isfinite(loss) and loss.item() > 0


def test_default_lora_touches_no_vision_module(tiny):
    model, _, _ = tiny
    names = [n for n, _ in model.named_modules()]
    assert any("vision_tower" in n and n.endswith("q_proj") for n in names)  # the trap exists in this model
    counts = trainable_parameters_by_module(add_lora(build_fresh(model)))
    assert counts["vision_tower"] == 0 and counts["multi_modal_projector"] == 0 and counts["language_model"] > 0
    peft_model = add_lora(build_fresh(model))
    lora_modules = [n for n, _ in peft_model.named_modules() if n.endswith("lora_A")]
    assert lora_modules and not any("vision_tower" in n for n in lora_modules)
    assert {n.split(".")[-2] for n in lora_modules} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                       "up_proj", "down_proj"}  # fmt: skip
    # a bare module-name list silently adapts the vision tower too; --lora_on_vision does it on purpose
    assert trainable_parameters_by_module(add_lora(build_fresh(model), target="q_proj,v_proj"))["vision_tower"] > 0
    assert trainable_parameters_by_module(add_lora(build_fresh(model), on_vision=True))["vision_tower"] > 0
    assert "vision" not in lora_target_regex()


def build_fresh(model):
    from transformers import PaliGemmaForConditionalGeneration

    fresh = PaliGemmaForConditionalGeneration(model.config)
    fresh.load_state_dict(model.state_dict())
    return fresh


def test_adapter_save_and_load_give_the_same_greedy_answers(tiny, tmp_path):
    from peft import PeftModel

    model, processor, train = tiny
    peft_model = add_lora(build_fresh(model))
    with torch.no_grad():
        generator = torch.Generator().manual_seed(0)
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:  # LoRA B starts at zero; make the adapter change the answers
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
    rows = train.select(range(8))
    before = generate_answers(peft_model, processor, rows, batch_size=4, show_progress=False)
    base_answers = generate_answers(build_fresh(model), processor, rows, batch_size=4, show_progress=False)
    assert before != base_answers, "the adapter must change the answers for this test to mean anything"
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    loaded = PeftModel.from_pretrained(build_fresh(model), tmp_path / "adapter")
    assert generate_answers(loaded, processor, rows, batch_size=4, show_progress=False) == before


class EchoModel(torch.nn.Module):
    """generate() returns the prompt followed by fixed tokens, as real generation does."""

    def __init__(self, answer_ids):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.answer_ids = answer_ids
        self.dtype = torch.float32

    def generate(self, input_ids, **kwargs):
        assert kwargs["do_sample"] is False  # greedy
        tail = torch.tensor(self.answer_ids).expand(len(input_ids), -1)
        return torch.cat([input_ids, tail], dim=1)


def test_generation_slices_the_prompt_off(tiny):
    _, processor, train = tiny
    answer = processor.tokenizer("yes", add_special_tokens=False)["input_ids"] + [processor.tokenizer.eos_token_id]
    answers = generate_answers(EchoModel(answer), processor, train.select(range(5)), batch_size=2,
                               show_progress=False)  # fmt: skip
    assert answers == ["yes"] * 5


def test_scores_and_majority_baseline():
    scores = score_answers(["yes", "Two", "the red cube", "no"], ["yes", "2", "cube", "yes"],
                           ["exist", "count", "query_shape", "exist"])  # fmt: skip
    assert scores["exact_match"] == pytest.approx(0.5)  # "Two" -> "2"; "the red cube" is not "cube"
    assert scores["per_type"]["exist"] == {"exact_match": 0.5, "rouge1": 0.5, "rougeL": 0.5, "count": 2}
    from rouge_score import rouge_scorer

    direct = rouge_scorer.RougeScorer(["rougeL"]).score("cube", "red cube")["rougeL"].fmeasure
    unigram = rouge_scorer.RougeScorer(["rouge1"]).score("cube", "red cube")["rouge1"].fmeasure
    assert scores["per_type"]["query_shape"]["rouge1"] == pytest.approx(unigram)
    assert scores["rougeL"] == pytest.approx((1 + 1 + direct + 0) / 4)
    majority = majority_answers(["yes", "no", "no", "2", "3", "3", "1"], ["exist"] * 3 + ["count"] * 4)
    assert majority == {"": "3", "exist": "no", "count": "3"} or majority["exist"] == "no"
    assert majority["count"] == "3"
    table = comparison_table({"base": scores, "fine-tuned": scores})
    assert table.splitlines()[0] == "| model | ROUGE-1 | ROUGE-L | exact match |" and "| base | " in table
    with pytest.raises(ValueError, match="as many predictions"):
        score_answers(["a"], [], [])


def test_qlora_without_cuda_is_a_clear_error():
    from hfgen.errors import ConfigurationError
    from hfgen.vqa.modeling import quantization_config_4bit

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigurationError, match="CUDA"):
        quantization_config_4bit(torch.bfloat16)
    with pytest.raises(ConfigurationError, match="exactly one"):
        load_base_model(None, tiny=False)


def test_finetune_and_evaluate_commands(clevr, tmp_path, capsys):
    from peft import PeftModel
    from transformers import PaliGemmaForConditionalGeneration

    out = tmp_path / "q"
    code, stdout, err = run_cli(
        capsys, "vqa", "finetune", "--tiny", "--clevr_dir", clevr, "--max_train_steps", 3, "--train_batch_size", 4,
        "--logging_steps", 1, "--logger", "none", "--output_dir", out, "--hub_token", "hf_secret_abc",
    )  # fmt: skip
    assert code == 0, err
    assert "language_model" in stdout and "vision_tower 0" in stdout
    for name in ("adapter_config.json", "adapter_model.safetensors", "README.md", "loss.png"):
        assert (out / name).is_file(), name
    base = PaliGemmaForConditionalGeneration.from_pretrained(out / "tiny_base_model")
    assert isinstance(PeftModel.from_pretrained(base, out), PeftModel)
    card = (out / "README.md").read_text()
    assert "library_name: peft" in card and "pipeline_tag: image-text-to-text" in card
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".md", ".txt"):
            assert "hf_secret_abc" not in path.read_text(errors="ignore"), path
    code, stdout, err = run_cli(
        capsys, "vqa", "evaluate", "--tiny", "--clevr_dir", clevr, "--adapter", out, "--compare_to_base",
        "--max_questions", 12,
    )  # fmt: skip
    assert code == 0, err
    assert "| base |" in stdout and "| fine-tuned |" in stdout and "| majority answer per kind |" in stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert results["num_questions"] == 12 and set(results["models"]) == {"base", "fine-tuned",
                                                                          "majority answer per kind"}  # fmt: skip
    lines = (out / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12 and {"question", "answer", "prediction", "correct"} <= set(json.loads(lines[0]))
    assert "ROUGE-L" in (out / "README.md").read_text()  # the card now carries the evaluation


def test_vqa_command_errors(clevr, tmp_path, capsys):
    code, _, err = run_cli(capsys, "vqa", "finetune", "--clevr_dir", clevr, "--output_dir", tmp_path / "a")
    assert "exactly one of --model_name_or_path" in error_line(code, err)
    code, _, err = run_cli(capsys, "vqa", "finetune", "--tiny", "--clevr_dir", tmp_path / "nowhere",
                           "--output_dir", tmp_path / "b")  # fmt: skip
    assert "nowhere" in error_line(code, err)
    code, _, err = run_cli(capsys, "vqa", "evaluate", "--tiny", "--clevr_dir", clevr, "--adapter", tmp_path)
    assert "adapter_config.json" in error_line(code, err)
    code, _, err = run_cli(capsys, "vqa", "finetune", "--tiny", "--clevr_dir", clevr, "--load_in_4bit",
                           "--output_dir", tmp_path / "c")  # fmt: skip
    assert "--load_in_4bit" in error_line(code, err)
    code, _, err = run_cli(capsys, "vqa", "fly")
    assert "unknown vqa command" in error_line(code, err)


def test_a_nan_loss_stops_training_with_a_clear_error():
    from transformers import TrainerControl, TrainerState

    from hfgen.vqa.finetune import StopOnNonFiniteLoss

    callback, control, state = StopOnNonFiniteLoss(), TrainerControl(), TrainerState()
    state.global_step = 7
    callback.on_log(None, state, control, logs={"loss": 1.5})
    assert callback.bad_step is None and not control.should_training_stop
    callback.on_log(None, state, control, logs={"loss": float("nan")})
    assert callback.bad_step == 7 and control.should_training_stop and not control.should_save


def test_a_missing_model_folder_is_named(clevr, capsys):
    code, _, err = run_cli(
        capsys, "vqa", "evaluate", "--model_name_or_path", "/no/such/paligemma", "--clevr_dir", clevr
    )
    line = error_line(code, err)
    assert "/no/such/paligemma does not exist" in line and "--tiny" not in line


def test_a_diverging_vqa_run_stops_and_saves_no_adapter(clevr, tmp_path, capsys):
    """The case that used to exit 0 with every LoRA tensor NaN and "final loss 0.0000"."""
    out = tmp_path / "nan"
    code, _, err = run_cli(
        capsys, "vqa", "finetune", "--tiny", "--clevr_dir", clevr, "--learning_rate", 1e6, "--logging_steps", 5,
        "--max_train_steps", 12, "--train_batch_size", 4, "--logger", "none", "--output_dir", out,
    )  # fmt: skip
    line = error_line(code, err)
    assert "NaN/inf at step" in line and "--learning_rate" in line
    assert not (out / "adapter_model.safetensors").exists()  # nothing saved as final
    for checkpoint in (out / "checkpoints").glob("checkpoint-*"):  # and no checkpoint holds NaN weights
        from safetensors.torch import load_file

        weights = load_file(checkpoint / "adapter_model.safetensors")
        assert all(bool(torch.isfinite(w).all()) for w in weights.values()), checkpoint


KILL_DURING_CHECKPOINT = """
import os, signal, sys
from transformers.trainer_callback import TrainerState
from hfgen.cli import main

original = TrainerState.save_to_json
def save_then_die(self, path):
    if "checkpoint-4" in path:
        os.kill(os.getpid(), signal.SIGKILL)  # weights and optimizer written, trainer_state.json not yet
    return original(self, path)
TrainerState.save_to_json = save_then_die
main(sys.argv[1:])
"""


def test_a_vqa_run_killed_during_a_checkpoint_write_resumes_from_the_last_complete_one(clevr, tmp_path, capsys):
    import subprocess
    import sys

    out = tmp_path / "killed"
    flags = ["vqa", "finetune", "--tiny", "--clevr_dir", str(clevr), "--max_train_steps", "6", "--train_batch_size",
             "4", "--checkpointing_steps", "2", "--checkpoints_total_limit", "5", "--logger", "none", "--output_dir",
             str(out)]  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", KILL_DURING_CHECKPOINT, *flags], capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr
    assert (out / "checkpoints" / "checkpoint-4").is_dir()  # the half-written one is there
    assert not (out / "checkpoints" / "checkpoint-4" / "trainer_state.json").exists()
    code, stdout, err = run_cli(capsys, *flags, "--resume_from_checkpoint", "latest")
    assert code == 0, err
    assert "checkpoint-4 is incomplete" in err and (out / "checkpoints" / "incomplete-checkpoint-4").is_dir()
    assert (out / "adapter_model.safetensors").is_file()
    state = json.loads((out / "checkpoints" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6


def test_vqa_flags_out_of_range_are_refused(clevr, tmp_path, capsys):
    for flag, value in (("--checkpointing_steps", 0), ("--logging_steps", 0), ("--seed", -1),
                        ("--learning_rate", "nan")):  # fmt: skip
        code, _, err = run_cli(capsys, "vqa", "finetune", "--tiny", "--clevr_dir", clevr, flag, value,
                               "--output_dir", tmp_path / "x")  # fmt: skip
        assert flag in error_line(code, err)
        assert not (tmp_path / "x").exists()
