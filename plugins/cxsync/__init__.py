"""cxsync: contact-center conversations and agent rosters into a QA warehouse, on Apache Airflow 3."""

__version__ = "0.1.0"
