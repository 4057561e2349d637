"""The Hub side of an output folder: upload without checkpoints, logs and the lock (loading a Hub repository is
`hfgen.pipelines.loading.load_pipeline`'s, through `huggingface_hub.snapshot_download`).

The Hub token is passed straight to `huggingface_hub` and is never written to disk, logs or a model card; an error
message that contains it shows ``***`` instead.
"""

from __future__ import annotations

from hfgen.errors import HfgenError
from hfgen.output_folder.layout import CHECKPOINTS_DIR, LOCK, LOGS_DIR

UPLOAD_IGNORE_PATTERNS = [
    f"{CHECKPOINTS_DIR}/*",
    f"{CHECKPOINTS_DIR}/**",
    f"{LOGS_DIR}/*",
    f"{LOGS_DIR}/**",
    "**/.tmp-*",
    LOCK,
]


def push_to_hub(output_dir: str, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Create ``repo_id`` (if needed) and upload ``output_dir`` without checkpoints and logs.

    Returns:
        The URL of the commit.

    Raises:
        HfgenError: when the Hub cannot be reached or refuses the upload (the token is never shown).
    """
    from huggingface_hub import create_repo, upload_folder

    try:
        create_repo(repo_id, token=token, private=private, exist_ok=True)
        commit = upload_folder(
            repo_id=repo_id,
            folder_path=output_dir,
            token=token,
            ignore_patterns=UPLOAD_IGNORE_PATTERNS,
            commit_message="Upload model trained with hfgen",
        )
    except Exception as err:
        message = str(err)
        if token:
            message = message.replace(token, "***")
        raise HfgenError(f"could not push {output_dir} to the Hub repository {repo_id}: {message}") from None
    return str(getattr(commit, "commit_url", commit))


def push_folder(output_dir: str, repo_id: str, token: str | None = None, private: bool = False) -> str:
    """Upload an existing trained folder to ``repo_id``: the model card made Hub-ready first
    (`hfgen.output_folder.model_card.hub_ready_card`: the Hub id instead of local paths, the sample grid in a
    ``<Gallery />``), then `push_to_hub` (checkpoints, logs and the lock left out).

    Returns:
        The URL of the commit.

    Raises:
        HfgenError: not a trained folder, an invalid repo id, or an upload the Hub refuses (the token never shown).
    """
    import os

    from hfgen.output_folder.layout import MODEL_INDEX
    from hfgen.output_folder.model_card import hub_ready_card

    if not os.path.isdir(output_dir):
        raise HfgenError(f"{output_dir} is not a folder; pass a trained hfgen output folder")
    if not any(os.path.isfile(os.path.join(output_dir, name)) for name in (MODEL_INDEX, "adapter_config.json")):
        raise HfgenError(f"{output_dir} holds no trained model (no {MODEL_INDEX}); train it first")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts) or any(c.isspace() for c in repo_id):
        raise HfgenError(f"--hub_model_id {repo_id!r} is not a Hub repo id; use namespace/name, e.g. you/ddpm-digits")
    hub_ready_card(output_dir, repo_id)
    return push_to_hub(output_dir, repo_id, token=token, private=private)


__all__ = ["UPLOAD_IGNORE_PATTERNS", "push_folder", "push_to_hub"]
