"""Sample-quality and likelihood metrics (arrive with the evaluation issue)."""
