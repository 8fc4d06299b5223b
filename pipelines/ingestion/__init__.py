"""Usage event ingestion: landing zone discovery and set-based loading into raw.*."""

from pipelines.ingestion.landing import LandedFile, file_format, file_sha256, landed_files
from pipelines.ingestion.load import (
    FileCounts,
    LandingIngestion,
    ingest_file,
    ingest_landed_files,
    prepare_session,
)
from pipelines.ingestion.reprocess import ReprocessCounts, reprocess_rejected

__all__ = ["FileCounts", "LandedFile", "LandingIngestion", "ReprocessCounts", "file_format",
           "file_sha256", "ingest_file", "ingest_landed_files", "landed_files",
           "prepare_session", "reprocess_rejected"]
