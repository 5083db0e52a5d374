# syntax=docker/dockerfile:1
# autoremedy's container image: a venv built in one stage, copied into a slim runtime as a non-root user.
#
#   docker build -t autoremedy .
#   docker run --read-only --tmpfs /tmp -v autoremedy-data:/var/lib/autoremedy -p 9095:9095 \
#     -e AUTOREMEDY_SERVER__AUTH__BEARER_TOKENS='["a-long-random-token"]' autoremedy
#
# The only writable path is /var/lib/autoremedy (the SQLite store; a volume, or an emptyDir or PVC in Kubernetes),
# so the root filesystem can be read-only. The example rules and playbooks are in /etc/autoremedy/rules and
# /etc/autoremedy/playbooks, with their tests (`autoremedy test`) in /etc/autoremedy/rule-tests; mount your own over
# them (deploy/kubernetes mounts ConfigMaps there).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/autoremedy
# Metadata first: the dependency layer is rebuilt only when pyproject.toml changes, not on every source edit.
COPY pyproject.toml README.md ./
COPY src ./src
# pip compiles the .pyc files here; at run time the root filesystem may be read-only and nothing is compiled.
RUN /opt/autoremedy/bin/pip install --no-cache-dir .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="autoremedy" \
      org.opencontainers.image.description="Alert-driven, guarded self-healing behind Prometheus Alertmanager" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric id, so Kubernetes' runAsNonRoot can check it and volume ownership (fsGroup) matches.
RUN groupadd --system --gid 10001 autoremedy \
    && useradd --system --uid 10001 --gid autoremedy --home-dir /var/lib/autoremedy --no-create-home \
       --shell /usr/sbin/nologin autoremedy \
    && install -d -o autoremedy -g autoremedy -m 0750 /var/lib/autoremedy
# Same base image in both stages, so the venv's interpreter path is valid here.
COPY --from=build /opt/autoremedy /opt/autoremedy
COPY deploy/container/autoremedy.yaml /etc/autoremedy/autoremedy.yaml
COPY rules /etc/autoremedy/rules
COPY playbooks /etc/autoremedy/playbooks
COPY rule-tests /etc/autoremedy/rule-tests
ENV PATH=/opt/autoremedy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTOREMEDY_CONFIG=/etc/autoremedy/autoremedy.yaml
USER 10001:10001
WORKDIR /var/lib/autoremedy
VOLUME ["/var/lib/autoremedy"]
EXPOSE 9095
# No curl in the slim image: the interpreter asks /healthz itself (a non-2xx answer or no answer raises).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9095/healthz', timeout=4)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["autoremedy"]
CMD ["serve"]
