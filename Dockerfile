# One image for every process of sneaker-orders: the command picks the part (api, worker, sink, migrate, seed).
FROM python:3.12.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY worker.py ./
COPY api ./api
COPY activities ./activities
COPY cli ./cli
COPY db ./db
COPY devstack ./devstack
COPY sneaker_orders ./sneaker_orders
COPY workflows ./workflows
RUN pip install --no-cache-dir -c constraints.txt .
USER nobody
ENTRYPOINT ["sneaker-orders"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
