"""Frame sources: video files and streams, image folders, HTTP push, V4L2 cameras."""
