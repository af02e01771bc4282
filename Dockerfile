# Slim, non-root image with graphviz for `graphspec plot`.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends graphviz \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 1000 graphspec
WORKDIR /home/graphspec/app
COPY --chown=graphspec:graphspec pyproject.toml README.md ./
COPY --chown=graphspec:graphspec graphspec ./graphspec
RUN pip install --no-cache-dir '.[keras]'
USER graphspec
WORKDIR /work
ENTRYPOINT ["graphspec"]
CMD ["--help"]
