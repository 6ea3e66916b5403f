"""Result sinks: JSON Lines, MQTT, webhooks, MJPEG preview, annotated video files."""
