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


__all__ = ["UPLOAD_IGNORE_PATTERNS", "push_to_hub"]
