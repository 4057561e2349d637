"""Jinja model-card templates, one per model family (installed as the package data `hfgen.model_cards`)."""
