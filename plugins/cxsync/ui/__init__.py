"""cxsync in the Airflow UI: an Airflow plugin whose FastAPI app the api-server serves under /cxsync/."""
