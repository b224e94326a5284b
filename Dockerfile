FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 DJANGO_SETTINGS_MODULE=lockngen.settings \
    DJANGO_STATIC_ROOT=/app/staticfiles DJANGO_MEDIA_ROOT=/data/media
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
# Static files are collected at build time and served by WhiteNoise from the app itself.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput
RUN useradd --system --uid 1000 lockngen && mkdir -p /data/media && chown -R lockngen /data
USER lockngen
EXPOSE 8000
# Behind the proxy (deploy/nginx), never on its own: --proxy-headers trusts X-Forwarded-For.
# Without DJANGO_SECRET_KEY it refuses to start (DJANGO_DEBUG is off unless set).
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", \
     "--ping-interval", "30", "--ping-timeout", "30", "lockngen.asgi:application"]
