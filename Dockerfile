# One image for the collector, the dashboard and the simulator; the command picks the role.
FROM python:3.11-slim
WORKDIR /srv/voltpay
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY pyproject.toml README.md ./
COPY app app
COPY billing billing
COPY collector collector
COPY schema schema
COPY voltpay voltpay
RUN pip install --no-deps .
EXPOSE 8501
CMD ["voltpay", "--help"]
