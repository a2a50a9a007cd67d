# embedd container: build the static engine and the Go binary, then ship them with the bundled model.
# Runs as an unprivileged user on port 7860 (Hugging Face Spaces' default).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN make build

FROM debian:bookworm-slim
RUN useradd --create-home --uid 1000 embedd
WORKDIR /app
COPY --from=build /src/bin/embedd /usr/local/bin/embedd
COPY --from=build /src/models.toml /app/models.toml
# The bundled model and its attribution (Apache-2.0) travel together.
COPY --from=build /src/models /app/models
USER embedd
ENV EMBEDD_HOST=0.0.0.0 EMBEDD_PORT=7860
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=3s CMD ["embedd", "healthcheck", "--url", "http://127.0.0.1:7860/health/ready"]
ENTRYPOINT ["embedd"]
CMD ["serve", "--config", "/app/models.toml"]
