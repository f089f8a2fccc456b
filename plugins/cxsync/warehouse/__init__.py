"""The cxsync warehouse: one module that owns the schema, upserts, watermarks and deletes."""

from cxsync.warehouse.store import (
    AgentSyncStats,
    RetentionResult,
    Warehouse,
    WriteStats,
    format_watermark,
    parse_watermark,
)

__all__ = ["AgentSyncStats", "RetentionResult", "Warehouse", "WriteStats", "format_watermark", "parse_watermark"]
