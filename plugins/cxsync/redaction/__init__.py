"""PII redaction before storage, offline: detectors (`detectors`), the engine that applies a policy to records
(`engine`), the integrations file's `pii_redaction` (`options`) and re-redaction of stored rows (`rerun`).

docs/security.md says what is redacted and what is not.
"""
