"""A labelled PII corpus for redaction's tests and benchmark: deterministic conversations with planted values of
every entity type, agents' names and benign text (dates, prices, order numbers), as provider records."""
