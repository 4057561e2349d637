"""PaliGemma visual question answering on CLEVR: LoRA fine-tuning (PEFT) and ROUGE evaluation."""
