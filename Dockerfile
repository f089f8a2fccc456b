# cxsync on the official Airflow image: the pinned dependencies, then the cxsync package itself.
# Built by docker-compose.yaml (`docker compose build`); dags/ and include/ are baked in and also
# mounted by the compose file, so edits to them need no rebuild.
FROM apache/airflow:3.3.2-python3.11

ENV CXSYNC_INTEGRATIONS_FILE=/opt/airflow/include/integrations.yaml

# Dependencies first: this layer is reused until requirements.txt or constraints.txt change.
# Pinning apache-airflow to the image's version keeps pip from moving Airflow itself.
COPY --chown=airflow:0 requirements.txt constraints.txt /opt/cxsync/
RUN pip install --no-cache-dir "apache-airflow==3.3.2" \
        -r /opt/cxsync/requirements.txt -c /opt/cxsync/constraints.txt

# The cxsync package (provider entry point, hooks, sources, warehouse); not editable in the image.
COPY --chown=airflow:0 pyproject.toml README.md /opt/cxsync/
COPY --chown=airflow:0 plugins/ /opt/cxsync/plugins/
RUN pip install --no-cache-dir --no-deps /opt/cxsync \
    && python -c "import cxsync.provider_info, cxsync.warehouse"

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 include/ /opt/airflow/include/
