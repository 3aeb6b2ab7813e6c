# studybot: one container running the bot; the SQLite database lives on a volume at /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A plain user that owns only /data: the code and content are read-only to the bot.
RUN groupadd --system --gid 10001 studybot \
    && useradd --system --uid 10001 --gid studybot --home-dir /data --shell /usr/sbin/nologin studybot \
    && mkdir -p /data \
    && chown studybot:studybot /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
# A regular (non-editable) install; tzdata from PyPI gives zoneinfo every IANA zone on a slim image.
RUN pip install --no-cache-dir /app "tzdata>=2024.1" \
    && rm -rf /app/bot /app/build /app/*.egg-info

# The installed package looks for its SQL and content here (see STUDYBOT_MIGRATIONS / STUDYBOT_CONTENT).
COPY migrations ./migrations
COPY content ./content

ENV STUDYBOT_DB=/data/studybot.db \
    STUDYBOT_CONTENT=/app/content \
    STUDYBOT_MIGRATIONS=/app/migrations \
    STUDYBOT_HTTP_HOST=0.0.0.0 \
    STUDYBOT_HTTP_PORT=3000

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# Slack's HTTP mode (events and slash commands) and the admin dashboard (/dashboard) listen here.
EXPOSE 3000

HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 CMD ["studybot", "health"]

# Migrations are applied at start; a database from a newer studybot is refused.
CMD ["studybot", "run"]
